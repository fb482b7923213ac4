"""The console and the operator's identity: the status bar says who the backend takes the
operator for, a refused token is a "not authenticated" banner, and the workload detail offers only
the changes the role allows (disabled with the reason) or none at all (``--read-only``)."""

from __future__ import annotations

import json

import pytest
from textual.widgets import DataTable

from backend.schemas import Whoami
from opsconsole.app import OpsConsoleApp
from opsconsole.client import BackendError
from opsconsole.connection import Startup
from opsconsole.screens.revision import RevisionScreen
from opsconsole.screens.rollback import RollbackScreen
from opsconsole.screens.workload_detail import WorkloadDetailScreen
from opsconsole.settings import ConsoleSettings
from tests.support.backend import FleetBackend
from tests.support.console import (
    FakeClock,
    HarnessApp,
    make_app,
    screen_text,
    wait_for,
)

ISVC = ("team-a", "InferenceService", "model-00002")  # a canary in team-a of the generated fleet
SIZE = (160, 40)


async def open_workload(pilot, app: OpsConsoleApp) -> WorkloadDetailScreen:
    await wait_for(pilot, lambda: app.connection.last_ok is not None, "the first answer")
    app.action_show_workload(*ISVC)
    await wait_for(pilot, lambda: isinstance(app.screen, WorkloadDetailScreen))
    screen = app.screen
    assert isinstance(screen, WorkloadDetailScreen)
    await wait_for(pilot, lambda: screen.data is not None, "the workload")
    await pilot.pause()
    return screen


def bottom_lines(app: OpsConsoleApp) -> str:
    """The status bar and the footer."""
    return "\n".join(screen_text(app).splitlines()[-2:])


async def test_the_status_bar_shows_the_operator_and_role_the_backend_knows() -> None:
    fake = FleetBackend()
    token = fake.issue("bob", "operator", frozenset({"team-a", "team-c", "x", "y"}))
    app = make_app(fake, token=token)  # the local operator name is "alice"
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "op bob operator (team-a, team-c +2)" in screen_text(app))
        assert "alice" not in screen_text(app)
        assert fake.last_request("/whoami").method == "GET"


async def test_a_backend_without_whoami_shows_the_local_operator() -> None:
    fake = FleetBackend()
    fake.missing_paths = {"/api/v1/whoami"}  # an older backend
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: any(r.url.path == "/api/v1/whoami" for r in fake.requests))
        await wait_for(pilot, lambda: "● connected" in screen_text(app))
        assert "op alice  data" in screen_text(app)
        assert app.connection.identity is None and app.connection.error is None


@pytest.mark.parametrize(
    ("token", "said"),
    [
        ("stolen", "not authenticated: the token is not known"),
        ("", "not authenticated: send Authorization: Bearer <token> (no token given: pass"),
    ],
)
async def test_a_refused_token_is_not_authenticated_rather_than_unreachable(
    token: str, said: str
) -> None:
    fake = FleetBackend()
    app = make_app(fake, token=token)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: said in screen_text(app), said)
        text = screen_text(app)
        assert "● not authenticated" in text
        assert "unreachable" not in text
        sent = fake.last_request("/info").headers.get("authorization")
        assert sent == (f"Bearer {token}" if token else None)


async def test_the_right_token_is_sent_and_accepted() -> None:
    fake = FleetBackend()
    token = fake.issue("root", "admin")
    app = make_app(fake, token=token)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "op root admin" in screen_text(app))
        assert "● connected" in screen_text(app)
        assert all(r.headers["authorization"] == f"Bearer {token}" for r in fake.requests)


async def test_a_viewer_sees_the_changes_disabled_with_the_reason() -> None:
    fake = FleetBackend()
    app = make_app(fake, token=fake.issue("vic", "viewer"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_workload(pilot, app)
        await wait_for(pilot, lambda: "role viewer cannot change anything" in screen_text(app))
        assert "changes disabled: role viewer cannot change anything" in screen_text(app)
        for key in ("u", "P"):
            active = screen.active_bindings[key]
            assert not active.enabled  # shown, but dimmed
            assert active.tooltip == "role viewer cannot change anything"
        assert "Roll back" in bottom_lines(app) and "Promote" in bottom_lines(app)
        await pilot.press("u")
        await pilot.press("P")
        await pilot.pause(0.1)
        assert app.screen is screen  # no dialog opened
        assert not [r for r in fake.requests if r.method == "POST"]


async def test_an_operator_may_change_only_its_own_tenants() -> None:
    """What the console offers follows the identity ``/whoami`` states (the backend scopes
    reads too, so an operator rarely sees another tenant's release; the console does not rely on
    that)."""
    fake = FleetBackend()
    fake.identity = Whoami(operator="olga", role="operator", tenants=["team-b"])
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_workload(pilot, app)
        reason = "role operator may change only tenants team-b, not tenant team-a"
        await wait_for(pilot, lambda: reason in screen_text(app), reason)
        assert not screen.active_bindings["u"].enabled
        assert screen.active_bindings["u"].tooltip == reason

    fake.identity = Whoami(operator="olga", role="operator", tenants=["team-a"])
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_workload(pilot, app)
        assert screen.active_bindings["u"].enabled and screen.active_bindings["P"].enabled
        assert "changes disabled" not in screen_text(app)
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, RollbackScreen), "the dialog")


