"""Snapshot tests: every screen of the console at 80×24 and 160×48, dark theme (plus one light).

The real ``OpsConsoleApp`` runs against the fixed fake fleet with a frozen clock, so the SVGs are
deterministic; ``pytest --snapshot-update`` regenerates them under ``tests/__snapshots__``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Footer

from opsconsole.app import OpsConsoleApp
from opsconsole.screens.help import HelpScreen
from opsconsole.screens.refreshing import RefreshingScreen
from opsconsole.settings import ConsoleSettings
from tests.tui_fleet import NOW, FleetFake

SIZES = [(80, 24), (160, 48)]
Navigate = Callable[[OpsConsoleApp], None]

SCREENS: dict[str, Navigate] = {
    "overview": lambda app: None,
    "tenant": lambda app: app.action_show_tenant("team-a"),
    "workload": lambda app: app.action_show_workload("team-a", "Deployment", "llama-70b"),
    "inferenceservice": lambda app: app.action_show_workload("serving", "InferenceService", "chat"),
    "node": lambda app: app.action_show_node("h100-node-02"),
    "help": lambda app: app.action_help(),
}


def make_app(theme: str = "opsconsole-dark") -> OpsConsoleApp:
    settings = ConsoleSettings(
        backend="http://fake-backend:8080",
        operator="alice",
        theme=theme,
        refresh_interval=3600,
    )
    return OpsConsoleApp(
        settings,
        backend_url="http://fake-backend:8080",
        clock=lambda: NOW,
        transport=FleetFake().transport(),
    )


def navigate_and_settle(navigate: Navigate) -> Callable[[Pilot[None]], object]:
    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, OpsConsoleApp)
        await _loaded(pilot)
        navigate(app)
        await _loaded(pilot)
        await _stable(pilot)
        for table in app.screen.query(DataTable):  # redraw once more, from a settled layout
            repaint(table)
        await pilot.pause(0.1)
        await pilot.wait_for_scheduled_animations()

    return run_before


async def _stable(pilot: Pilot[None]) -> None:
    """Until two screenshots in a row are the same (scrollbars and widths have settled)."""
    previous = ""
    for _ in range(50):
        await pilot.pause(0.05)
        current = pilot.app.export_screenshot()
        if current == previous:
            return
        previous = current


async def _loaded(pilot: Pilot[None]) -> None:
    """Until the screen on top (or the one under the help) shows data, /info has answered and
    the footer shows its keys."""
    app = pilot.app
    assert isinstance(app, OpsConsoleApp)
    for _ in range(250):
        await pilot.pause(0.02)
        top = app.screen_stack[-2] if isinstance(app.screen, HelpScreen) else app.screen
        footers = top.query(Footer)
        if (
            isinstance(top, RefreshingScreen)
            and top.data is not None
            and app.connection.info is not None
            and footers
            and footers.first().children  # the footer fills itself a moment after mounting
            and all(_measured(table) for table in top.query(DataTable))
        ):
            for table in top.query(DataTable):
                repaint(table)
            return
    raise AssertionError("the screen never showed data")


def repaint(table: DataTable[object]) -> None:
    """Drop a DataTable's line caches: a header line drawn in the moment between ``add_row``
    and the idle-time column measuring is cached with the old widths (Textual 8.2)."""
    table._clear_caches()
    table.refresh()


def _measured(table: DataTable[object]) -> bool:
    """A DataTable sizes its new rows on idle; a screenshot before that has narrow columns."""
    return table.virtual_size.height >= table.row_count + int(table.show_header)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen_snapshot(snap_compare, screen: str, size: tuple[int, int]) -> None:
    assert snap_compare(
        make_app(), terminal_size=size, run_before=navigate_and_settle(SCREENS[screen])
    )


def test_light_theme_snapshot(snap_compare) -> None:
    assert snap_compare(
        make_app("opsconsole-light"),
        terminal_size=(80, 24),
        run_before=navigate_and_settle(SCREENS["overview"]),
    )
