"""Pilot tests of navigation: the ``:`` command line, number keys, drill-down, filter, help, palette."""

from __future__ import annotations

import re

import pytest
from textual.command import CommandPalette
from textual.filter import Monochrome

from opsconsole.screens.gpus import GpusScreen, NodesScreen
from opsconsole.screens.help import HelpScreen
from opsconsole.screens.node_detail import NodeDetailScreen
from opsconsole.screens.overview import OverviewScreen
from opsconsole.screens.tenant_detail import TenantDetailScreen
from opsconsole.screens.tenants import TenantsScreen
from opsconsole.screens.workload_detail import WorkloadDetailScreen
from opsconsole.screens.workloads import WorkloadsScreen
from opsconsole.widgets.command_line import CommandLine
from opsconsole.widgets.virtual_table import VirtualTable
from tests.support.backend import FleetBackend
from tests.support.console import make_app, record_notifications, screen_text, wait_for


def loaded(app) -> bool:
    tables = app.screen.query(VirtualTable)
    return bool(tables) and tables.first().total is not None


async def open_view(pilot, key: str, screen_type: type) -> None:
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, screen_type), screen_type.__name__)
    await wait_for(pilot, lambda: loaded(pilot.app), "rows")


async def type_command(pilot, text: str, *, keys: bool = False) -> None:
    """Open the command line and enter ``text`` (key by key, or at once to keep tests quick)."""
    await pilot.press("colon")
    if keys:
        await pilot.press(*text)
        return
    line = pilot.app.screen.query_one(CommandLine)
    assert line.input.has_focus
    line.input.value = text
    line.input.cursor_position = len(text)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_number_keys_open_each_view(size: tuple[int, int]) -> None:
    app = make_app(FleetBackend())
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await open_view(pilot, "2", TenantsScreen)
        assert "team-a" in screen_text(app)
        await open_view(pilot, "3", WorkloadsScreen)
        assert "model-00000" in screen_text(app)
        await open_view(pilot, "4", GpusScreen)
        assert "gpu-node-0000" in screen_text(app)
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))
        assert len(app.screen_stack) == 2  # views replace each other on top of the overview
        text = screen_text(app)
        assert "op alice" in text and "connected" in text


async def test_command_line_runs_commands_with_arguments() -> None:
    fake = FleetBackend()
    app = make_app(fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await type_command(pilot, "workloads team-b", keys=True)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadsScreen))
        assert isinstance(app.screen, WorkloadsScreen)
        assert app.screen.tenant == "team-b"
        await wait_for(pilot, lambda: loaded(app))
        assert fake.last_params("/workloads")["tenant"] == "team-b"
        text = screen_text(app)
        assert "Workloads of team-b" in text
        assert "team-a" not in text.split("Workloads of team-b", 1)[1]

        await type_command(pilot, "gpus gpu-node-0002")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GpusScreen) and loaded(app))
        assert isinstance(app.screen, GpusScreen)
        assert app.screen.node == "gpu-node-0002"
        await type_command(pilot, "nodes")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, NodesScreen))
        await type_command(pilot, "tenant team-c")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TenantDetailScreen))


async def test_tab_completes_commands_and_names() -> None:
    app = make_app(FleetBackend.generated(tenants=30))
    async with app.run_test(size=(80, 24)) as pilot:
        await type_command(pilot, "ten", keys=True)
        await pilot.press("tab")
        line = app.screen.query_one(CommandLine)
        await wait_for(pilot, lambda: line.input.value == "tenant", "common prefix")
        await pilot.press("s", "tab")
        await wait_for(pilot, lambda: line.input.value == "tenants")

        line.input.value = "workloads team-c"
        await pilot.press("tab")  # team-c and team-c1 both match: the common prefix stays
        await wait_for(pilot, lambda: "team-c1" in screen_text(app), "candidates hint")
        assert line.input.value == "workloads team-c"
        await pilot.press("1", "tab")
        await wait_for(pilot, lambda: line.input.value == "workloads team-c1")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadsScreen))
        assert isinstance(app.screen, WorkloadsScreen)
        assert app.screen.tenant == "team-c1"

        await type_command(pilot, "gpus gpu-n")
        await pilot.press("tab")
        line = app.screen.query_one(CommandLine)
        await wait_for(pilot, lambda: line.input.value == "gpus gpu-node-000", line.input.value)
        assert "gpu-node-0003" in screen_text(app)


async def test_unknown_and_wrong_commands_only_notify(monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(FleetBackend())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))
        messages = record_notifications(app, monkeypatch)
        for command in ("frobnicate", "help me", "tenant", "t"):
            await type_command(pilot, command)
            await pilot.press("enter")
            await pilot.pause()
        assert app.is_running and isinstance(app.screen, OverviewScreen)
        assert messages == [
            "unknown command 'frobnicate' (try :help)",
            ":help takes no argument",
            ":tenant needs a tenant name",
            "ambiguous command 't': tenants, tenant",
        ]


async def test_escape_closes_the_command_line_first() -> None:
    app = make_app(FleetBackend())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_view(pilot, "2", TenantsScreen)
        await type_command(pilot, "nod")
        line = app.screen.query_one(CommandLine)
        assert line.is_open
        await pilot.press("escape")
        assert not line.is_open and isinstance(app.screen, TenantsScreen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))


