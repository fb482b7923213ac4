"""The shape of every change the console makes: the backend's plan, a reason, and a confirmation
with Cancel focused.

Subclasses say how to plan and apply (``make_plan``, ``apply_plan``) and how to show a plan
(``compose_plan``, ``render_plan``). The dialog applies exactly the plan on screen (its
fingerprint); a refusal (422 invalid, 403 denied) is shown in the dialog, and a plan gone stale
(409) is replaced by the new one for review. Enter in the reason moves to the buttons and never
applies; Escape cancels. With ``replan_every`` set, the plan is asked again on that interval while
the dialog is open, so the numbers it shows stay current. The dialog returns True once applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static
from textual.worker import Worker, WorkerState

from backend.schemas import ChangeApplied, ChangePlan
from opsconsole.client import BackendError
from opsconsole.text import literal
from opsconsole.widgets.plain_input import PlainInput


class PlanDialog(ModalScreen[bool]):
    """Plan, review, give a reason, confirm."""

    CSS_PATH = Path(__file__).with_name("dialog.tcss")
    DEFAULT_CLASSES = "dialog-screen"
    DEFAULT_CSS = """
    PlanDialog #plan-summary { height: auto; }
    PlanDialog #reason { margin: 1 0 0 0; }
    PlanDialog #plan-error { height: auto; color: $error; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    verb = "Apply"
    """The apply button's label, and what the dialog is doing ("planning: apply…")."""
    box_classes = "dialog-box changes-cluster"
    """The dialog box's classes (see ``dialog.tcss``)."""
    replan_every: float | None = None
    """Seconds between plans while open; None: planned once (and again after a 409)."""

    def __init__(self) -> None:
        super().__init__()
        self.plan: ChangePlan | None = None
        self._planning: Worker[None] | None = None
        self._applying = False

    # -- what subclasses provide -----------------------------------------------------------------

    def dialog_title(self) -> Text:
        raise NotImplementedError

    def compose_plan(self) -> ComposeResult:
        """The widgets showing the plan (``#plan-summary`` among them)."""
        yield Static(Text(f"Planning: {self.verb.lower()}…", style="dim"), id="plan-summary")

    async def make_plan(self) -> ChangePlan:
        raise NotImplementedError

    async def apply_plan(self, plan: ChangePlan, reason: str) -> ChangeApplied:
        raise NotImplementedError

    def render_plan(self, plan: ChangePlan) -> None:
        """Show ``plan`` in the widgets of ``compose_plan``."""
        raise NotImplementedError

    def forget_plan(self) -> None:
        """Empty what ``render_plan`` showed, once the plan is refused (default: keep it)."""

    def applied(self, applied: ChangeApplied) -> None:
        """Say that it is done (the dialog then closes)."""
        self.app.notify(f"applied (audit change {applied.change_id[:12]})", markup=False)

    # -- composition and planning ----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes=self.box_classes) as dialog:
            dialog.border_title = self.dialog_title()
            yield from self.compose_plan()
            yield PlainInput(
                placeholder="reason (required; recorded in the audit log)", id="reason"
            )
            yield Static("", id="plan-error")
            with Horizontal(id="buttons", classes="dialog-buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button(self.verb, id="apply", variant="error", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()
        self.replan()
        if self.replan_every is not None:
            self.set_interval(self.replan_every, self.replan)

    def replan(self) -> None:
        """Ask for the plan again, unless a plan or an apply is under way."""
        busy = self._planning is not None and self._planning.state in (
            WorkerState.PENDING,
            WorkerState.RUNNING,
        )
        if busy or self._applying:
            return
        self._planning = self.run_worker(self._plan(), group="plan", exit_on_error=False)

    async def _plan(self) -> None:
        try:
            plan = await self.make_plan()
        except BackendError as err:
            if not self._applying:
                self._refused(err.message)
            return
        if self._applying:
            return  # the apply answers for the plan it took
        if self.plan is None:
            self.query_one("#plan-error", Static).update("")  # a refusal that no longer holds
        self.show_plan(plan)

    def show_plan(self, plan: ChangePlan) -> None:
        self.plan = plan
        self.render_plan(plan)
        self.query_one("#apply", Button).disabled = plan.noop is not None

    def _refused(self, message: str) -> None:
        self.plan = None
        self.forget_plan()
        nothing = Text(f"Nothing planned: cannot {self.verb.lower()}.", style="dim")
        self.query_one("#plan-summary", Static).update(nothing)
        self.query_one("#plan-error", Static).update(literal(message, style="bold"))
        self.query_one("#apply", Button).disabled = True

    # -- confirming ------------------------------------------------------------------------------

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
        self._applying = True
        self.query_one("#apply", Button).disabled = True
        self.run_worker(self._apply(self.plan, reason), group="apply", exit_on_error=False)

    async def _apply(self, plan: ChangePlan, reason: str) -> None:
        try:
            applied = await self.apply_plan(plan, reason)
        except BackendError as err:
            self._applying = False
            refused = err.refused
            if refused is not None and refused.plan is not None:
                self.show_plan(refused.plan)  # the cluster moved: review again
            else:
                self.query_one("#apply", Button).disabled = False
            self.query_one("#plan-error", Static).update(literal(err.message, style="bold"))
            return
        self.applied(applied)
        self.dismiss(True)
