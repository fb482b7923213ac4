"""Quota changes from the console's quota review, against the real backend on a demo sandbox (seed
7: team-a waits for a100 quota, team-e holds l40s quota it does not use): a staged change set
reviewed with its plan, warnings and what-if, a reason required, Cancel focused, applied all at
once; re-planned live while another operator changes a quota; a stale plan (409) and an invalid
amount (422) shown in the dialog."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static

from opsconsole.app import OpsConsoleApp
from opsconsole.screens.quota_plan import QuotaPlanScreen
from opsconsole.screens.quotas import QuotaScreen
from opsconsole.settings import ConsoleSettings
from tests.conftest import LiveCluster
from tests.support.console import screen_text, wait_for, wait_for_focus
from tests.support.tokens import bearer


@pytest.fixture(scope="module")
def api(mutable_cluster: LiveCluster) -> Iterator[httpx.Client]:
    """Bob, another admin."""
    headers = bearer(mutable_cluster.token_for("bob"))
    with httpx.Client(base_url=mutable_cluster.backend_url, timeout=30, headers=headers) as http:
        yield http


def set_quota(api: httpx.Client, tenant: str, model: str, gpus: int) -> None:
    """Another operator changes a quota, through the backend."""
    body: dict[str, Any] = {"op": "set", "tenant": tenant, "model": model, "gpus": gpus}
    plan = api.post("/api/v1/quotas/plan", json=body).json()
    confirm = {"fingerprint": plan["fingerprint"], "reason": "meanwhile"}
    assert api.post("/api/v1/quotas/apply", json={**body, **confirm}).status_code == 200


def console(cluster: LiveCluster, refresh: float = 0.5) -> OpsConsoleApp:
    settings = ConsoleSettings(
        backend=cluster.backend_url,
        operator="carol",
        token=cluster.token_for("carol"),
        refresh_interval=refresh,
        request_timeout=30,
    )
    return OpsConsoleApp(settings, backend_url=cluster.backend_url)


async def open_review(pilot: Pilot[None], app: OpsConsoleApp) -> QuotaScreen:
    await pilot.press("6")
    await wait_for(pilot, lambda: isinstance(app.screen, QuotaScreen) and app.screen.data)
    screen = app.screen
    assert isinstance(screen, QuotaScreen)
    return screen


async def on_row(pilot: Pilot[None], screen: QuotaScreen, tenant: str, flavor: str) -> None:
    index = next(i for i, r in enumerate(screen.rows) if (r.tenant, r.flavor) == (tenant, flavor))
    screen.query_one("#quotas").move_cursor(row=index)  # type: ignore[attr-defined]
    await wait_for(pilot, lambda: screen.current_row() is screen.rows[index])


def nominal(screen: QuotaScreen, tenant: str, flavor: str) -> int | None:
    rows = screen.data.items if screen.data else []
    return next((r.nominal for r in rows if (r.tenant, r.flavor) == (tenant, flavor)), None)


async def open_plan(pilot: Pilot[None], app: OpsConsoleApp, key: str = "c") -> QuotaPlanScreen:
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(app.screen, QuotaPlanScreen))
    dialog = app.screen
    assert isinstance(dialog, QuotaPlanScreen)
    return dialog


async def refreshed_until(pilot: Pilot[None], done: Callable[[], bool]) -> None:
    """Refresh (``r``) until ``done()``: the review shows the fleet model, which the backend
    rebuilds shortly after a change."""
    for _ in range(30):
        if done():
            return
        await pilot.press("r")
        await pilot.pause(0.5)
    raise AssertionError("the change did not show")


def error_text(dialog: QuotaPlanScreen) -> str:
    return str(dialog.query_one("#plan-error", Static).content)


async def test_a_staged_change_set_is_reviewed_and_applied(mutable_cluster: LiveCluster) -> None:
    app = console(mutable_cluster)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_review(pilot, app)
        assert nominal(screen, "team-a", "a100") == 10
        await on_row(pilot, screen, "team-a", "a100")
        await pilot.press("a")  # grant 6: 8 GPUs of workloads pending, 6 beyond the quota
        await on_row(pilot, screen, "team-e", "l40s")
        await pilot.press("a")  # reclaim 6: 6 unused now, 7-day peak 1 of 7
        assert "2 changes staged" in screen_text(app)

        dialog = await open_plan(pilot, app)
        await wait_for(pilot, lambda: dialog.plan is not None, "the plan")
        text = screen_text(app)
        assert "Quota change set: 2 changes" in text
        assert "clusterqueue/team-a" in text and "10 → 16" in text
        assert "clusterqueue/team-e" in text and "7 → 1" in text
        assert "would be admitted afterwards" in text  # a warning from the what-if
        assert "team-a/job/pretrain-a-502" in text and "admitted" in text
        assert app.focused is not None and app.focused.id == "cancel"
        await pilot.press("enter")  # Enter on the focused Cancel: nothing happens
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaScreen))
        assert len(screen.staged) == 2 and nominal(screen, "team-a", "a100") == 10

        await pilot.press("tab")  # the staged set: enter on it opens the review too
        await wait_for_focus(pilot, "staged")
        dialog = await open_plan(pilot, app, "enter")
        await wait_for(pilot, lambda: dialog.plan is not None, "the plan")
        dialog.query_one("#apply", Button).press()
        await wait_for(pilot, lambda: "A reason is required." in screen_text(app))
        await wait_for_focus(pilot, "reason")
        await pilot.press(*"unblock pretraining", "enter")  # Enter moves on to Apply
        await wait_for_focus(pilot, "apply")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaScreen), "applied")
        await wait_for(pilot, lambda: nominal(screen, "team-a", "a100") == 16, "the new nominal")
        assert nominal(screen, "team-e", "l40s") == 1
        assert screen.staged == []
        assert "changes staged" not in screen_text(app)


async def test_the_plan_follows_the_cluster_while_the_dialog_is_open(
    mutable_cluster: LiveCluster, api: httpx.Client
) -> None:
    app = console(mutable_cluster)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_review(pilot, app)
        await on_row(pilot, screen, "team-c", "h100")  # nominal 7
        await pilot.press("s")
        await pilot.press("ctrl+a", "ctrl+k", *"6", "enter")
        dialog = await open_plan(pilot, app)
        await wait_for(pilot, lambda: "7 → 6" in screen_text(app), "the first plan")
        set_quota(api, "team-c", "h100", 8)
        await wait_for(pilot, lambda: "8 → 6" in screen_text(app), "the plan, planned again")
        assert dialog.plan is not None
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaScreen))


async def test_a_stale_plan_is_refused_and_the_new_one_shown(
    mutable_cluster: LiveCluster, api: httpx.Client
) -> None:
    app = console(mutable_cluster, refresh=3600)  # no re-planning: the plan goes stale
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_review(pilot, app)
        await on_row(pilot, screen, "team-f", "l40s")  # nominal 6
        await pilot.press("s", "ctrl+a", "ctrl+k", *"5", "enter")
        dialog = await open_plan(pilot, app)
        await wait_for(pilot, lambda: "6 → 5" in screen_text(app), "the plan")
        set_quota(api, "team-f", "l40s", 7)
        dialog.query_one("#reason", Input).value = "trim"
        dialog.query_one("#apply", Button).press()
        await wait_for(pilot, lambda: "7 → 5" in screen_text(app), "the new plan")
        assert isinstance(app.screen, QuotaPlanScreen)
        assert "changed" in error_text(dialog)
        assert not dialog.query_one("#apply", Button).disabled  # the new plan may be applied
        dialog.query_one("#apply", Button).press()
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaScreen), "applied")
        await refreshed_until(pilot, lambda: nominal(screen, "team-f", "l40s") == 5)


async def test_an_invalid_amount_is_refused_in_the_dialog(mutable_cluster: LiveCluster) -> None:
    app = console(mutable_cluster)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_review(pilot, app)
        await on_row(pilot, screen, "team-b", "h100")
        await pilot.press("s", "ctrl+a", "ctrl+k", *"-3", "enter")
        dialog = await open_plan(pilot, app)
        await wait_for(pilot, lambda: "Nothing planned" in screen_text(app), "the refusal")
        error = error_text(dialog)
        assert "negative" in error or "-3" in error
        assert dialog.query_one("#apply", Button).disabled
        await pilot.press("enter")  # Cancel
        await wait_for(pilot, lambda: isinstance(app.screen, QuotaScreen))
