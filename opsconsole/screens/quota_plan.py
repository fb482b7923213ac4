"""Review and apply a staged set of quota changes: the backend's plan of the whole set, kept live.

The plan shows each quota before → after (the object it lives in), the warnings (a tenant left
below its use, borrowers Kueue may reclaim, work that stays pending), and the what-if: per tenant,
which pending workloads the queues would admit afterwards and which stay pending, with Kueue's
reason. It is planned again on the console's refresh interval while open, since usage moves; what
is applied is the plan on screen, with the operator's reason, all of it or none.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from backend.schemas import ChangeApplied, ChangePlan, QuotaChange
from opsconsole import format as fmt
from opsconsole.screens.plan_dialog import PlanDialog
from opsconsole.screens.refreshing import PanelTable, panel_table, refill
from opsconsole.shell import shell
from opsconsole.text import literal


def _dicts(value: object) -> list[dict[str, Any]]:
    """A list of JSON objects from a plan's details (anything else: none)."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def change_rows(plan: ChangePlan) -> list[tuple[Text, ...]]:
    """Each quota the plan writes: its object, tenant, model or namespace, before → after."""
    rows: list[tuple[Text, ...]] = []
    for change in _dicts(plan.details.get("changes")):
        where = change.get("flavor") or f"ns {change.get('namespace')}"
        before, after = change.get("before"), change.get("after")
        nominal = Text(f"{before} → ")
        nominal.append(str(after), style="bold")
        rows.append(
            (
                literal(change.get("object"), "dim"),
                literal(change.get("tenant"), "bold"),
                literal(where),
                nominal,
            )
        )
    return rows


def whatif_rows(plan: ChangePlan) -> list[tuple[Text, ...]]:
    """Per tenant, the pending workloads admitted afterwards and those that stay pending (why)."""
    whatif = plan.details.get("whatif")
    rows: list[tuple[Text, ...]] = []
    for tenant, fates in whatif.items() if isinstance(whatif, dict) else ():
        if not isinstance(fates, dict):
            continue
        for verdict, style in (("admitted", "green"), ("pending", "yellow")):
            for fate in _dicts(fates.get(verdict)):
                what = Text("admitted" if verdict == "admitted" else "stays pending", style=style)
                if fate.get("reason"):
                    what.append(": ")
                    what.append_text(literal(fate.get("reason")))
                workload = f"{fate.get('namespace')}/{fate.get('owner') or fate.get('workload')}"
                rows.append(
                    (literal(tenant, "bold"), literal(workload), fmt.text(fate.get("gpus")), what)
                )
    return rows


def plan_summary(plan: ChangePlan) -> Text:
    """The change's target and its warnings, wrapped to the dialog's width."""
    summary = Text()
    summary.append_text(literal(plan.target, "bold"))
    if plan.noop:
        summary.append("\n")
        summary.append_text(literal(plan.noop, style="yellow"))
    for warning in plan.warnings:
        summary.append("\n⚠ ", style="yellow")
        summary.append_text(literal(warning, style="yellow"))
    return summary


class QuotaPlanScreen(PlanDialog):
    """The staged change set, planned by the backend; Apply changes every quota of it or none."""

    DEFAULT_CSS = """
    QuotaPlanScreen #plan-body { height: 1fr; }
    QuotaPlanScreen .panel { height: auto; border: round $primary 40%; }
    QuotaPlanScreen .panel:focus { border: round $primary; }
    """
    box_classes = "dialog-box changes-cluster tall"
    verb = "Apply"

    def __init__(self, changes: list[QuotaChange]) -> None:
        super().__init__()
        self.changes = list(changes)

    def on_mount(self) -> None:
        self.replan_every = shell(self.app).settings.refresh_interval
        super().on_mount()

    def dialog_title(self) -> Text:
        count = len(self.changes)
        return Text(f"Quota change set: {count} change{'s' if count != 1 else ''}")

    def compose_plan(self) -> ComposeResult:
        with VerticalScroll(id="plan-body"):
            yield from super().compose_plan()
            yield panel_table("plan-changes", "Quotas", ["OBJECT", "TENANT", "MODEL", "NOMINAL"])
            yield panel_table(
                "plan-whatif",
                "What-if: pending workloads afterwards",
                ["TENANT", "WORKLOAD", "GPUS", "AFTERWARDS"],
            )

    async def make_plan(self) -> ChangePlan:
        return await shell(self.app).client.quota_plan(self.changes)

    async def apply_plan(self, plan: ChangePlan, reason: str) -> ChangeApplied:
        return await shell(self.app).client.quota_apply(self.changes, plan, reason)

    def render_plan(self, plan: ChangePlan) -> None:
        self.query_one("#plan-summary", Static).update(plan_summary(plan))
        refill(self.query_one("#plan-changes", PanelTable), change_rows(plan))
        whatif = whatif_rows(plan)
        none = (Text("no pending workloads change", style="dim"), Text(), Text(), Text())
        refill(self.query_one("#plan-whatif", PanelTable), whatif or [none])

    def forget_plan(self) -> None:
        refill(self.query_one("#plan-changes", PanelTable), [])
        refill(self.query_one("#plan-whatif", PanelTable), [])

    def applied(self, applied: ChangeApplied) -> None:
        self.app.notify(
            f"quota changed (audit change {applied.change_id[:12]})", title="Applied", markup=False
        )
