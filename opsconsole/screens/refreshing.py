"""A screen that shows one fetch of backend data and refreshes it in the background.

The overview and detail screens share the same life: fetch in a worker (never on the event loop's
critical path), redraw on success, keep the last good data on failure and let the app's banner say
how stale it is. Refreshes are skipped while the screen is not visible or a fetch is still in
flight, so a slow backend is not hammered and never cancels its own answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Generic, TypeVar

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.screen import Screen
from textual.timer import Timer
from textual.visual import VisualType
from textual.widget import Widget
from textual.widgets import DataTable, Static
from textual.widgets.data_table import RowKey
from textual.worker import Worker, WorkerState

from opsconsole.client import BackendError
from opsconsole.screens.full_text import FullTextScreen
from opsconsole.shell import on_top, shell
from opsconsole.text import clip, literal

T = TypeVar("T")


class RefreshingScreen(Screen[None], Generic[T]):
    """Subclasses implement ``fetch`` (backend calls) and ``show`` (update widgets)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh_now", "Refresh")]

    def __init__(self, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.data: T | None = None
        self.error: BackendError | None = None
        self._worker: Worker[None] | None = None
        self._timer: Timer | None = None

    async def fetch(self) -> T:
        """The backend calls; raise ``BackendError`` (the client does) on failure."""
        raise NotImplementedError

    def show(self, data: T) -> None:
        """Put fresh data on screen; called on the event loop after every successful fetch."""
        raise NotImplementedError

    def action_focus_panel(self, panel: str) -> None:
        self.query_one(f"#{panel}", DataTable).focus()

    # -- time and settings, from the shell ---------------------------------------------------------

    def now(self) -> float:
        """The app's clock (frozen in tests and screenshots)."""
        return shell(self.app).clock()

    def refresh_interval(self) -> float:
        return shell(self.app).settings.refresh_interval

    # -- the refresh cycle ----------------------------------------------------------------------

    def on_mount(self) -> None:
        self._timer = self.set_interval(self.refresh_interval(), self._tick)
        self.load()

    def on_screen_resume(self, _event: events.ScreenResume) -> None:
        if self.data is not None:  # coming back from a drill-down: show fresh data at once
            self.load()

    def _tick(self) -> None:
        if on_top(self):
            self.load()

    def action_refresh_now(self) -> None:
        self.load(force=True)

    def load(self, force: bool = False) -> None:
        """Start a fetch unless one is in flight (``force`` replaces it)."""
        running = self._worker is not None and self._worker.state in (
            WorkerState.PENDING,
            WorkerState.RUNNING,
        )
        if running and not force:
            return
        self._worker = self.run_worker(
            self._load, group="refresh", exclusive=True, exit_on_error=False
        )

    async def _load(self) -> None:
        try:
            data = await self.fetch()
        except BackendError as err:
            self.error = err
            shell(self.app).report_backend_error(err)
            return
        self.data = data
        self.error = None
        self.show(data)
        shell(self.app).report_backend_ok()


def update_static(widget: Static, content: VisualType) -> None:
    """Show ``content`` unless it is already shown: an idle console must not redraw what did not
    change (its output goes down an SSH session).

    New content that takes as many lines repaints only the widget. A layout pass would also
    repaint every table's scrollbars on the screen (Textual refreshes a scroll view's scrollbars
    whenever a layout measures it), which on the overview cost more than the content itself.
    """
    if widget.content == content:
        return
    size = widget.size
    lines = widget.get_content_height(size, size, size.width)
    widget.update(content, layout=False)
    fixed_width = widget.styles.width is None or not widget.styles.width.is_auto
    if not (size and fixed_width and widget.get_content_height(size, size, size.width) == lines):
        widget.refresh(layout=True)


def set_count_title(widget: Widget, title: str) -> None:
    """Set a plain border title such as ``Pods (3)`` unless it is already set (setting one
    repaints the whole widget)."""
    if widget.border_title != title:
        widget.border_title = title


def set_subtitle(widget: Widget, subtitle: str | None) -> None:
    """Set a plain border subtitle (None: none) unless it is already set (setting one repaints
    the whole widget)."""
    if widget.border_subtitle != subtitle:
        widget.border_subtitle = subtitle


def refill(table: DataTable[Any], rows: list[tuple[Any, ...]], limit: int = 500) -> None:
    """Replace a small table's rows (at most ``limit``), keeping the cursor's row index.

    Cells are clipped to ``CELL_WIDTH`` (one long event message must not widen its column for
    every row). Unchanged rows are left alone, so a refresh with the same data does not reset the
    operator's horizontal scroll or repaint the table, and when only some rows changed (a
    telemetry tick) only those are repainted.
    """
    rows = rows[:limit]
    if isinstance(table, PanelTable):
        before, table.shown_rows = table.shown_rows, list(rows)
        if before == rows or (before is not None and table.replace_cells(before, rows)):
            return
    row = table.cursor_row
    table.clear()
    for index, cells in enumerate(rows):
        table.add_row(*(clip(cell) for cell in cells), key=str(index))
    if rows:
        table.move_cursor(row=min(max(row, 0), len(rows) - 1), animate=False)


class DetailScreen(RefreshingScreen[T]):
    """A drill-down screen pushed on top of a list; the app's ``escape`` pops it."""

    DEFAULT_CLASSES = "detail-screen"


class Body(VerticalScroll, can_focus=False):
    """The scrolling part of a screen; focus goes to its tables, which scroll it into view."""


class PanelTable(DataTable[Any]):
    """A DataTable that redraws fully once its new rows are measured, and shows a row's whole
    text (``f``; ``enter`` too where ``enter_shows_text``) in a dialog: its cells are clipped.

    Textual 8.2 caches rendered lines by an update counter that measuring does not bump, so a
    header drawn between ``add_row`` and the idle-time measuring keeps the old column widths
    until the next change; small detail tables can afford to drop their caches instead.
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("f", "full_text", "Full text", show=False)]
    shown_rows: list[tuple[Any, ...]] | None = None  # what ``refill`` last put in, unclipped
    enter_shows_text = False  # for rows that open nothing else (events, messages)

    def action_full_text(self) -> None:
        """The highlighted row, every column in full (the cells ``refill`` clipped)."""
        rows = self.shown_rows or []
        if not 0 <= self.cursor_row < len(rows):
            return
        labels = [column.label.plain for column in self.columns.values()]
        fields = list(zip(labels, rows[self.cursor_row], strict=False))
        self.app.push_screen(FullTextScreen(literal(self.border_title or "Row"), fields))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if self.enter_shows_text:
            event.stop()
            self.action_full_text()

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        super()._update_dimensions(new_rows)
        self._clear_caches()

    def replace_cells(self, before: list[tuple[Any, ...]], after: list[tuple[Any, ...]]) -> bool:
        """Put ``after`` in place of ``before`` and repaint only the cells that differ, when the
        rows are as many, as long, and fit the columns' widths; False (nothing done) otherwise.

        Textual's ``update_cell`` repaints the whole table for each cell, and its
        ``refresh_row`` the whole row and whatever of the border and scrollbars the row's line
        crosses; an idle console's output goes down an SSH session, so a telemetry tick should
        cost the cells it changed.
        """
        widths = [column.content_width for column in self.columns.values()]
        if len(before) != len(after) or any(
            len(cells) != len(widths)
            or any(_width(c) > w for c, w in zip(cells, widths, strict=True))
            for cells in after
        ):
            return False
        for y, (old, new) in enumerate(zip(before, after, strict=True)):
            if old != new:
                row_key = RowKey(str(y))  # ``refill``'s keys
                for column_key, cell in zip(self.columns, new, strict=True):
                    self._data[row_key][column_key] = clip(cell)
                self._update_count += 1  # the key of the rendered-row cache
                for x, (was, now) in enumerate(zip(old, new, strict=True)):
                    if was != now:
                        self._repaint_cell(y, x)
        return True

    def _repaint_cell(self, row: int, column: int) -> None:
        """Repaint one cell of a one-line row, only where it is in view."""
        columns = self.ordered_columns
        left = sum(c.get_render_width(self) for c in columns[:column])
        header = self.header_height if self.show_header else 0
        cell = Region(left, header + row, columns[column].get_render_width(self), 1)
        view = self.scrollable_content_region.size.region
        rows = Region(0, header, view.width, view.height - header)  # below the fixed header
        shown = cell.translate(-self.scroll_offset).intersection(rows)
        if shown:
            self.refresh(shown)


def _width(cell: object) -> int:
    clipped = clip(cell)
    return clipped.cell_len if isinstance(clipped, Text) else cell_len(str(clipped))


def panel_table(
    table_id: str,
    title: str,
    columns: list[str],
    *,
    cursor: bool = True,
    enter_shows_text: bool = False,
) -> PanelTable:
    """A small bordered table for a panel (detail lists are short: a DataTable is fine).

    ``enter_shows_text``: enter on a row shows its whole text, for rows that open nothing else."""
    table = PanelTable(id=table_id, classes="panel", cursor_type="row" if cursor else "none")
    table.add_columns(*columns)
    table.border_title = title
    table.can_focus = cursor
    table.enter_shows_text = enter_shows_text
    return table
