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

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from backend.schemas import ChangeApplied, ChangePlan, FieldDiff, TrafficSplit
from opsconsole import format as fmt
from opsconsole.screens.plan_dialog import PlanDialog
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


MAX_REVISION_ROWS = 8


class ReleaseAction(StrEnum):
    """What the screen does to the release."""

    ROLLBACK = "rollback"
    PROMOTE = "promote"


class RollbackScreen(PlanDialog):
    """Plan, review, give a reason, confirm: a rollback, or the promotion of a canary."""

    DEFAULT_CSS = """
    RollbackScreen #plan-diff { height: auto; max-height: 10; }
    """

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
        self.verb = "Roll back" if action == ReleaseAction.ROLLBACK else "Promote"

    def dialog_title(self) -> Text:
        return literal(f"{self.verb} {self.kind} {self.namespace}/{self.name_}")

    def compose_plan(self) -> ComposeResult:
        yield from super().compose_plan()
        yield DataTable(id="plan-diff", cursor_type="row")  # its columns come with the plan
        revisions: DataTable[Text] = DataTable(id="revision-changes", cursor_type="row")
        revisions.display = False  # an InferenceService's revisions compared, when known
        yield revisions

    async def make_plan(self) -> ChangePlan:
        client = shell(self.app).client
        if self.action == ReleaseAction.PROMOTE:
            return await client.promote_plan(self.namespace, self.kind, self.name_)
        return await client.rollback_plan(self.namespace, self.kind, self.name_, self.to_revision)

    async def apply_plan(self, plan: ChangePlan, reason: str) -> ChangeApplied:
        client = shell(self.app).client
        apply = (
            client.promote_apply if self.action == ReleaseAction.PROMOTE else client.rollback_apply
        )
        return await apply(self.namespace, self.kind, self.name_, plan, reason)

    def render_plan(self, plan: ChangePlan) -> None:
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
            if isinstance(details.get("template_diff"), list):
                revisions = f"{details.get('template_from')} → {details.get('template_to')}"
                summary.append("\npod template ", style="bold")
                summary.append_text(literal(revisions))
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
        self._show_revision_changes(plan)

    def _show_revision_changes(self, plan: ChangePlan) -> None:
        """How the revision taking the traffic differs from the one giving it up."""
        table = self.query_one("#revision-changes", DataTable)
        table.clear(columns=True)
        raw = plan.details.get("template_diff")
        changes = [FieldDiff.model_validate(d) for d in raw] if isinstance(raw, list) else []
        table.display = bool(changes)
        if changes:
            table.add_columns("POD TEMPLATE FIELD", f"NOW → AFTER {self.verb.upper()}")
            table.add_rows(diff_rows(changes))
            # Sized here: an auto height is measured before the rows arrive and not again (one
            # line more for the scroll bar of a long path).
            table.styles.height = min(len(changes) + 2, MAX_REVISION_ROWS)

    def applied(self, applied: ChangeApplied) -> None:
        self.app.notify(
            f"{self.action.value} applied (audit change {applied.change_id[:12]})",
            title="Promoted" if self.action == ReleaseAction.PROMOTE else "Rolled back",
            markup=False,
        )
