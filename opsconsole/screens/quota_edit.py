"""Ask for one quota edit: a row's new nominal GPUs (set), or where to move some of them and how
many (transfer). The answer is a ``QuotaChange`` for the staged change set, never applied here.

Amounts go to the backend as typed (a whole number is sent as one): the backend judges them, so
that a refused amount is refused with its reason when the change set is planned. Tab in the
destination field completes tenant names, as the ``:`` command line does.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from backend.schemas import QuotaChange, QuotaMode, QuotaRow
from opsconsole.completion import complete_name
from opsconsole.shell import shell
from opsconsole.text import clean, literal


def amount(value: str) -> int | str:
    """A typed amount: a whole number as an int, anything else as typed (the backend refuses it
    with its reason)."""
    value = value.strip()
    try:
        return int(value)
    except ValueError:
        return value


def quota_model(row: QuotaRow) -> str | None:
    """How a change names the row's model: its Kueue flavor; a ResourceQuota covers every model."""
    return row.flavor if row.system == QuotaMode.KUEUE else None


def row_namespace(row: QuotaRow) -> str | None:
    """The namespace a change of a ResourceQuota row names: its only quota's (None where the
    tenant has several: the operator says which)."""
    if row.system != QuotaMode.RESOURCE_QUOTA or len(row.namespace_quotas) != 1:
        return None
    return row.namespace_quotas[0].namespace


def per_namespace(row: QuotaRow) -> bool:
    """A ResourceQuota tenant with several namespace quotas: a change names the namespace."""
    return row.system == QuotaMode.RESOURCE_QUOTA and len(row.namespace_quotas) > 1


class TenantInput(Input):
    """A tenant name; Tab completes it from the backend's tenants."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("tab", "complete", "Complete")]

    @work(exclusive=True, exit_on_error=False, group="tenant-complete")
    async def action_complete(self) -> None:
        try:
            done, names = await complete_name(
                "tenant", self.value.strip(), shell(self.app).lookup_names
            )
        except Exception:  # the backend may be down: complete nothing, say nothing
            return
        self.value = done
        self.cursor_position = len(done)
        hint = self.screen.query_one("#edit-hint", Static)
        hint.update(literal("  ".join(names[:8])) if len(names) > 1 else "")


class QuotaEditScreen(ModalScreen[QuotaChange | None]):
    """``set`` asks the new nominal GPUs; ``transfer`` asks the destination and the GPUs.

    ``gpus`` prefills the amount (a proposal, such as a reclaim of idle GPUs, that ``note``
    explains); the operator still stages it, and the staged set is planned and confirmed."""

    CSS_PATH = Path(__file__).with_name("dialog.tcss")
    DEFAULT_CLASSES = "dialog-screen"
    DEFAULT_CSS = """
    QuotaEditScreen Label { margin: 1 0 0 0; }
    QuotaEditScreen #edit-hint { height: auto; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, row: QuotaRow, op: str, gpus: int | None = None, note: str = "") -> None:
        super().__init__()
        self.row = row
        self.op = op
        self.gpus = gpus
        self.note = note

    def compose(self) -> ComposeResult:
        row = self.row
        with Vertical(id="edit", classes="dialog-box narrow") as box:
            what = f"{clean(row.tenant)} {clean(row.flavor or row.gpu_model)}"
            box.border_title = literal(f"{'Set' if self.op == 'set' else 'Transfer from'} {what}")
            yield Static(
                Text(f"nominal {row.nominal}, in use {row.used}, pending {row.pending}"),
                id="edit-now",
            )
            if per_namespace(row):
                yield Label("namespace")
                names = [q.namespace for q in row.namespace_quotas]
                yield Input(value=names[0], id="namespace")
            if self.op == "transfer":
                yield Label("to tenant (Tab completes)")
                yield TenantInput(id="to")
                yield Label("GPUs to move")
                yield Input(value="" if self.gpus is None else str(self.gpus), id="gpus")
            else:
                yield Label("new nominal GPUs")
                yield Input(value=self._set_value(), id="gpus")
            yield Static(literal(self.note), id="edit-hint")
            with Horizontal(id="edit-buttons", classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Stage", id="stage", variant="primary")

    def _set_value(self) -> str:
        if self.gpus is not None:
            return str(self.gpus)
        return "" if per_namespace(self.row) else str(self.row.nominal)

    def on_mount(self) -> None:
        self.query_one("#to" if self.op == "transfer" else "#gpus", Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "stage":
            self._stage()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter moves to the next field; in the last one it stages the edit."""
        event.stop()
        if event.input.id == "gpus":
            self._stage()
        else:
            self.focus_next()

    def _value(self, field: str) -> str:
        found = self.query(f"#{field}").results(Input)
        return next((i.value.strip() for i in found), "")

    def _stage(self) -> None:
        gpus = self._value("gpus")
        hint = self.query_one("#edit-hint", Static)
        if not gpus:
            hint.update(Text("How many GPUs?", style="bold red"))
            return
        row = self.row
        namespace = self._value("namespace") or row_namespace(row)
        if self.op == "set":
            change = QuotaChange(
                op="set",
                tenant=row.tenant,
                model=quota_model(row),
                gpus=amount(gpus),
                namespace=namespace,
            )
        else:
            to = self._value("to")
            if not to:
                hint.update(Text("Which tenant gets them?", style="bold red"))
                return
            change = QuotaChange(
                op="transfer",
                from_tenant=row.tenant,
                to_tenant=to,
                model=quota_model(row),
                gpus=amount(gpus),
                from_namespace=namespace,
            )
        self.dismiss(change)
