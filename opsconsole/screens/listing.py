"""The common shape of the list screens (tenants, workloads, nodes, GPUs).

A title line, a ``/`` filter that is applied on the server as the operator types (debounced), and
a ``VirtualTable`` that pages rows in as they scroll into view. The table refreshes on the app's
interval while the screen is visible, keeping the old rows on screen until new ones arrive.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Protocol, runtime_checkable

from rich.text import Text
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, Static

from backend.schemas import Page
from opsconsole.screens.refreshing import update_static
from opsconsole.shell import on_top, shell
from opsconsole.text import literal
from opsconsole.widgets.plain_input import PlainInput
from opsconsole.widgets.virtual_table import Column, VirtualTable

FILTER_DEBOUNCE = 0.1  # the server is asked at most this often while the operator types


@runtime_checkable
class Filtered(Protocol):
    """A screen with a ``FilterInput``: Esc in the input clears its filter."""

    def clear_filter(self) -> None: ...


class FilterInput(PlainInput):
    """The ``/`` filter line; Esc clears it and gives the keyboard back to the table."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Clear"),
    ]

    def action_dismiss(self) -> None:
        screen = self.screen
        if isinstance(screen, Filtered):
            screen.clear_filter()

    def open(self) -> None:
        """Show the line and type into it."""
        self.add_class("-open")
        self.focus()

    def close(self) -> None:
        """Empty it and hide it."""
        self.value = ""
        self.remove_class("-open")


class ListScreen(Screen[None]):
    """Subclasses give ``columns()``, ``fetch_page()``, ``heading()`` and ``open_item()``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_or_back", "Back"),
        Binding("r", "refresh_now", "Refresh", show=False),
    ]

    DEFAULT_CSS = """
    ListScreen > #list-title {
        height: 1;
        padding: 0 1;
        background: $boost;
    }
    ListScreen > FilterInput, ListScreen > FilterInput:focus {
        display: none;
        height: 1;
        border: none;
        padding: 0 1;
    }
    ListScreen > FilterInput.-open {
        display: block;
    }
    """

    default_sort: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self._debounce: Timer | None = None
        self._last_filter = 0.0  # time.monotonic() when the filter was last sent

    # -- what subclasses provide -----------------------------------------------------------------

    def columns(self) -> list[Column]:
        raise NotImplementedError

    async def fetch_page(
        self, offset: int, limit: int, q: str | None, sort: str | None
    ) -> Page[Any]:
        raise NotImplementedError

    def heading(self) -> Text:
        raise NotImplementedError

    def open_item(self, item: Any) -> None:
        raise NotImplementedError

    # -- composition -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="list-title")
        yield FilterInput(placeholder="filter (server-side, as you type)", id="filter")
        yield VirtualTable(self.columns(), self.fetch_page, sort=self.default_sort, id="rows")

    @property
    def table(self) -> VirtualTable:
        return self.query_one(VirtualTable)

    def on_mount(self) -> None:
        self.set_interval(shell(self.app).settings.refresh_interval, self._tick)
        self.table.focus()
        self._update_title()

    def on_screen_resume(self) -> None:
        if self.table.total is not None:
            self.table.reload()

    def _tick(self) -> None:
        if on_top(self):
            self.table.reload()

    def _update_title(self) -> None:
        table = self.table
        title = self.heading()
        title.append(f"  {'…' if table.total is None else table.total} rows", style="dim")
        if table.query_text:
            title.append("  filter ", style="dim")
            title.append_text(literal(table.query_text, style="bold"))
        if table.sort:
            title.append(f"  sort {table.sort}", style="dim")
        update_static(self.query_one("#list-title", Static), title)

    # -- events ------------------------------------------------------------------------------------

    def on_virtual_table_loaded(self, _event: VirtualTable.Loaded) -> None:
        self._update_title()  # not stopped: the app learns that the backend answers

    def on_virtual_table_row_selected(self, event: VirtualTable.RowSelected) -> None:
        event.stop()
        self.open_item(event.item)

    def action_filter(self) -> None:
        self.query_one(FilterInput).open()

    def action_refresh_now(self) -> None:
        self.table.reload()

    def action_clear_or_back(self) -> None:
        """Esc clears an active filter first; without one, esc does what it does everywhere."""
        if not self.table.query_text:
            raise SkipAction
        self.clear_filter()

    def clear_filter(self) -> None:
        self.query_one(FilterInput).close()
        self._apply_filter("")
        self.table.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        """Filter as the operator types: at once after a pause (leading edge), and at most
        every ``FILTER_DEBOUNCE`` seconds during fast typing (the last keystroke always wins)."""
        if event.input.id != "filter":
            return
        event.stop()
        if self._debounce is not None:
            self._debounce.stop()
            self._debounce = None
        value = event.value
        wait = self._last_filter + FILTER_DEBOUNCE - time.monotonic()
        if wait <= 0:
            self._apply_filter(value)
        else:
            self._debounce = self.set_timer(wait, lambda: self._apply_filter(value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "filter":
            return
        event.stop()
        self._apply_filter(event.value)
        if not event.value:
            event.input.remove_class("-open")
        self.table.focus()

    def _apply_filter(self, value: str) -> None:
        if self._debounce is not None:
            self._debounce.stop()
            self._debounce = None
        self._last_filter = time.monotonic()
        self.table.set_query(value.strip() or None)
        self._update_title()


class TenantListScreen(ListScreen):
    """A list of every tenant's rows, or of one tenant's (``:workloads team-a``): the server is
    asked for that tenant's, and the title names it after ``list_name``. Each row names a
    workload (namespace, kind, name), which Enter opens."""

    list_name = ""

    def __init__(self, tenant: str | None = None) -> None:
        super().__init__()
        self.tenant = tenant or None

    def heading(self) -> Text:
        heading = Text(self.list_name, style="bold")
        if self.tenant:
            heading.append(" of ")
            heading.append_text(literal(self.tenant, style="bold"))
        return heading

    def open_item(self, item: Any) -> None:
        shell(self.app).action_show_workload(item.namespace, item.kind.value, item.name)
