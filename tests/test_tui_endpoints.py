"""Pilot tests of endpoint health in the console: the workload detail's requests per revision
with sparklines, and the overview's worst endpoints drilling down to the workload — against the
real backend app over ``detail_fleet()`` with measured traffic."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from textual.widgets import DataTable, Sparkline, Static

from backend.fleet.model import build_fleet_model
from backend.schemas import DataFreshness, TelemetryFailure
from backend.telemetry.inference import InferenceRound, InferenceSnapshot, PodTraffic
from opsconsole.screens.overview import OverviewScreen
from opsconsole.screens.workload_detail import WorkloadDetailScreen
from opsconsole.widgets.endpoints import (
    EndpointHealthPanel,
    HealthRow,
    error_rate,
    latency,
    points,
)
from tests.support.backend import FleetBackend
from tests.support.console import HarnessApp, make_app, screen_text, wait_for
from tests.support.detail_fleet import CANARY, NOW, STABLE, chat_pod, detail_fleet
from tests.test_tui_detail import cells, loaded

SIZE = (80, 24)
LLAMA_PODS = ("llama-70b-7c9f-abcde", "llama-70b-7c9f-fghij")


def traffic(requests: float, errors: float, slow: bool = False) -> PodTraffic:
    """10 s of ``requests``: half within 0.5 s, the rest within 1 s (or 8 s when ``slow``)."""
    buckets = (
        (0.5, requests / 2),
        (1.0, requests / 2 if slow else requests),
        (8.0, requests),
        (math.inf, requests),
    )
    return PodTraffic(10.0, requests, errors, buckets)


def measured_backend() -> FleetBackend:
    """``detail_fleet`` with three rounds of traffic: llama-70b fails 10%, the chat canary is
    slow."""
    fleet = detail_fleet()
    rounds = []
    for i in range(3):
        pods = {("team-a", pod): traffic(100.0 + 10 * i, 10.0) for pod in LLAMA_PODS}
        pods[("serving", chat_pod(CANARY))] = traffic(20.0, 0.0, slow=True)
        pods[("serving", chat_pod(STABLE))] = traffic(80.0, 0.0)
        rounds.append(InferenceRound(NOW - 10 * (2 - i), pods))
    fake = FleetBackend(fleet)
    fake.source.model = build_fleet_model(
        fleet.cluster, fleet.telemetry(), now=NOW, inference=InferenceSnapshot(tuple(rounds))
    )
    return fake


def plain(widget: Static) -> str:
    content = widget.content
    return content.plain if hasattr(content, "plain") else str(content)


async def test_detail_shows_requests_per_revision_with_sparklines() -> None:
    app = HarnessApp(
        lambda: WorkloadDetailScreen("serving", "InferenceService", "chat"), measured_backend()
    )
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.pause(0.1)
        panel = app.screen.query_one(EndpointHealthPanel)
        assert panel.display and panel.border_title == "Requests"
        rows = list(panel.query(HealthRow))
        lines = [plain(row.query_one(".figures", Static)) for row in rows]
        assert lines[0] == "10.0/s  err 0.0%  p50 500ms  p95 4.50s  p99 7.30s  all"
        # histogram_quantile inside (1, 8]: 1 + 7 * (19.8 - 10) / 10
        assert lines[1] == "2.0/s  err 0.0%  p50 500ms  p95 7.30s  p99 7.86s  rev 00003 20% current"
        assert lines[2] == "8.0/s  err 0.0%  p50 500ms  p95 950ms  p99 990ms  rev 00002 80%"
        sparks = rows[1].query(Sparkline)
        assert [s.data for s in sparks] == [[2.0, 2.0, 2.0], [pytest.approx(7.86)] * 3, [0.0] * 3]
        assert all(row.region.right <= SIZE[0] for row in rows), "fits 80 columns"


def test_a_single_round_draws_no_sparkline_yet() -> None:
    """Textual draws one value as a full bar: a first round without requests read as busy."""
    assert points([0.0]) == [] and points([None]) == [] and points([]) == []
    assert points([None, 0.5]) == [0.0, 0.5]


async def test_a_workload_without_requests_hides_the_panel() -> None:
    app = HarnessApp(
        lambda: WorkloadDetailScreen("team-a", "Job", "finetune-7"), measured_backend()
    )
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        assert not app.screen.query_one(EndpointHealthPanel).display


async def test_overview_without_measured_endpoints_hides_the_panel() -> None:
    app = HarnessApp(OverviewScreen)  # detail_fleet() without inference metrics
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        assert not app.screen.query_one("#endpoints", DataTable).display


async def test_overview_lists_the_worst_endpoints_and_opens_one() -> None:
    app = HarnessApp(OverviewScreen, measured_backend())
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        table = app.screen.query_one("#endpoints", DataTable)
        assert table.display and table.border_title == "Worst endpoints"
        first: list[Any] = cells(table, 0)
        assert first == ["team-a/llama-70b", "24.0/s", "8.3%", "990ms"]
        assert cells(table, 1)[0] == "serving/chat"
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("enter")
        await pilot.pause()
    assert app.calls == [("workload", "team-a", "Deployment", "llama-70b")]


@pytest.mark.parametrize(
    ("value", "style"),
    [(0.0099, ""), (0.01, ""), (0.0101, "bold red"), (None, "dim")],
)
def test_error_rates_above_one_percent_are_red(value: float | None, style: str) -> None:
    assert error_rate(value).style == style


def test_latencies_read_in_milliseconds_below_a_second() -> None:
    assert [latency(v).plain for v in (0.9994, 1.0, 12.345, None)] == [
        "999ms",
        "1.00s",
        "12.35s",
        "N/A",
    ]


def failing_model_servers(fake: FleetBackend) -> None:
    """Three of 40 model servers' metrics cannot be read; the rest were read 95 s ago."""
    failures = [
        TelemetryFailure(source=f"team-a/{pod}", error="HTTP 500 Internal Server Error")
        for pod in (*LLAMA_PODS, "llama-70b-7c9f-klmno")
    ]
    fake.source.freshness = lambda: DataFreshness(  # type: ignore[method-assign]
        synced=True,
        cluster_age_seconds=0.0,
        inference_age_seconds=95.0,
        inference_sources=40,
        inference_errors=3,
        inference_failures=failures,
    )


