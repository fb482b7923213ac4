"""An idle console redraws only what changed: everything it draws goes down an SSH session."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import DataTable

from backend.fleet.model import build_fleet_model
from opsconsole.screens.overview import OverviewScreen
from opsconsole.screens.workloads import WorkloadsScreen
from opsconsole.widgets.status_bar import StatusBar
from opsconsole.widgets.virtual_table import VirtualTable
from tests.support.backend import FleetBackend
from tests.support.console import make_app, wait_for
from tests.support.fleets import SAMPLED_AT, generated_fleet

SIZE = (120, 40)


def record_repaints(widget: Widget, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Region, ...]]:
    """The regions of every ``refresh`` of ``widget`` from now on (none: the whole widget)."""
    repainted: list[tuple[Region, ...]] = []
    original = widget.refresh

    def spy(*regions: Region, **kwargs: Any) -> Any:
        repainted.append(regions)
        return original(*regions, **kwargs)

    monkeypatch.setattr(widget, "refresh", spy)
    return repainted


def requests_for(fake: FleetBackend, path: str) -> int:
    return sum(1 for r in fake.requests if r.url.path == "/api/v1" + path)


async def test_a_screen_under_the_visible_one_stops_refreshing() -> None:
    fake = FleetBackend.generated()
    app = make_app(fake, refresh_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: requests_for(fake, "/overview") >= 2, "overview refreshes")
        await pilot.press("3")
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadsScreen), "workloads")
        assert isinstance(app.screen_stack[-2], OverviewScreen)  # still there, underneath
        overview_before = requests_for(fake, "/overview")
        workloads_before = requests_for(fake, "/workloads")
        await pilot.pause(1.0)
        assert requests_for(fake, "/overview") <= overview_before + 1  # one already in flight
        assert requests_for(fake, "/workloads") >= workloads_before + 3


async def test_a_refresh_repaints_only_the_rows_that_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet = generated_fleet()
    fake = FleetBackend(fleet)
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadsScreen), "workloads")
        table = app.screen.query_one(VirtualTable)
        await wait_for(pilot, lambda: table.item_at(5) is not None, "the rows")
        await pilot.pause(0.2)
        rows = [(r, table.item_at(r)) for r in range(20)]
        row, item = next((r, i) for r, i in rows if i is not None and i.kind == "Deployment")
        deployment = fleet.cluster["deployments"][(item.namespace, item.name)]
        status = deployment["status"]
        status["readyReplicas"] = status["availableReplicas"] = 0 if status["readyReplicas"] else 2
        fake.source.model = build_fleet_model(fleet.cluster, fleet.telemetry(), now=SAMPLED_AT)

        repainted = record_repaints(table, monkeypatch)
        table.reload()
        await wait_for(pilot, lambda: table.item_at(row) != item, "the changed row")
        await pilot.pause(0.1)
        assert repainted == [(Region(0, row + 1, table.size.width, 1),)]  # line 0: the header


async def test_the_status_bar_is_not_redrawn_while_nothing_it_shows_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [SAMPLED_AT]
    fake = FleetBackend.generated()
    app = make_app(fake, clock=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.connection.last_ok is not None, "data")
        bar = app.screen.query_one(StatusBar)
        await pilot.pause(0.1)
        redraws: list[int] = []
        monkeypatch.setattr(bar, "refresh", lambda *a, **k: redraws.append(1))
        for seconds in (1.0, 2.0, 3.0):  # fresh data reads "<5 s" all along
            now[0] = SAMPLED_AT + seconds
            bar.update_state()
        assert redraws == []
        now[0] = (app.connection.last_ok or SAMPLED_AT) + 10.0  # stale: the age shows
        bar.update_state()
        assert redraws == [1]


async def test_a_panel_repaints_only_the_rows_that_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet = generated_fleet()
    fake = FleetBackend(fleet)
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        tenants = app.screen.query_one("#tenants", DataTable)
        await wait_for(pilot, lambda: tenants.row_count == 6, "the tenants panel")
        await pilot.pause(0.2)
        before = [tenants.get_row_at(y) for y in range(6)]
        # One GPU of team-b becomes busier: team-b's utilization is the only change.
        uuid, sample = next(
            (u, s)
            for u, s in fleet.samples.items()
            if s.namespace == "team-b" and s.utilization is not None
        )
        fleet.samples[uuid] = replace(sample, utilization=(sample.utilization or 0.0) + 37)
        fake.source.model = build_fleet_model(fleet.cluster, fleet.telemetry(), now=SAMPLED_AT)

        repainted = record_repaints(tenants, monkeypatch)
        await pilot.press("r")
        row = next(y for y, cells in enumerate(before) if "team-b" in str(cells[0]))
        await wait_for(pilot, lambda: tenants.get_row_at(row) != before[row], "team-b's row")
        await pilot.pause(0.1)
        after = [tenants.get_row_at(y) for y in range(6)]
        assert [y for y in range(6) if after[y] != before[y]] == [row]
        assert repainted and all(len(regions) == 1 for regions in repainted)  # no full repaint
        assert {regions[0].height for regions in repainted} == {1}
