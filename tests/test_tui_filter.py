"""A new filter or order: the loads of the previous one stop, and the screen shows the change
and its rows in one frame (never a frame of emptied rows first), yet never waits long."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Static

from backend.schemas import Page
from opsconsole.client import BackendError
from opsconsole.widgets import virtual_table
from opsconsole.widgets.virtual_table import PAGE_SIZE, Column, VirtualTable
from tests.support.console import wait_for


class Rows:
    """A fetch over ``count`` rows a query; the answers for ``slow`` never come, those for
    ``gated`` (and pages past the first, while ``ahead`` is closed) wait for their gate, and
    ``broken`` fails. Records what was asked and cancelled."""

    def __init__(self, count: int = 3) -> None:
        self.count = count
        self.asked: list[str | None] = []
        self.cancelled: list[str | None] = []
        self.gate = asyncio.Event()
        self.ahead = asyncio.Event()
        self.ahead.set()

    async def fetch(self, offset: int, limit: int, q: str | None, sort: str | None) -> Page[str]:
        self.asked.append(q)
        if q == "broken":
            raise BackendError("the backend is away")
        try:
            if q == "slow":
                await asyncio.Event().wait()
            if q == "gated":
                await self.gate.wait()
            if offset:
                await self.ahead.wait()
        except asyncio.CancelledError:
            self.cancelled.append(q)
            raise
        names = [f"{q or 'row'}-{i}" for i in range(self.count)]
        return Page[str](items=names[offset : offset + limit], total=len(names))


class TableApp(App[None]):
    def __init__(self, rows: Rows) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        yield Static("filter")
        yield VirtualTable([Column("NAME", 20, Text)], self.rows.fetch)


class Frame(NamedTuple):
    at: float  # time.monotonic()
    output: str  # what the terminal is sent


def record_frames(app: App[None], monkeypatch: pytest.MonkeyPatch) -> list[Frame]:
    """Every frame sent to the terminal from now on. ``App._display`` is where Textual hands a
    composed frame to its driver: the one place to see what the terminal is sent."""
    frames: list[Frame] = []
    original = app._display

    def display(screen: Any, renderable: Any) -> None:
        if renderable is not None:
            frames.append(Frame(time.monotonic(), renderable.render_segments(app.console)))
        original(screen, renderable)

    monkeypatch.setattr(app, "_display", display)
    return frames


@asynccontextmanager
async def first_rows_drawn(
    rows: Rows, size: tuple[int, int] = (40, 10)
) -> AsyncIterator[tuple[TableApp, Pilot[None], VirtualTable]]:
    """The table's app once its first rows are in and drawn."""
    app = TableApp(rows)
    async with app.run_test(size=size) as pilot:
        table = app.query_one(VirtualTable)
        await wait_for(pilot, lambda: table.item_at(0) is not None, "the first rows")
        await pilot.pause(0.1)
        yield app, pilot, table


async def test_a_new_filter_cancels_the_loads_of_the_previous_one() -> None:
    rows = Rows()
    async with first_rows_drawn(rows) as (_, pilot, table):
        table.set_query("slow")
        await wait_for(pilot, lambda: rows.asked[-1:] == ["slow"], "the slow query asked")
        table.set_query("fast")
        await wait_for(pilot, lambda: table.item_at(0) == "fast-0", "the fast rows")
        await wait_for(pilot, lambda: rows.cancelled == ["slow"], "the slow load cancelled")
        assert table.total == 3


async def test_a_new_filter_draws_nothing_until_its_rows_arrive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(virtual_table, "HOLD_SECONDS", 30.0)
    rows = Rows()
    async with first_rows_drawn(rows) as (app, pilot, table):
        label = app.query_one(Static)
        frames = record_frames(app, monkeypatch)
        label.update("filter: gated")  # the keystroke's echo
        table.set_query("gated")
        await wait_for(pilot, lambda: rows.asked[-1:] == ["gated"], "the query asked")
        await pilot.pause(0.3)  # the pilot asks for a frame at every pause
        assert frames == []  # neither the echo alone nor an emptied table
        rows.gate.set()
        await wait_for(pilot, lambda: frames, "a frame once the rows are in")
        assert "filter: gated" in frames[0].output  # one frame: the echo and the rows
        assert "gated-0" in frames[0].output


async def test_a_filter_whose_rows_do_not_come_holds_the_screen_for_the_limit_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(virtual_table, "HOLD_SECONDS", 0.3)
    rows = Rows()
    async with first_rows_drawn(rows) as (app, pilot, table):
        frames = record_frames(app, monkeypatch)
        started = time.monotonic()
        table.set_query("slow")
        await pilot.pause(0.05)
        table.set_query("gated")  # a second change while the screen is held
        await wait_for(pilot, lambda: frames, "a frame once the hold runs out")
        assert 0.25 <= frames[0].at - started < 2.0
        assert table.item_at(0) is None  # the rows are still on their way
        rows.gate.set()
        await wait_for(pilot, lambda: any("gated-0" in f.output for f in frames), "the rows")


async def test_a_failed_filter_is_drawn_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(virtual_table, "HOLD_SECONDS", 30.0)
    rows = Rows()
    async with first_rows_drawn(rows) as (app, pilot, table):
        frames = record_frames(app, monkeypatch)
        table.set_query("broken")
        await wait_for(pilot, lambda: frames, "a frame long before the hold's limit")


async def test_a_table_removed_while_it_waits_releases_the_screen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(virtual_table, "HOLD_SECONDS", 30.0)
    rows = Rows()
    async with first_rows_drawn(rows) as (app, pilot, table):
        table.set_query("slow")
        await pilot.pause(0.1)
        frames = record_frames(app, monkeypatch)
        await table.remove()
        await wait_for(pilot, lambda: frames, "the screen drawn without the table")


async def test_a_page_read_ahead_out_of_view_draws_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = Rows(count=3 * PAGE_SIZE)
    rows.ahead.clear()
    # Two screens ahead of a 50-line view reach the next page.
    async with first_rows_drawn(rows, size=(40, 50)) as (app, pilot, table):
        await wait_for(pilot, lambda: table.show_vertical_scrollbar, "the scrollbar")
        await pilot.pause(0.1)
        frames = record_frames(app, monkeypatch)
        rows.ahead.set()
        await wait_for(pilot, lambda: table.item_at(PAGE_SIZE) is not None, "the page ahead")
        await pilot.pause(0.2)
        assert frames == []
        await pilot.press("end")  # a page in view is drawn
        await wait_for(pilot, lambda: table.item_at(table.cursor) is not None, "the last rows")
        await wait_for(pilot, lambda: frames, "the last rows drawn")