async def test_model_server_failures_are_shown_with_the_endpoints_and_in_the_banner() -> None:
    fake = measured_backend()
    failing_model_servers(fake)
    app = make_app(fake, refresh_interval=0.1)
    subtitle = "⚠ 3 of 40 model servers failing, data 95 s old"
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.screen.query_one("#endpoints", DataTable)
        await wait_for(pilot, lambda: table.border_subtitle == subtitle, "the panel's subtitle")
        text = re.sub(r"\s+", " ", screen_text(app))
        assert (
            "model server metrics: 3 of 40 sources failing — team-a/llama-70b-7c9f-abcde: "
            "HTTP 500 Internal Server Error (+2 more); endpoint data 95 s old"
        ) in text
        assert "3 of 40 model servers failing" in text, "under the worst endpoints"

        app.action_show_workload("team-a", "Deployment", "llama-70b")
        await wait_for(pilot, lambda: app.screen.query(EndpointHealthPanel), "the detail")
        panel = app.screen.query_one(EndpointHealthPanel)
        await wait_for(pilot, lambda: panel.display, "the requests panel")
        assert panel.border_subtitle == subtitle

        fake.source.freshness = lambda: DataFreshness(  # type: ignore[method-assign]
            synced=True, cluster_age_seconds=0.0, inference_age_seconds=1.0, inference_sources=40
        )
        await wait_for(pilot, lambda: panel.border_subtitle is None, "the subtitle gone")