async def test_read_only_hides_every_change_and_sends_none() -> None:
    fake = FleetBackend()
    app = make_app(fake, read_only=True, token=fake.issue("root", "admin"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_workload(pilot, app)
        await wait_for(pilot, lambda: "op root admin read-only" in screen_text(app))
        assert "u" not in screen.active_bindings and "P" not in screen.active_bindings
        assert "Roll back" not in bottom_lines(app) and "Promote" not in bottom_lines(app)
        assert "changes disabled" not in screen_text(app)
        await pilot.press("u")
        await pilot.pause(0.1)
        assert app.screen is screen
        with pytest.raises(BackendError, match="read-only console: changes are not sent"):
            await app.client.rollback_plan(*ISVC)
        assert not [r for r in fake.requests if r.method == "POST"]


async def test_the_console_uses_the_token_its_embedded_backend_was_given() -> None:
    fake = FleetBackend()
    fake.token = fake.issue("alice", "admin")
    progress = Startup("starting the sandbox")
    settings = ConsoleSettings(backend=None, operator="alice", refresh_interval=60.0)
    app = OpsConsoleApp(
        settings,
        backend_url="http://fake-backend:8080",
        sandbox=True,
        transport=fake.transport(),
        startup=lambda: progress,
        clock=FakeClock(),
    )
    app.backoff_first = 0.05
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "starting the sandbox" in screen_text(app))
        progress = Startup("starting the backend", token=fake.token)
        await wait_for(pilot, lambda: "op alice admin" in screen_text(app), "the identity")
        assert "● connected" in screen_text(app)
        assert fake.last_request("/whoami").headers["authorization"] == f"Bearer {fake.token}"


async def show_revision(pilot, app: HarnessApp, row: int) -> RevisionScreen:
    """Enter on the revisions table's ``row``; the revision screen once its diff is in."""
    screen = app.screen
    assert isinstance(screen, WorkloadDetailScreen)
    await wait_for(pilot, lambda: screen.data is not None, "the workload")
    table = screen.query_one("#revisions", DataTable)
    table.focus()
    for _ in range(row):
        await pilot.press("down")
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, RevisionScreen), "the revision")
    revision = app.screen
    assert isinstance(revision, RevisionScreen)
    await wait_for(pilot, lambda: revision.data is not None, "its diff")
    return revision


IMAGE_CHANGE = "registry.local/llama:4.1 → registry.local/llama:4.0"


@pytest.mark.parametrize(
    ("identity", "read_only", "said"),
    [
        (Whoami(operator="vic", role="viewer"), False, "role viewer cannot change anything"),
        (
            Whoami(operator="olga", role="operator", tenants=["team-b"]),
            False,
            "role operator may change only tenants team-b, not tenant team-a",
        ),
        (Whoami(operator="root", role="admin"), True, None),
    ],
)
async def test_enter_on_a_revision_shows_its_diff_to_a_role_that_may_not_roll_back(
    identity: Whoami, read_only: bool, said: str | None
) -> None:
    app = HarnessApp(lambda: WorkloadDetailScreen("team-a", "Deployment", "llama-70b"))
    app.connection.identity = identity
    app.settings.read_only = read_only
    async with app.run_test(size=SIZE) as pilot:
        detail = app.screen
        revision = await show_revision(pilot, app, row=1)
        assert revision.data is not None and revision.revision == "3"
        text = screen_text(app)
        assert "current revision 4 → revision 3" in text
        assert "containers[main].image" in text and IMAGE_CHANGE in text
        if said is None:  # read-only: no rollback offered at all
            assert "u" not in revision.active_bindings and "Roll back to it" not in text
        else:  # shown disabled, with the reason
            assert not revision.active_bindings["u"].enabled
            assert f"roll back disabled: {said}" in text
        await pilot.press("u")
        await pilot.pause(0.1)
        assert app.screen is revision  # no dialog opened
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is detail, "back on the detail")
        assert not [r for r in app.fake.requests if r.method == "POST"]


async def test_an_operator_sees_a_revisions_diff_then_rolls_back_to_it() -> None:
    app = HarnessApp(lambda: WorkloadDetailScreen("team-a", "Deployment", "llama-70b"))
    app.connection.identity = Whoami(operator="olga", role="operator", tenants=["team-a"])
    async with app.run_test(size=SIZE) as pilot:
        revision = await show_revision(pilot, app, row=2)
        text = screen_text(app)
        assert "current revision 4 → revision 2" in text
        assert "registry.local/llama:4.1 → registry.local/llama:3.9" in text
        assert revision.active_bindings["u"].enabled and "Roll back to it" in text
        assert not [r for r in app.fake.requests if r.method == "POST"]  # looking is a read
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, RollbackScreen), "the rollback")
        modal = app.screen
        assert isinstance(modal, RollbackScreen) and modal.to_revision == 2

        def planned() -> list[bytes]:
            posts = [r for r in app.fake.requests if r.method == "POST"]
            return [r.content for r in posts if r.url.path.endswith("/rollback/plan")]

        await wait_for(pilot, planned, "the rollback's plan asked for")
        assert json.loads(planned()[0]) == {"to_revision": 2}
