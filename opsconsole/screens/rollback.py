"""Roll a release back (or promote a canary): the backend's plan, a reason, and a confirmation
with Cancel focused.

The plan is the backend's (``kubectl rollout undo``'s target, refusals and patch for a Deployment;
the traffic split before and after for an InferenceService); this screen shows what changes —
field by field, or revision by revision for traffic — asks why, and applies exactly that plan (its
fingerprint). If the cluster moved in between, the backend refuses and the new plan is shown for
review. The screen returns True once the change is applied, so the workload detail follows the
rollout.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Static

from backend.schemas import ChangePlan, FieldDiff, TrafficSplit
from opsconsole import format as fmt
from opsconsole.client import BackendError
from opsconsole.shell import shell
from opsconsole.text import literal


def _percent(value: object) -> str:
    return "unset" if value is None else f"{value}"


# Prefixes every field of a pod template shares: the rest says what changes.
SHORT_PATHS = (
    ("spec.template.spec.", ""),
    ("spec.template.metadata.", "template."),
    ("metadata.annotations.", "annotations."),
)


def short_path(path: str) -> str:
    """``spec.template.spec.containers[vllm].image`` -> ``containers[vllm].image``."""
    for prefix, replacement in SHORT_PATHS:
        if path.startswith(prefix):
            return replacement + path.removeprefix(prefix)
    return path


def diff_rows(diff: list[FieldDiff]) -> list[tuple[Text, Text]]:
    """One row per field: which, and ``now → after``."""
    rows = []
    for d in diff:
        change = fmt.json_value(d.before)
        change.append(" → ", style="bold")
        change.append_text(fmt.json_value(d.after))
        rows.append((literal(short_path(d.path)), change))
    return rows


def _split(value: object) -> TrafficSplit | None:
    return None if value is None else TrafficSplit.model_validate(value)


def traffic_rows(plan: ChangePlan) -> list[tuple[Text, Text, Text]]:
    """Each revision's share of the traffic now and after the change (an InferenceService)."""
    before = _split(plan.details.get("traffic_before"))
    after = _split(plan.details.get("traffic_after"))
    shares: dict[str | None, list[int]] = {}
    for column, split in enumerate((before, after)):
        for entry in split.revisions if split else ():
            shares.setdefault(entry.revision, [0, 0])[column] += entry.percent
    return [
        (
            literal(name or "?"),
            Text(f"{now}%", style="" if now else "dim"),
            Text(f"{then}%", style="bold" if then else "dim"),
        )
        for name, (now, then) in shares.items()
    ]


class ReleaseAction(StrEnum):
    """What the screen does to the release."""

    ROLLBACK = "rollback"
    PROMOTE = "promote"


