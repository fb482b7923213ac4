"""The quota review (``:quota``) through the real app and the real backend over in-memory fleets:
the numbers and the advice, the filter, staging edits into a change set, and the ways in.

Planning and applying a change set needs a cluster to write to: ``test_tui_quota_changes``."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Button, Input

from backend.conventions import TENANT_LABEL
from backend.db.engine import create_db_engine
from backend.db.migrate import upgrade
from backend.db.quota_usage import DAY, QuotaUsageHistory, QuotaUsageStore, UsageSample
from backend.schemas import QuotaChange
from opsconsole.app import OpsConsoleApp
from opsconsole.screens.quota_edit import QuotaEditScreen
from opsconsole.screens.quota_plan import QuotaPlanScreen
from opsconsole.screens.quotas import QuotaScreen
from opsconsole.screens.tenant_detail import TenantDetailScreen
from opsconsole.screens.tenants import TenantsScreen
from tests.support.backend import FleetBackend
from tests.support.console import START, make_app, screen_text, wait_for
from tests.support.detail_fleet import detail_fleet
from tests.support.fleets import generated_fleet

A100 = "NVIDIA-A100-SXM4-40GB"


async def with_history(fake: FleetBackend, tmp_path: Path) -> FleetBackend:
    """Two recordings of team-b's a100 use: 5 GPUs two days ago, 3 now (average 4, peak 5)."""
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    upgrade(url)
    history = QuotaUsageHistory(QuotaUsageStore(create_db_engine(url)), 90, 1.0)
    for days, allocated in ((2, 5), (0, 3)):
        sample = UsageSample("team-b", A100, allocated, allocated, 0)
        await history.record([sample], now=START - days * DAY)
    fake.source.quota_usage = history
    return fake


async def open_review(pilot: Pilot[None], app: OpsConsoleApp, key: str = "6") -> QuotaScreen:
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(app.screen, QuotaScreen) and app.screen.data)
    screen = app.screen
    assert isinstance(screen, QuotaScreen)
    return screen


def line_of(text: str, *words: str) -> str:
    return next(line for line in text.splitlines() if all(word in line for word in words))


async def test_the_review_shows_every_quota_with_its_use_and_advice(tmp_path: Path) -> None:
    app = make_app(await with_history(FleetBackend(detail_fleet()), tmp_path))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_review(pilot, app)
        assert [(r.tenant, r.flavor or r.gpu_model) for r in screen.rows] == [
            ("serving", "*"),
            ("team-a", "h100"),
            ("team-a", "a100"),
            ("team-b", "a100"),
        ]
        text = screen_text(app)
        assert "Quota review  4 of 4 rows" in text
        for word in ("NOMINAL", "IN USE", "BORROWED", "7D AVG", "7D PEAK", "PENDING", "IDLE"):
            assert word in text
        # team-a h100: nominal 12, 14 in use (2 borrowed), 4 pending, 1 idle; no history.
        h100 = line_of(text, "team-a", "H100")
        assert h100.split()[:11] == (
            ["team-a", "H100-80GB-HBM3", "kueue", "12", "14", "2", "-", "-", "4", "1", "grant"]
        )
        assert "grant 4: 4 GPUs of workloads pending" in h100
        b = line_of(text, "team-b")
        assert b.split()[3:10] == ["8", "3", "0", "4.0", "5", "0", "0"]
        assert "reclaim 3: 5 unused now, 7-day peak 5 of 8" in b
        assert line_of(text, "serving").split()[1:4] == ["any", "rq", "2"]


async def test_the_review_fits_80x24_and_tells_the_row_advice_in_full() -> None:
    app = make_app(FleetBackend(detail_fleet()))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_review(pilot, app)
        await pilot.press("down")  # team-a h100
        await wait_for(pilot, lambda: "team-a h100: grant 4" in screen_text(app), "the hint")
        assert "4 GPUs of workloads pending" in screen_text(app)


async def test_the_filter_keeps_a_tenant_or_a_model_and_esc_clears_it() -> None:
    app = make_app(FleetBackend(detail_fleet()))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_review(pilot, app)
        await pilot.press("slash", *"a100")
        await wait_for(pilot, lambda: len(screen.rows) == 2, "the a100 rows")
        assert {r.tenant for r in screen.rows} == {"team-a", "team-b"}
        assert "filter a100" in screen_text(app)
        await pilot.press("enter")
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(screen.rows) == 4, "every row again")
        await pilot.press("slash", *"team-a")  # a tenant's exact name: that tenant only
        await wait_for(pilot, lambda: {r.tenant for r in screen.rows} == {"team-a"})
        assert len(screen.rows) == 2
        await pilot.press("enter", "escape", "escape")
        assert isinstance(app.screen, QuotaScreen) or len(app.screen_stack) == 2


