"""The whole text of one table row, for values a table cell clips.

Table cells are clipped with an ellipsis so that one long value (a 5 KB event reason) cannot
widen its column for every row; this dialog shows each of the row's columns in full, wrapped to
the terminal's width and scrollable. The text is the sanitized text the table holds: still one
line per value, never markup.
"""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from opsconsole.text import clean


def full_cell(cell: object) -> Text:
    """A table cell's whole text, wrapping (a word longer than a line is folded, not cut)."""
    text = cell.copy() if isinstance(cell, Text) else Text(clean(cell))
    text.no_wrap = False
    text.overflow = "fold"
    return text


class FullTextScreen(ModalScreen[None]):
    """``f`` (or ``enter`` where a row opens nothing else) on a panel table's row; ``escape``,
    ``q`` or ``f`` closes it."""

    DEFAULT_CSS = """
    FullTextScreen {
        align: center middle;
    }
    FullTextScreen #full-text {
        width: 100%;
        height: 100%;
        border: round $primary;
        border-title-style: bold;
        background: $surface;
        padding: 0 1;
    }
    FullTextScreen #full-text Static {
        height: auto;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,f", "close", "Close")]

    def __init__(self, title: Text, fields: list[tuple[str, object]]) -> None:
        super().__init__()
        self.title_text = title
        self.fields = fields

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="full-text") as body:
            body.border_title = self.title_text
            body.border_subtitle = "esc closes"
            yield Static(_grid(self.fields))

    def on_mount(self) -> None:
        self.query_one("#full-text").focus()  # the arrows and page keys scroll it

    def action_close(self) -> None:
        self.dismiss(None)


def _grid(fields: list[tuple[str, object]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, cell in fields:
        table.add_row(Text(clean(label)), full_cell(cell))
    return table