async def test_enter_drills_down_and_escape_goes_back() -> None:
    app = make_app(FleetBackend())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_view(pilot, "2", TenantsScreen)
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TenantDetailScreen))
        assert app.screen.name == "team-b" or "team-b" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, TenantsScreen))
        assert isinstance(app.screen, TenantsScreen)
        assert app.screen.table.cursor == 1  # the list is as it was left

        await open_view(pilot, "3", WorkloadsScreen)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadDetailScreen))
        await pilot.press("escape")

        await type_command(pilot, "nodes")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, NodesScreen) and loaded(app))
        await pilot.press("down", "g")
        await wait_for(pilot, lambda: isinstance(app.screen, GpusScreen) and loaded(app))
        assert isinstance(app.screen, GpusScreen)
        assert app.screen.node == "gpu-node-0001"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        await pilot.press("escape", "escape")
        await wait_for(pilot, lambda: isinstance(app.screen, NodesScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, NodeDetailScreen))


async def test_filter_is_sent_to_the_server_and_only_matches_are_shown() -> None:
    fake = FleetBackend.generated(tenants=6, workloads=60)
    app = make_app(fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_view(pilot, "3", WorkloadsScreen)
        await pilot.press("slash", *"model-0004")
        assert isinstance(app.screen, WorkloadsScreen)
        table = app.screen.table
        await wait_for(pilot, lambda: table.query_text == "model-0004" and table.total == 10)
        assert fake.last_params("/workloads")["q"] == "model-0004"
        text = screen_text(app)
        shown = [f"model-{i:05d}" for i in range(60) if f"model-{i:05d}" in text]
        assert shown == [f"model-{i:05d}" for i in range(40, 50)]
        assert "filter model-0004" in text
        await pilot.press("enter")  # keeps the filter, gives the keys back to the table
        assert table.has_focus
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadDetailScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadsScreen))
        await pilot.press("escape")  # the first esc clears the filter
        await wait_for(pilot, lambda: table.query_text is None and table.total == 60)
        assert isinstance(app.screen, WorkloadsScreen)


async def test_sort_key_cycles_the_server_sort() -> None:
    fake = FleetBackend()
    app = make_app(fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_view(pilot, "2", TenantsScreen)
        assert isinstance(app.screen, TenantsScreen)
        table = app.screen.table
        assert table.sort == "name"
        await pilot.press("s")
        await wait_for(pilot, lambda: fake.last_params("/tenants").get("sort") == "gpu_quota")
        await pilot.press("S")
        await wait_for(pilot, lambda: fake.last_params("/tenants").get("sort") == "-gpu_quota")
        assert "QUOTA▼" in screen_text(app)


async def test_help_and_palette_open() -> None:
    app = make_app(FleetBackend())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))

        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"go to tenants")
        await wait_for(pilot, lambda: "go to tenants" in screen_text(app))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TenantsScreen))

        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"team-d")
        await wait_for(pilot, lambda: "go to tenant team-d" in screen_text(app))
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TenantDetailScreen))


async def test_q_quits_only_from_the_root() -> None:
    app = make_app(FleetBackend())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_view(pilot, "2", TenantsScreen)
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "exit")


async def test_theme_toggle_and_sandbox_marker() -> None:
    app = make_app(FleetBackend(), sandbox=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "SANDBOX" in screen_text(app))
        assert app.current_theme.dark
        await pilot.press("ctrl+t")
        assert not app.current_theme.dark
        await pilot.press("ctrl+t")
        assert app.current_theme.dark


async def test_monochrome_rendering_of_every_view() -> None:
    """NO_COLOR makes Textual add a Monochrome filter; it fails on unstyled segments. The filter
    is added directly (tests must not set NO_COLOR)."""
    fake = FleetBackend()
    app = make_app(fake)
    app._filters.append(Monochrome())
    async with app.run_test(size=(80, 24)) as pilot:
        for key, screen_type in (("2", TenantsScreen), ("3", WorkloadsScreen), ("4", GpusScreen)):
            await open_view(pilot, key, screen_type)
        await pilot.press("slash", *"no-such-gpu")
        await wait_for(pilot, lambda: "no matching rows" in screen_text(app))
        fake.mode = "down"
        await pilot.press("escape", "r")
        await wait_for(pilot, lambda: "unreachable" in screen_text(app))
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))
        svg = app.export_screenshot()
        fills = set(re.findall(r"fill: #([0-9a-f]{6})", svg))
        assert fills and all(c[0:2] == c[2:4] == c[4:6] for c in fills - {"c5c8c6"})


async def test_huge_list_fetches_only_the_pages_in_view() -> None:
    fake = FleetBackend.generated(workloads=20_000)
    app = make_app(fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_view(pilot, "3", WorkloadsScreen)
        assert isinstance(app.screen, WorkloadsScreen)
        table = app.screen.table
        assert table.total == 20_000 and table.virtual_size.height == 20_001
        await pilot.press("end")
        await wait_for(pilot, lambda: "model-19999" in screen_text(app), "last row")
        assert table.cursor == 19_999
        await pilot.press("pageup", "up")
        await wait_for(pilot, lambda: table.cursor_item is not None)
        offsets = {
            int(r.url.params["offset"]) for r in fake.requests if r.url.path.endswith("/workloads")
        }
        assert offsets <= {0, 100, 19_800, 19_900}  # never the 196 pages in between
        await pilot.press("home")
        await wait_for(pilot, lambda: table.cursor == 0 and "model-00000" in screen_text(app))