class RollbackScreen(ModalScreen[bool]):
    """Plan, review, give a reason, confirm: a rollback, or the promotion of a canary."""

    DEFAULT_CSS = """
    RollbackScreen { align: center middle; }
    RollbackScreen > #dialog {
        width: 96%; max-width: 140; height: auto; max-height: 96%;
        border: thick $error 60%; background: $surface; padding: 0 1;
    }
    RollbackScreen #plan-summary { height: auto; }
    RollbackScreen #plan-diff { height: auto; max-height: 10; }
    RollbackScreen #reason { margin: 1 0 0 0; }
    RollbackScreen #plan-error { height: auto; color: $error; }
    RollbackScreen #buttons { height: 3; align-horizontal: right; }
    RollbackScreen Button { margin: 0 0 0 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        namespace: str,
        kind: str,
        name: str,
        to_revision: int = 0,
        action: ReleaseAction = ReleaseAction.ROLLBACK,
    ) -> None:
        super().__init__()
        self.namespace, self.kind, self.name_ = namespace, kind, name
        self.to_revision = to_revision
        self.action = action
        self.plan: ChangePlan | None = None

    @property
    def verb(self) -> str:
        return "Roll back" if self.action == ReleaseAction.ROLLBACK else "Promote"

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = literal(f"{self.verb} {self.kind} {self.namespace}/{self.name_}")
            yield Static(Text(f"Planning: {self.verb.lower()}…", style="dim"), id="plan-summary")
            yield DataTable(id="plan-diff", cursor_type="row")  # its columns come with the plan
            yield Input(placeholder="reason (required; recorded in the audit log)", id="reason")
            yield Static("", id="plan-error")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button(self.verb, id="apply", variant="error", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()
        self.run_worker(self._plan(), group="plan", exclusive=True, exit_on_error=False)

    async def _plan(self) -> None:
        client = shell(self.app).client
        try:
            if self.action == ReleaseAction.PROMOTE:
                plan = await client.promote_plan(self.namespace, self.kind, self.name_)
            else:
                plan = await client.rollback_plan(
                    self.namespace, self.kind, self.name_, self.to_revision
                )
        except BackendError as err:
            self._refused(err.message)
            return
        self.show_plan(plan)

    def show_plan(self, plan: ChangePlan) -> None:
        self.plan = plan
        summary = Text()
        details = plan.details
        traffic = "traffic_before" in details
        if plan.noop:
            summary.append_text(literal(plan.noop, style="yellow"))
        elif traffic:
            summary.append("all traffic to ", style="bold")
            summary.append_text(literal(str(details.get("target_revision")), style="bold"))
            summary.append(
                f"  (canaryTrafficPercent {_percent(details.get('canary_before'))} → "
                f"{_percent(details.get('canary_after'))})",
                style="dim",
            )
        else:
            summary.append(
                f"revision {details.get('current_revision')} → "
                f"revision {details.get('target_revision')}",
                style="bold",
            )
            summary.append("  (the deployment controller makes it a new revision)", style="dim")
        for warning in plan.warnings:
            summary.append("\n⚠ ", style="yellow")
            summary.append_text(literal(warning, style="yellow"))
        self.query_one("#plan-summary", Static).update(summary)
        table = self.query_one("#plan-diff", DataTable)
        table.clear()
        if not table.columns and traffic:
            table.add_columns("REVISION (TRAFFIC)", "NOW", f"AFTER {self.verb.upper()}")
        elif not table.columns:
            table.add_columns("FIELD", f"NOW → AFTER {self.verb.upper()}")
        if traffic:
            table.add_rows(traffic_rows(plan))
        else:
            table.add_rows(diff_rows(plan.diff))
        self.query_one("#apply", Button).disabled = plan.noop is not None

    def _refused(self, message: str) -> None:
        nothing = Text(f"Nothing planned: cannot {self.verb.lower()}.", style="dim")
        self.query_one("#plan-summary", Static).update(nothing)
        self.query_one("#plan-error", Static).update(literal(message, style="bold"))
        self.query_one("#apply", Button).disabled = True

    def action_cancel(self) -> None:
        self.dismiss(False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "cancel":
            self.dismiss(False)
        elif event.button.id == "apply":
            self._confirm()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#apply", Button).focus()  # Enter in the reason moves on, never applies

    def _confirm(self) -> None:
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.query_one("#plan-error", Static).update("A reason is required.")
            self.query_one("#reason", Input).focus()
            return
        if self.plan is None or self.plan.noop:
            return
        self.query_one("#apply", Button).disabled = True
        self.run_worker(self._apply(self.plan, reason), group="apply", exit_on_error=False)

    async def _apply(self, plan: ChangePlan, reason: str) -> None:
        client = shell(self.app).client
        apply = (
            client.promote_apply if self.action == ReleaseAction.PROMOTE else client.rollback_apply
        )
        try:
            applied = await apply(self.namespace, self.kind, self.name_, plan, reason)
        except BackendError as err:
            refused = err.refused
            if refused is not None and refused.plan is not None:
                self.show_plan(refused.plan)  # the cluster moved: review again
            else:
                self.query_one("#apply", Button).disabled = False
            self.query_one("#plan-error", Static).update(literal(err.message, style="bold"))
            return
        self.app.notify(
            f"{self.action.value} applied (audit change {applied.change_id[:12]})",
            title="Promoted" if self.action == ReleaseAction.PROMOTE else "Rolled back",
            markup=False,
        )
        self.dismiss(True)
