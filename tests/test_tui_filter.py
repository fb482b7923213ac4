"""A new filter stops waiting for the pages of the previous one."""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual.app import App, ComposeResult

from backend.schemas import Page
from opsconsole.widgets.virtual_table import Column, VirtualTable
from tests.support.console import wait_for


class Rows:
    """A fetch whose answers for ``slow`` never come; records what was asked and cancelled."""

    def __init__(self) -> None:
        self.asked: list[str | None] = []
        self.cancelled: list[str | None] = []

    async def fetch(self, offset: int, limit: int, q: str | None, sort: str | None) -> Page[str]:
        self.asked.append(q)
        if q == "slow":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.append(q)
                raise
        names = [f"{q or 'row'}-{i}" for i in range(3)]
        return Page[str](items=names[offset : offset + limit], total=len(names))


class TableApp(App[None]):
    def __init__(self, rows: Rows) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        yield VirtualTable([Column("NAME", 20, Text)], self.rows.fetch)


async def test_a_new_filter_cancels_the_loads_of_the_previous_one() -> None:
    rows = Rows()
    app = TableApp(rows)
    async with app.run_test(size=(40, 10)) as pilot:
        table = app.query_one(VirtualTable)
        await wait_for(pilot, lambda: table.item_at(0) == "row-0", "the first rows")
        table.set_query("slow")
        await wait_for(pilot, lambda: rows.asked[-1:] == ["slow"], "the slow query asked")
        table.set_query("fast")
        await wait_for(pilot, lambda: table.item_at(0) == "fast-0", "the fast rows")
        await wait_for(pilot, lambda: rows.cancelled == ["slow"], "the slow load cancelled")
        assert table.total == 3
