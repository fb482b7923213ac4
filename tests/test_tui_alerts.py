"""The Alerts screen through the pilot: firing, then pending, then resolved; enter opens the
subject (a GPU's node, a workload, a tenant); the firing count in the status bar; an overview
problem about a tenant opens the tenant."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backend.alerts.monitor import AlertView
from backend.schemas import (
    Alert,
    AlertState,
    AlertSubject,
    AlertSubjectKind,
    BackendInfo,
    DataFreshness,
    Problem,
    ProblemSeverity,
)
from opsconsole.connection import ConnectionState
from opsconsole.screens.alerts import AlertsScreen
from opsconsole.screens.node_detail import NodeDetailScreen
from opsconsole.screens.overview import OverviewScreen, problem_target
from opsconsole.widgets.status_bar import status_text
from tests.support.alerts import Alerting
from tests.support.backend import FleetBackend
from tests.support.console import HarnessApp, make_app, screen_text, wait_for
from tests.support.fleets import SAMPLED_AT, generated_fleet


@pytest.fixture
def alerting(tmp_path: Path) -> Iterator[Alerting]:
    fleet = generated_fleet()
    alerting = Alerting(FleetBackend(fleet), fleet, tmp_path)
    yield alerting
    alerting.close()


def rows(app) -> list[str]:
    return [line for line in screen_text(app).splitlines() if "gpu_" in line]


async def test_alerts_screen_lists_firing_then_pending_and_drills_to_the_node(
    alerting: Alerting,
) -> None:
    await alerting.evaluate(0)
    app = make_app(alerting.fake, clock=lambda: SAMPLED_AT + 120)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await pilot.press("7")
        await wait_for(pilot, lambda: isinstance(app.screen, AlertsScreen))
        await wait_for(pilot, lambda: len(rows(app)) == 4, "four alerts")
        text = screen_text(app)
        assert "1 firing · 3 pending · evaluated 2m ago" in text
        states = [line.split()[1] for line in rows(app)]
        assert states == ["firing", "pending", "pending", "pending"]
        assert "gpu-node-0000/gpu0" in rows(app)[0] and "79" in rows(app)[0]
        await wait_for(pilot, lambda: "▲ 1 firing" in screen_text(app), "the status bar count")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, NodeDetailScreen), "node detail")
        screen = app.screen
        assert isinstance(screen, NodeDetailScreen) and screen.node_name == "gpu-node-0000"


def _alert(state: AlertState, subject: AlertSubject) -> Alert:
    at = datetime.fromtimestamp(SAMPLED_AT, UTC)
    return Alert(
        rule="rollout_stuck" if subject.kind is AlertSubjectKind.WORKLOAD else "tenant_starving",
        severity=ProblemSeverity.WARNING,
        state=state,
        subject=subject,
        value=1.0,
        threshold=0.0,
        since=at,
        started=at,
        message="\x1b[31m[bold]not markup[/bold]",
    )


async def test_enter_opens_a_workload_or_a_tenant_and_text_is_literal(alerting: Alerting) -> None:
    workload = AlertSubject(
        kind=AlertSubjectKind.WORKLOAD,
        name="team-a/llm",
        namespace="team-a",
        workload_kind="Deployment",
        workload="llm",
        tenant="team-a",
    )
    tenant = AlertSubject(kind=AlertSubjectKind.TENANT, name="team-[b]", tenant="team-[b]")
    alerting.monitor.view = AlertView(
        [_alert(AlertState.FIRING, workload), _alert(AlertState.RESOLVED, tenant)],
        datetime.fromtimestamp(SAMPLED_AT, UTC),
    )
    app = HarnessApp(AlertsScreen, alerting.fake)
    async with app.run_test(size=(160, 24)) as pilot:  # wide enough for the message
        await wait_for(pilot, lambda: "team-[b]" in screen_text(app), "the alerts")
        text = screen_text(app)
        assert "[bold]not markup" in text and "\x1b" not in text
        await pilot.press("enter")
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: len(app.calls) == 2)
        assert app.calls == [("workload", "team-a", "Deployment", "llm"), ("tenant", "team-[b]")]


async def test_no_alerts_says_so(alerting: Alerting) -> None:
    alerting.monitor.view = AlertView([], None)
    app = HarnessApp(AlertsScreen, alerting.fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "no alerts" in screen_text(app))
        assert "0 firing · 0 pending · not evaluated yet" in screen_text(app)


def test_status_bar_shows_the_firing_count_only_when_some_fire() -> None:
    state = ConnectionState(
        backend_url="http://b", operator="alice", sandbox=False, clock=lambda: 0
    )
    info = BackendInfo(
        version="t",
        cluster_server="https://k",
        telemetry_mode="off",
        freshness=DataFreshness(synced=True),
    )
    state.info = info.model_copy(update={"alerts_firing": 3})
    assert "▲ 3 firing" in status_text(state).plain
    state.info = info.model_copy(update={"alerts_firing": 0})
    assert "firing" not in status_text(state).plain
    state.info = info  # a backend without alerts
    assert "firing" not in status_text(state).plain


def test_on_a_narrow_terminal_the_url_gives_way_to_the_alerts_and_the_link() -> None:
    state = ConnectionState(
        backend_url="http://opsconsole-backend.example.internal:8080",
        operator="alice",
        sandbox=True,
        clock=lambda: 0,
    )
    state.ok()
    state.info = BackendInfo(
        version="t",
        cluster_server="https://k",
        telemetry_mode="off",
        freshness=DataFreshness(synced=True),
        alerts_firing=12,
    )
    line = status_text(state, 80).plain
    assert line.endswith("▲ 12 firing  data <5 s  ● connected") and len(line) <= 80
    assert " SANDBOX  http://opsconsole-back…  op alice  ▲ 12" in line
    assert "opsconsole-backend.example.internal:8080" in status_text(state, 160).plain


def test_a_tenant_problem_leads_to_the_tenant() -> None:
    starving = Problem(
        severity=ProblemSeverity.WARNING, kind="tenant-starving", subject="team-a", message="x"
    )
    assert problem_target(starving) == ("tenant", "team-a", "")
    idle = starving.model_copy(update={"kind": "gpu-idle", "subject": "node-1/gpu3"})
    assert problem_target(idle) == ("node", "node-1", "")
