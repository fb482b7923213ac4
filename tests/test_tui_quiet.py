"""An idle console redraws only what changed: everything it draws goes down an SSH session."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.scrollbar import ScrollBar
from textual.widget import Widget
from textual.widgets import DataTable, Static

from backend.fleet.model import build_fleet_model
from opsconsole.app import OpsConsoleApp
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


async def test_a_list_refresh_repaints_only_the_cells_that_changed(
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
        regions = [region for regions in repainted for region in regions]
        assert regions and all(len(r) == 1 for r in repainted)  # no full repaint
        assert {(r.y, r.height) for r in regions} == {(row + 1, 1)}  # line 0: the header
        # The cells that changed (ready, status), not the row's names.
        assert sum(r.width for r in regions) < table.scrollable_content_region.width / 3


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


async def test_a_panel_repaints_only_the_cells_that_changed(
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
        util = list(tenants.columns.values())[3]  # the only cell of the row that changed
        assert {(r[0].height, r[0].width) for r in repainted} == {
            (1, util.get_render_width(tenants))
        }


def record_screen_repaints(
    app: OpsConsoleApp, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[Widget, tuple[Region, ...], bool]]:
    """Every ``refresh`` of a widget on the current screen from now on: the widget, the
    regions (none: the whole widget) and whether it asked for a layout."""
    repainted: list[tuple[Widget, tuple[Region, ...], bool]] = []
    original = Widget.refresh

    def spy(widget: Widget, *regions: Region, **kwargs: Any) -> Any:
        if widget.is_mounted and widget.screen is app.screen:
            repainted.append((widget, regions, bool(kwargs.get("layout"))))
        return original(widget, *regions, **kwargs)

    monkeypatch.setattr(Widget, "refresh", spy)
    return repainted


async def overview_refreshed(pilot: Pilot[Any], fake: FleetBackend) -> None:
    """Refresh the overview now and wait until its answers (the overview, the cost) are shown."""
    overviews, costs = requests_for(fake, "/overview"), requests_for(fake, "/cost")
    screen = pilot.app.screen
    assert isinstance(screen, OverviewScreen)
    screen.action_refresh_now()
    await wait_for(
        pilot,
        lambda: requests_for(fake, "/overview") > overviews and requests_for(fake, "/cost") > costs,
        "the overview's and the cost's answers",
    )
    await pilot.pause(0.2)


async def overview_shown(
    pilot: Pilot[Any], fake: FleetBackend, repainted: list[Any], seconds: float = 0.5
) -> None:
    """Wait until the overview has drawn its answers and then ``seconds`` went by without a
    repaint (the chrome settles after the first answers)."""
    await wait_for(pilot, lambda: requests_for(fake, "/cost") >= 1, "the overview's cost line")
    for _ in range(20):
        repainted.clear()
        await pilot.pause(seconds)
        if not repainted:
            return
    raise AssertionError(f"the overview keeps repainting: {repainted}")


async def test_an_identical_overview_refresh_repaints_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FleetBackend.generated()
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        repainted = record_screen_repaints(app, monkeypatch)
        await overview_shown(pilot, fake, repainted)
        await overview_refreshed(pilot, fake)
        assert [(type(w).__name__, w.id) for w, _, _ in repainted] == []


async def test_new_telemetry_on_the_overview_repaints_cells_and_lays_out_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet = generated_fleet()
    fake = FleetBackend(fleet)
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        repainted = record_screen_repaints(app, monkeypatch)
        await overview_shown(pilot, fake, repainted)
        totals = app.screen.query_one("#totals", Static)
        shown = totals.content
        for uuid, sample in list(fleet.samples.items())[:4]:  # the fleet's power goes up
            fleet.samples[uuid] = replace(sample, power_watts=(sample.power_watts or 0) + 150)
        fake.source.model = build_fleet_model(fleet.cluster, fleet.telemetry(), now=SAMPLED_AT)

        await overview_refreshed(pilot, fake)
        assert totals.content != shown
        assert (totals, (), False) in repainted  # the totals, in place
        assert [w for w, _, layout in repainted if layout] == []
        assert [w for w, _, _ in repainted if isinstance(w, ScrollBar)] == []
        whole = [w.id for w, regions, _ in repainted if isinstance(w, DataTable) and not regions]
        assert whole == []  # a table repaints the cells that changed