async def test_set_transfer_and_a_suggestion_are_staged_and_dropped() -> None:
    app = make_app(FleetBackend(detail_fleet()))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_review(pilot, app)
        await pilot.press("down")  # team-a h100: grant 4
        await pilot.press("a")
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaEditScreen))
        gpus = app.screen.query_one("#gpus", Input)
        assert gpus.value == "12" and gpus.has_focus
        assert app.screen.query_one("#edit").outer_size.width == 72  # the narrow dialog box
        gpus.value = ""
        await pilot.press(*"10", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaScreen))
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaEditScreen))
        await pilot.press(*"team-", "tab")  # team-a and team-b: the common prefix stays
        await wait_for(pilot, lambda: "team-b" in screen_text(app), "the candidates")
        await pilot.press("b", "tab", "enter", "3", "enter")
        await wait_for(pilot, lambda: len(screen.staged) == 3, "three staged changes")
        assert screen.staged == [
            QuotaChange(op="set", tenant="team-a", model="h100", gpus=16),
            QuotaChange(op="set", tenant="team-a", model="h100", gpus=10),
            QuotaChange(
                op="transfer", from_tenant="team-a", to_tenant="team-b", model="h100", gpus=3
            ),
        ]
        text = screen_text(app)
        assert "3 changes staged" in text
        assert "set team-a h100 → 16 GPUs" in text
        assert "transfer 3 h100 GPUs team-a → team-b" in text

        await pilot.press("t")  # Esc in the edit dialog stages nothing
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaEditScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaScreen))
        assert len(screen.staged) == 3
        await pilot.press("x")
        await wait_for(pilot, lambda: "changes staged" not in screen_text(app), "dropped")
        assert screen.staged == []
        await pilot.press("up", "a")  # serving: no advice, nothing staged
        assert screen.staged == []


async def test_q_opens_the_review_of_a_tenant_from_its_list_row_and_detail() -> None:
    app = make_app(FleetBackend(detail_fleet()))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, TenantsScreen))
        tenants = app.screen
        assert isinstance(tenants, TenantsScreen)
        await wait_for(pilot, lambda: tenants.table.cursor_item is not None)
        await pilot.press("down")  # serving, team-a
        await pilot.press("Q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaScreen) and app.screen.data)
        assert {r.tenant for r in app.screen.rows} == {"team-a"}  # type: ignore[attr-defined]
        assert "filter team-a" in screen_text(app)
        await pilot.press("escape", "escape")  # the filter, then back to the list
        await wait_for(pilot, lambda: isinstance(app.screen, TenantsScreen))

        app.action_show_tenant("team-b")
        await wait_for(pilot, lambda: isinstance(app.screen, TenantDetailScreen))
        await pilot.press("Q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaScreen) and app.screen.data)
        assert [r.tenant for r in app.screen.rows] == ["team-b"]  # type: ignore[attr-defined]


async def test_the_command_takes_a_tenant() -> None:
    app = make_app(FleetBackend(detail_fleet()))
    async with app.run_test(size=(80, 24)) as pilot:
        app.run_command_line("quota team-b")
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaScreen) and app.screen.data)
        assert [r.tenant for r in app.screen.rows] == ["team-b"]  # type: ignore[attr-defined]


async def test_hostile_tenant_names_are_shown_literally() -> None:
    fleet = generated_fleet(tenants=3, workloads=6, nodes=2)
    hostile = "[b]x\u202e\x1b[2J" + "n\u200d\nm[/b]"
    fleet.cluster["namespaces"][("", "team-a")]["metadata"]["labels"][TENANT_LABEL] = hostile
    for queue in fleet.cluster["clusterqueues"].values():
        if queue["metadata"]["labels"].get(TENANT_LABEL) == "team-a":
            queue["metadata"]["labels"][TENANT_LABEL] = hostile
    app = make_app(FleetBackend(fleet))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_review(pilot, app)
        assert hostile in {r.tenant for r in screen.rows}
        text = screen_text(app)
        assert "[b]x[2Jn m[/b]" in text  # no markup, no escape sequence, one line
        assert all(len(line) <= 80 for line in text.splitlines())


async def test_the_review_of_200_tenants_scrolls_and_filters() -> None:
    app = make_app(FleetBackend.generated(tenants=200))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_review(pilot, app)
        assert len(screen.rows) >= 200
        await pilot.press("ctrl+end")
        await wait_for(pilot, lambda: screen.current_row() is screen.rows[-1], "the last row")
        await pilot.press("slash", *"team-c1")
        await wait_for(pilot, lambda: {r.tenant for r in screen.rows} == {"team-c1"})


async def test_a_backend_that_cannot_plan_is_shown_in_the_dialog() -> None:
    app = make_app(FleetBackend(detail_fleet()))  # no change path: plans answer 503
    async with app.run_test(size=(80, 24)) as pilot:
        await open_review(pilot, app)
        await pilot.press("c")  # nothing staged: nothing to review
        assert isinstance(app.screen, QuotaScreen)
        await pilot.press("down", "a", "c")
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaPlanScreen))
        await wait_for(pilot, lambda: "Nothing planned" in screen_text(app), "the refusal")
        assert "changes are not available yet" in screen_text(app)
        assert app.screen.query_one("#apply", Button).disabled
        await pilot.press("enter")  # Cancel
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaScreen))
