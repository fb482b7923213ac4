"""Every backend failure the console must survive: down at start, down later, slow, 500s, garbage.

In each case: no traceback, no exit, a banner saying what failed and how stale the data is, the
last good data still on screen, and recovery once the backend answers again.
"""

from __future__ import annotations

import re

import httpx
import pytest

from opsconsole.app import OpsConsoleApp
from opsconsole.screens.overview import OverviewScreen
from opsconsole.screens.tenants import TenantsScreen
from opsconsole.screens.workloads import WorkloadsScreen
from opsconsole.settings import ConsoleSettings
from opsconsole.widgets.banner import ConnectionBanner
from opsconsole.widgets.command_line import CommandLine
from opsconsole.widgets.virtual_table import VirtualTable
from tests.support.backend import FleetBackend
from tests.support.console import (
    FakeClock,
    make_app,
    record_notifications,
    screen_text,
    wait_for,
)


def banner_shown(app) -> bool:
    banners = app.screen.query(ConnectionBanner)
    return bool(banners) and banners.first().has_class("-visible")


def flat(app) -> str:
    """The screen's text with line breaks removed (the banner may wrap at 80 columns)."""
    return re.sub(r"\s+", " ", screen_text(app))


async def test_backend_down_at_start_shows_banner_and_recovers() -> None:
    fake = FleetBackend()
    fake.mode = "down"
    app = make_app(fake)
    app.backoff_first = 0.05
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: banner_shown(app), "banner")
        text = flat(app)
        assert "backend unreachable" in text and "no data yet" in text
        assert re.search(r"retrying in \d+ s", text)
        assert "● unreachable" in text
        await pilot.press("2")  # lists open and stay usable while nothing answers
        await wait_for(pilot, lambda: isinstance(app.screen, TenantsScreen) and banner_shown(app))
        await pilot.press("down", "pagedown", "end", "slash", "x")
        assert app.is_running

        fake.mode = "ok"  # the health worker reconnects on its own (backoff 0.05 s here)
        await wait_for(pilot, lambda: not banner_shown(app), "reconnect")
        table = app.screen.query_one(VirtualTable)
        await wait_for(pilot, lambda: table.total is not None, "rows after reconnect")
        assert "● connected" in screen_text(app)


async def test_backend_down_later_keeps_the_last_data_browsable() -> None:
    fake = FleetBackend.generated(workloads=300)
    clock = FakeClock()
    app = make_app(fake, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadsScreen))
        assert isinstance(app.screen, WorkloadsScreen)
        table = app.screen.table
        await wait_for(pilot, lambda: table.total == 300)
        assert not banner_shown(app)

        fake.mode = "down"
        clock.advance(41)  # plus the backend's own 1 s cluster age: 42 s old
        await pilot.press("r")
        await wait_for(pilot, lambda: banner_shown(app), "banner")
        text = flat(app)
        assert "backend unreachable" in text
        assert "showing data from 42 s ago" in text
        assert re.search(r"retrying in \d+ s", text)
        assert "model-00000" in text  # the old rows are still there
        await pilot.press("down", "down")
        assert table.cursor == 2 and "model-00002" in screen_text(app)

        await pilot.press("1")  # the overview keeps its last data too
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await wait_for(pilot, lambda: banner_shown(app))
        assert app.is_running


async def test_slow_backend_never_blocks_the_keyboard() -> None:
    fake = FleetBackend()
    fake.mode = "slow"
    app = make_app(fake, timeout=0.5)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")  # opens at once although no answer comes
        await wait_for(pilot, lambda: isinstance(app.screen, TenantsScreen))
        await pilot.press("colon", *"nodes")
        line = app.screen.query_one(CommandLine)
        assert line.input.value == "nodes"  # typing works while requests hang
        await pilot.press("escape")
        await wait_for(pilot, lambda: banner_shown(app), "timeout banner")
        assert "timed out" in flat(app)

        fake.mode = "ok"
        await pilot.press("r")
        await wait_for(pilot, lambda: not banner_shown(app), "recovery")
        await wait_for(pilot, lambda: "team-a" in screen_text(app))


async def test_server_errors_show_the_detail() -> None:
    fake = FleetBackend()
    app = make_app(fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, TenantsScreen))
        assert isinstance(app.screen, TenantsScreen)
        table = app.screen.table
        await wait_for(pilot, lambda: table.total == 6)
        fake.mode = "error"
        await pilot.press("r")
        await wait_for(pilot, lambda: banner_shown(app))
        text = flat(app)
        assert "backend error 500: fleet model not ready" in text
        assert "● error" in text
        assert "team-a" in text


async def test_malformed_answers_show_a_banner() -> None:
    fake = FleetBackend()
    fake.mode = "malformed"
    app = make_app(fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: banner_shown(app))
        assert "malformed answer from backend" in flat(app)
        await pilot.press("3")
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadsScreen))
        await pilot.press("enter", "down", "s")
        assert app.is_running


async def test_unknown_names_are_a_notification_not_a_banner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FleetBackend()
    app = make_app(fake)
    messages = record_notifications(app, monkeypatch)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))
        app.run_command_line("tenant no-such-team")
        await wait_for(pilot, lambda: messages, "notification")
        assert messages == ['backend error 404: tenant "no-such-team" not found']
        assert not banner_shown(app) and app.is_running


async def test_a_failing_endpoint_keeps_its_banner_while_info_answers() -> None:
    fake = FleetBackend()
    app = make_app(fake)
    app.healthy_poll = 0.05  # /info keeps answering, often
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, TenantsScreen))
        assert isinstance(app.screen, TenantsScreen)
        table = app.screen.table
        await wait_for(pilot, lambda: table.total == 6)
        fake.failing_paths = {"/api/v1/tenants"}
        await pilot.press("r")
        await wait_for(pilot, lambda: banner_shown(app))
        polls = len([r for r in fake.requests if r.url.path == "/api/v1/info"])
        await wait_for(
            pilot,
            lambda: len([r for r in fake.requests if r.url.path == "/api/v1/info"]) > polls + 3,
        )
        assert banner_shown(app), "a healthy /info must not hide a failing data endpoint"
        fake.failing_paths = set()
        await pilot.press("r")
        await wait_for(pilot, lambda: not banner_shown(app))


async def test_a_url_that_is_not_a_backend_shows_a_banner() -> None:
    not_found = httpx.MockTransport(lambda r: httpx.Response(404, json={"detail": "Not Found"}))
    settings = ConsoleSettings(
        backend="http://wrong:80", operator="alice", refresh_interval=60.0, request_timeout=1.0
    )
    app = OpsConsoleApp(settings, backend_url="http://wrong:80", transport=not_found)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: banner_shown(app))
        assert "backend error 404: Not Found" in flat(app)
        await pilot.press("2", "down", "enter")
        assert app.is_running
