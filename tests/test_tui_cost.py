"""Cost showback in the console, through the real app over the detail fleet with a usage history
(``tests.support.cost``): the tenants list's cost columns, the tenant's cost and idle GPUs, the
overview's total, and ``R`` opening the quota edit prefilled to reclaim the idle GPUs."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from backend.schemas import QuotaChange
from opsconsole.screens.quota_edit import QuotaEditScreen
from opsconsole.screens.quota_plan import QuotaPlanScreen
from opsconsole.screens.quotas import QuotaScreen
from opsconsole.screens.tenant_detail import TenantDetailScreen
from opsconsole.screens.tenants import TenantsScreen
from tests.support.backend import FleetBackend
from tests.support.console import make_app, record_notifications, screen_text, wait_for
from tests.support.cost import costed_fleet


def line_of(text: str, *words: str) -> str:
    return next(line for line in text.splitlines() if all(word in line for word in words))


async def test_the_tenants_list_shows_each_tenants_cost_and_idle_gpus(tmp_path: Path) -> None:
    app = make_app(await costed_fleet(tmp_path))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, TenantsScreen))
        await wait_for(pilot, lambda: "27.00" in screen_text(app))
        text = screen_text(app)
        assert "COST 7D" in text and "IDLE" in text
        # team-a: 6 GPU-hours of H100 at 4.5; one H100 idle now. team-b: no price.
        assert line_of(text, "team-a").split()[-2:] == ["27.00", "1"]
        assert "no price" in line_of(text, "team-b")


async def test_the_tenant_shows_its_cost_and_r_prefills_the_reclaim(tmp_path: Path) -> None:
    app = make_app(await costed_fleet(tmp_path))
    async with app.run_test(size=(160, 48)) as pilot:
        app.action_show_tenant("team-a")
        await wait_for(
            pilot, lambda: isinstance(app.screen, TenantDetailScreen) and app.screen.data
        )
        screen = app.screen
        await pilot.press("c")  # the cost panel, scrolled into view
        assert screen.focused is screen.query_one("#cost", DataTable)
        rows = [
            [str(cell) for cell in screen.query_one("#cost", DataTable).get_row_at(i)]
            for i in range(screen.query_one("#cost", DataTable).row_count)
        ]
        assert rows[0] == ["24h", "H100-80GB-HBM3", "6.0", "50%", "4.50", "27.00"]
        assert [row[0] for row in rows] == ["24h", "7d", "30d"]
        assert rows[2][2] == "9.0" and rows[2][5] == "40.50"  # 36 GPUs × 5 min, 8 days ago
        idle = str(screen.query_one("#idle", Static).render())
        assert "1 H100-80GB-HBM3 idle for" in idle and "108.00/day" in idle

        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaEditScreen))
        edit = app.screen
        assert isinstance(edit, QuotaEditScreen)
        # team-a's h100 quota is 12: the edit proposes 11, saying why.
        assert (edit.row.tenant, edit.row.flavor, edit.op) == ("team-a", "h100", "set")
        assert edit.query_one("#gpus", Input).value == "11"
        assert "reclaim 1 idle GPUs" in str(edit.query_one("#edit-hint", Static).render())
        await pilot.press("enter")  # stage it
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaScreen))
        review = app.screen
        assert isinstance(review, QuotaScreen)
        assert review.staged == [QuotaChange(op="set", tenant="team-a", model="h100", gpus=11)]
        await pilot.press("c")  # the audited change path: plan, confirm with a reason, apply
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaPlanScreen))


async def test_r_without_idle_gpus_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(await costed_fleet(tmp_path))
    notes = record_notifications(app, monkeypatch)
    async with app.run_test(size=(160, 48)) as pilot:
        app.action_show_tenant("team-b")
        await wait_for(
            pilot, lambda: isinstance(app.screen, TenantDetailScreen) and app.screen.data
        )
        await pilot.press("R")
        await wait_for(pilot, lambda: notes == ["no idle GPUs held against a quota"])
        assert isinstance(app.screen, TenantDetailScreen)


async def test_the_overview_shows_the_fleets_cost(tmp_path: Path) -> None:
    app = make_app(await costed_fleet(tmp_path))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: "cost 24h 27.00" in screen_text(app))
        assert "idle GPUs" in line_of(screen_text(app), "cost 24h")


async def test_a_backend_without_cost_leaves_the_views_working() -> None:
    fake = FleetBackend()
    fake.missing_paths.add("/api/v1/cost")
    app = make_app(fake)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, TenantsScreen))
        await wait_for(pilot, lambda: "COST 7D" in screen_text(app) and "N/A" in screen_text(app))
        app.action_show_tenant("team-a")
        await wait_for(pilot, lambda: "cost unavailable" in screen_text(app))
