"""Roll a release back: the backend's plan, a reason, and a confirmation with Cancel focused.

The plan is the backend's (``kubectl rollout undo``'s target, refusals and patch); this screen
shows what changes field by field, asks why, and applies exactly that plan (its fingerprint). If
the cluster moved in between, the backend refuses and the new plan is shown for review. The
screen returns True once the change is applied, so the workload detail follows the rollout.
"""

from __future__ import annotations

import json
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Static

from backend.schemas import ChangePlan, FieldDiff
from opsconsole.client import BackendError
from opsconsole.shell import shell
from opsconsole.text import literal


def _value(value: object) -> Text:
    if value is None:
        return Text("—", style="dim")
    return literal(value if isinstance(value, str) else json.dumps(value, sort_keys=True))


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
        change = _value(d.before)
        change.append(" → ", style="bold")
        change.append_text(_value(d.after))
        rows.append((literal(short_path(d.path)), change))
    return rows


class RollbackScreen(ModalScreen[bool]):
    """Plan, review, give a reason, confirm."""

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

    def __init__(self, namespace: str, kind: str, name: str, to_revision: int = 0) -> None:
        super().__init__()
        self.namespace, self.kind, self.name_ = namespace, kind, name
        self.to_revision = to_revision
        self.plan: ChangePlan | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = literal(f"Roll back {self.kind} {self.namespace}/{self.name_}")
            yield Static(Text("Planning the rollback…", style="dim"), id="plan-summary")
            table: DataTable[Text] = DataTable(id="plan-diff", cursor_type="row")
            table.add_columns("FIELD", "NOW → AFTER ROLLBACK")
            yield table
            yield Input(placeholder="reason (required; recorded in the audit log)", id="reason")
            yield Static("", id="plan-error")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Roll back", id="apply", variant="error", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()
        self.run_worker(self._plan, group="plan", exclusive=True, exit_on_error=False)

    async def _plan(self) -> None:
        client = shell(self.app).client
        try:
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
        if plan.noop:
            summary.append_text(literal(plan.noop, style="yellow"))
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
        table.add_rows(diff_rows(plan.diff))
        self.query_one("#apply", Button).disabled = plan.noop is not None

    def _refused(self, message: str) -> None:
        self.query_one("#plan-summary", Static).update(Text("No rollback planned.", style="dim"))
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
        try:
            applied = await client.rollback_apply(
                self.namespace, self.kind, self.name_, plan, reason
            )
        except BackendError as err:
            refused = err.refused
            if refused is not None and refused.plan is not None:
                self.show_plan(refused.plan)  # the cluster moved: review again
            else:
                self.query_one("#apply", Button).disabled = False
            self.query_one("#plan-error", Static).update(literal(err.message, style="bold"))
            return
        self.app.notify(
            f"rollback applied (audit change {applied.change_id[:12]})",
            title="Rolled back",
            markup=False,
        )
        self.dismiss(True)
