"""A virtualised table for lists of any size: only the visible rows exist on screen.

Textual's DataTable builds every row up front (about 1.2 s for 10,000 rows, blocking the event
loop). This table instead asks the server for pages of rows as they scroll into view
(``fetch(offset, limit, q, sort) -> Page``), keeps a small page cache, and renders one line at a
time through the Line API (``ScrollView.render_line``). Filtering and sorting happen on the
server; the table only knows the total, which sets its virtual height.

Every cell is rich ``Text`` built by the column's getter (use ``opsconsole.text.literal`` for
untrusted strings), so nothing from the cluster is ever parsed as markup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from backend.schemas import Page
from opsconsole.client import BackendError
from opsconsole.widgets.frame_hold import FrameHold

PAGE_SIZE = 100
MAX_PAGES = 24  # pages kept in the cache; the farthest from the view are dropped first
GAP = 1  # blank cells between columns
READ_AHEAD_SCREENS = 2
PAGE_WORKERS = "virtual-table-pages"  # the worker group of page fetches
# A new filter or order holds the screen's updates until its first page arrives, at most this
# long: the keystroke's echo and its rows are then drawn in one frame (see ``FrameHold``).
HOLD_SECONDS = 0.1

Fetch = Callable[[int, int, str | None, str | None], Awaitable[Page[Any]]]


@dataclass(frozen=True)
class Column:
    """One column: its header, width, alignment, how to draw a cell and the server's sort key.

    ``get`` returns rich ``Text``; ``sort`` is the API's field name (``None``: not sortable);
    ``flex`` columns share the width left over on wide terminals.
    """

    header: str
    width: int
    get: Callable[[Any], Text]
    align: Literal["left", "right", "center"] = "left"
    sort: str | None = None
    flex: bool = False


class VirtualTable(ScrollView, can_focus=True):
    """A keyboard-driven table over a paged server-side list."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "PgUp", show=False),
        Binding("pagedown", "page_down", "PgDn", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("enter", "select", "Open"),
        Binding("s", "cycle_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "virtual-table--header",
        "virtual-table--cursor",
        "virtual-table--placeholder",
    }

    DEFAULT_CSS = """
    VirtualTable {
        height: 1fr;
        background: $surface;
        /* Keep the scrollbar's column whether or not the rows overflow, so that column widths
           do not jump when the total arrives. */
        scrollbar-gutter: stable;
    }
    VirtualTable > .virtual-table--header {
        text-style: bold;
        background: $panel;
        color: $foreground;
    }
    VirtualTable > .virtual-table--cursor {
        background: $block-cursor-blurred-background;
    }
    VirtualTable:focus > .virtual-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
    }
    VirtualTable > .virtual-table--placeholder {
        color: $text-muted;
    }
    """

    cursor: reactive[int] = reactive(0, always_update=True, init=False)

    class RowSelected(Message):
        """Enter on a loaded row."""

        def __init__(self, table: VirtualTable, item: Any, row: int) -> None:
            super().__init__()
            self.table = table
            self.item = item
            self.row = row

        @property
        def control(self) -> VirtualTable:
            return self.table

    class Loaded(Message):
        """A page arrived: the backend is answering."""

    class LoadFailed(Message):
        """A page could not be fetched; the table keeps showing what it had."""

        def __init__(self, error: BackendError) -> None:
            super().__init__()
            self.error = error

    def __init__(
        self,
        columns: list[Column],
        fetch: Fetch,
        *,
        sort: str | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns = columns
        self._fetch = fetch
        self.query_text: str | None = None
        self.sort: str | None = sort
        self.total: int | None = None  # None until the first page arrives
        self._cache: dict[int, list[Any]] = {}
        self._stale: dict[int, list[Any]] = {}  # the previous refresh, shown until replaced
        self._pending: set[tuple[int, int]] = set()  # (generation, page)
        self._generation = 0
        self._widths = [column.width for column in columns]
        # Rendered lines by (row, is cursor row); row -1 is the header. Cleared whenever rows,
        # widths or styles change, so scrolling back and moving the cursor cost little.
        self._lines: LRUCache[tuple[int, bool], Strip] = LRUCache(1024)
        self._styles: dict[str, Style] = {}
        self._hold: FrameHold | None = None

    # -- data -------------------------------------------------------------------------------

    def set_query(self, query: str | None) -> None:
        """Filter on the server: forget every row and start again from the top."""
        query = query or None
        if query == self.query_text:
            return
        self.query_text = query
        self._restart()

    def set_sort(self, sort: str | None) -> None:
        """Sort on the server by an API field (``-field`` descending)."""
        self.sort = sort
        self._restart()

    def reload(self) -> None:
        """Fetch the visible rows again, showing the old ones until the new ones arrive."""
        self._generation += 1
        self._stale = {**self._stale, **self._cache}
        self._cache = {}
        self._ensure_visible_pages(read_ahead=False)  # a refresh re-reads only what is seen

    def _restart(self) -> None:
        # Pages of the previous query or order are of no use any more: stop waiting for them,
        # so that the console does not parse them and the next query does not queue behind them.
        self.workers.cancel_group(self, PAGE_WORKERS)
        self._generation += 1
        self._lines.clear()
        self._cache.clear()
        self._stale.clear()
        self.total = None
        self.cursor = 0
        self.scroll_to(y=0, animate=False, immediate=True)
        self._update_virtual_size()
        if self.is_mounted:
            self._frame_hold().hold()
        self._ensure_visible_pages()
        self.refresh()

    def _frame_hold(self) -> FrameHold:
        if self._hold is None:
            self._hold = FrameHold(self.app, HOLD_SECONDS)
        return self._hold

    def _release_frames(self) -> None:
        if self._hold is not None:
            self._hold.release()

    def item_at(self, row: int) -> Any | None:
        """The loaded item at ``row``, or ``None`` while its page is missing."""
        page = self._cache.get(row // PAGE_SIZE) or self._stale.get(row // PAGE_SIZE)
        if page is None:
            return None
        index = row % PAGE_SIZE
        return page[index] if index < len(page) else None

    @property
    def cursor_item(self) -> Any | None:
        return self.item_at(self.cursor)

    def _visible_rows(self) -> range:
        first = round(self.scroll_offset.y)
        last = first + max(1, self._rows_height())
        if self.total is not None:
            last = min(last, self.total)
        return range(first, max(first + 1, last))

    def _ensure_visible_pages(self, *, read_ahead: bool = True) -> None:
        """Fetch the pages under the view, and read two screens ahead in both directions so
        that paging through a long list rarely waits for the server."""
        if not self.is_mounted:
            return
        rows = self._visible_rows()
        if self.total is None or not read_ahead:  # what is on screen comes first
            first, last = rows.start, rows.stop
        else:
            ahead = READ_AHEAD_SCREENS * len(rows)
            first, last = max(0, rows.start - ahead), min(self.total, rows.stop + ahead)
        for page in range(first // PAGE_SIZE, (max(first + 1, last) - 1) // PAGE_SIZE + 1):
            if page not in self._cache and (self._generation, page) not in self._pending:
                self._pending.add((self._generation, page))
                self.run_worker(
                    self._load_page(self._generation, page),
                    group=PAGE_WORKERS,
                    exit_on_error=False,
                )

    async def _load_page(self, generation: int, page: int) -> None:
        """Fetch one page; never raises (a failure is a message for the app's banner)."""
        try:
            answer = await self._fetch(page * PAGE_SIZE, PAGE_SIZE, self.query_text, self.sort)
        except BackendError as error:
            self._failed(generation, error)
            return
        except Exception as error:  # a bug must not take the console down
            self._failed(generation, BackendError(f"{type(error).__name__}: {error}"))
            return
        finally:
            self._pending.discard((generation, page))
        if generation != self._generation:
            return
        self._store_page(page, answer)
        self._release_frames()
        self.post_message(self.Loaded())

    def _failed(self, generation: int, error: BackendError) -> None:
        """Say that a page could not be fetched; if the screen waited for it, draw what the
        table has."""
        if generation == self._generation:
            self._release_frames()
        self.post_message(self.LoadFailed(error))

    def _store_page(self, page: int, answer: Page[Any]) -> None:
        """Keep a page; repaint only the rows that changed when a refresh brings the same rows
        back (an idle console must not redraw the screen: its output goes down SSH)."""
        before = self._cache.get(page, self._stale.get(page))
        items = list(answer.items)
        self._cache[page] = items
        self._stale.pop(page, None)
        self._trim_cache(page)
        if answer.total == self.total and before is not None and len(before) == len(items):
            for i, (was, now) in enumerate(zip(before, items, strict=True)):
                if was != now:
                    self._repaint_row(page * PAGE_SIZE + i, was, now)
            return
        self._lines.clear()
        if answer.total != self.total:
            first_answer = self.total is None
            self.total = answer.total
            self._update_virtual_size()
            if self.total and self.cursor >= self.total:
                self.cursor = self.total - 1
            if first_answer:
                self._ensure_visible_pages()  # now the read-ahead can start
        elif not self._in_view(page):
            return  # read ahead: nothing on screen changes, so nothing is drawn or sent
        self.refresh()

    def _in_view(self, page: int) -> bool:
        rows = self._visible_rows()
        return page * PAGE_SIZE < rows.stop and rows.start < (page + 1) * PAGE_SIZE

    def _repaint_row(self, row: int, was: Any, now: Any) -> None:
        """Repaint the cells of ``row`` that show something else now, where they are in view
        (a telemetry round changes a few figures of each GPU, not its names)."""
        self._lines.discard((row, False))
        self._lines.discard((row, True))
        line = row - round(self.scroll_offset.y) + 1  # line 0: the header
        if not 1 <= line <= self._rows_height():
            return
        view = self.scrollable_content_region.width
        left = -round(self.scroll_offset.x)
        for column, width in zip(self.columns, self._widths, strict=True):
            if self._cell(column, was) != self._cell(column, now):
                cell = Region(left, line, width, 1).intersection(Region(0, line, view, 1))
                if cell:
                    self.refresh(cell)
            left += width + GAP

    def _trim_cache(self, around: int) -> None:
        for cache in (self._cache, self._stale):
            while len(cache) > MAX_PAGES:
                farthest = max(cache, key=lambda page: abs(page - around))
                del cache[farthest]

    # -- geometry ---------------------------------------------------------------------------

    def _rows_height(self) -> int:
        """Lines available for rows (the header takes one)."""
        return max(1, self.scrollable_content_region.height - 1)

    def _update_virtual_size(self) -> None:
        width = sum(self._widths) + GAP * (len(self._widths) - 1)
        self.virtual_size = Size(width, max(1, self.total or 0) + 1)

    def _layout_columns(self) -> None:
        """Give flex columns the width a wide terminal leaves over."""
        base = [column.width for column in self.columns]
        used = sum(base) + GAP * (len(base) - 1)
        spare = self.scrollable_content_region.width - used
        flex = [i for i, column in enumerate(self.columns) if column.flex]
        if spare > 0 and flex:
            for n, i in enumerate(flex):
                base[i] += spare // len(flex) + (1 if n < spare % len(flex) else 0)
        if base != self._widths:
            self._widths = base
            self._lines.clear()
        self._update_virtual_size()

    def on_mount(self) -> None:
        self._layout_columns()
        self._ensure_visible_pages()

    def on_unmount(self) -> None:
        self._release_frames()

    def on_resize(self, event: events.Resize) -> None:
        self._layout_columns()
        self._ensure_visible_pages()
        self._keep_cursor_visible()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._ensure_visible_pages()

    # -- cursor and keys --------------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        top = self.scroll_offset.y
        self._keep_cursor_visible()
        if self.scroll_offset.y == top:  # no scroll: only the two rows that changed
            self.refresh_line(old + 1)
            self.refresh_line(new + 1)

    def _move(self, delta: int) -> None:
        if not self.total:
            return
        self.cursor = min(max(0, self.cursor + delta), self.total - 1)

    def _keep_cursor_visible(self) -> None:
        top = round(self.scroll_offset.y)
        height = self._rows_height()
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        self._move(-1)

    def action_cursor_down(self) -> None:
        self._move(1)

    def action_page_up(self) -> None:
        self._move(-self._rows_height())

    def action_page_down(self) -> None:
        self._move(self._rows_height())

    def action_first(self) -> None:
        self._move(-(self.total or 0))

    def action_last(self) -> None:
        self._move(self.total or 0)

    def action_select(self) -> None:
        item = self.cursor_item
        if item is not None:
            self.post_message(self.RowSelected(self, item, self.cursor))

    def action_cycle_sort(self) -> None:
        """Sort by the next sortable column (names ascending, figures as the column says)."""
        keys = [column.sort for column in self.columns if column.sort]
        if not keys:
            return
        current = (self.sort or "").lstrip("-")
        following = keys[(keys.index(current) + 1) % len(keys)] if current in keys else keys[0]
        self.set_sort(following)

    def action_reverse_sort(self) -> None:
        if self.sort:
            self.set_sort(self.sort[1:] if self.sort.startswith("-") else "-" + self.sort)

    def on_click(self, event: events.Click) -> None:
        row = round(self.scroll_offset.y) + event.y - 1
        if event.y >= 1 and self.total and row < self.total:
            self.cursor = row
            if event.chain > 1:
                self.action_select()

    # -- rendering --------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._lines.clear()

    def _style(self, name: str) -> Style:
        """The widget's (``""``) or a component's rich style, looked up once per style change."""
        style = self._styles.get(name)
        if style is None:
            style = self.rich_style if not name else self.get_component_rich_style(name)
            self._styles[name] = style
        return style

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = round(scroll_y) + y - 1 if y else -1
        key = (row, row == self.cursor)
        line = self._lines.get(key)
        if line is None:
            line = self._header_strip() if y == 0 else self._row_strip(row, self._style(""))
            self._lines[key] = line
        return line.crop_extend(scroll_x, scroll_x + self.size.width, self._style(""))

    def _header_strip(self) -> Strip:
        style = self._style("virtual-table--header")
        sort_key = (self.sort or "").lstrip("-")
        cells = []
        for column in self.columns:
            label = column.header
            if column.sort and column.sort == sort_key:
                label += "▼" if (self.sort or "").startswith("-") else "▲"
            cells.append(Text(label))
        return self._join(cells, style, fill=True)

    def _row_strip(self, row: int, base: Style) -> Strip:
        placeholder = self._style("virtual-table--placeholder")
        # Every segment carries a style: NO_COLOR's monochrome filter fails on a None style.
        if self.total is not None and row >= self.total:
            if row == 0:
                return Strip([Segment("  no matching rows", placeholder)])
            return Strip.blank(0, base)
        item = self.item_at(row)
        if item is None:
            if self.total is None and row > 0:
                return Strip.blank(0, base)  # before the first answer: one "loading" line
            cells = [Text("…" if i == 0 else "") for i in range(len(self.columns))]
            return self._join(cells, placeholder)
        if row == self.cursor:
            base = self._style("virtual-table--cursor")
        cells = [self._cell(column, item) for column in self.columns]
        return self._join(cells, base, fill=row == self.cursor)

    @staticmethod
    def _cell(column: Column, item: Any) -> Text:
        try:
            cell = column.get(item)
        except Exception:  # a missing field shows as "?" rather than breaking the table
            cell = Text("?")
        return cell.copy() if isinstance(cell, Text) else Text(str(cell))

    def _join(self, cells: list[Text], style: Style, *, fill: bool = False) -> Strip:
        line = Text(no_wrap=True, end="")
        for i, (cell, column, width) in enumerate(
            zip(cells, self.columns, self._widths, strict=True)
        ):
            if i:
                line.append(" " * GAP)
            cell.truncate(width, overflow="ellipsis")
            cell.align(column.align, width)
            line.append_text(cell)
        total_width = max(self.virtual_size.width, self.size.width) if fill else line.cell_len
        segments = list(line.render(self.app.console))
        strip = Strip(segments, line.cell_len).apply_style(style)
        return strip.adjust_cell_length(total_width, style) if fill else strip
