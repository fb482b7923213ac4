"""Enter on a revision: how it differs from the current one, field by field.

Looking is a read, open to every role: a viewer on call sees what a rollback would bring back
before asking an operator for it. Rolling back is the change, so its key follows the workload
detail's rule (offered, shown disabled with the reason, or hidden in a read-only console); the
screen returns True when the operator asks for it, and the detail opens the rollback's
confirmation.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from backend.schemas import RevisionDiff
from opsconsole.client import BackendError
from opsconsole.screens.rollback import diff_rows
from opsconsole.shell import shell
from opsconsole.text import literal

MAX_ROWS = 20


class RevisionScreen(ModalScreen[bool]):
    """One revision against the current one; ``u`` asks for the rollback to it."""

    CSS_PATH = Path(__file__).with_name("dialog.tcss")
    DEFAULT_CLASSES = "dialog-screen"
    DEFAULT_CSS = """
    RevisionScreen #revision-summary { height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("u", "rollback", "Roll back to it"),
    ]

    def __init__(
        self,
        namespace: str,
        kind: str,
        name: str,
        revision: str,
        rollback: bool | None,
        refusal: str | None = None,
    ) -> None:
        """``rollback``: True offers the key, None shows it disabled because of ``refusal``,
        False hides it (a read-only console, or a revision one cannot roll back to)."""
        super().__init__()
        self.namespace, self.kind, self.name_ = namespace, kind, name
        self.revision = revision
        self.rollback = rollback
        self.refusal = refusal
        self.data: RevisionDiff | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="revision", classes="dialog-box") as box:
            box.border_title = literal(
                f"Revision {self.revision} of {self.kind} {self.namespace}/{self.name_}"
            )
            yield Static(Text("Loading the revision…", style="dim"), id="revision-summary")
            table: DataTable[Text] = DataTable(id="revision-diff", cursor_type="row")
            table.display = False  # until there is a diff to show
            yield table
            if self.rollback is None and self.refusal:
                yield Static(literal(f"roll back disabled: {self.refusal}", "yellow"))
        yield Footer()

    def on_mount(self) -> None:
        self.run_worker(self._load(), exit_on_error=False)

    async def _load(self) -> None:
        client = shell(self.app).client
        try:
            data = await client.revision_diff(self.namespace, self.kind, self.name_, self.revision)
        except BackendError as err:
            self.query_one("#revision-summary", Static).update(literal(err.message, "bold red"))
            return
        self.data = data
        self._show(data)

    def _show(self, data: RevisionDiff) -> None:
        summary = Text()
        current = data.current_revision or "?"
        if data.diff is None:
            summary.append_text(literal(data.unknown or "the templates are not known", "yellow"))
        elif data.revision == data.current_revision:
            summary.append(f"revision {current} is the current revision", style="bold")
        elif not data.diff:
            summary.append(f"the same pod template as the current revision {current}")
        else:
            summary.append(f"current revision {current} → revision {data.revision}", style="bold")
        self.query_one("#revision-summary", Static).update(summary)
        if data.diff:
            table = self.query_one("#revision-diff", DataTable)
            table.add_columns("FIELD", f"CURRENT → REVISION {data.revision}")
            table.add_rows(diff_rows(data.diff))
            # Sized here: an auto height is measured before the rows arrive and not again.
            table.styles.height = min(len(data.diff) + 1, MAX_ROWS)
            table.display = True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.rollback if action == "rollback" else True

    def action_rollback(self) -> None:
        self.dismiss(True)

    def action_close(self) -> None:
        self.dismiss(False)
