"""The console never shows stale or missing cluster data as a healthy fleet.

The backend answers, but its cluster data is not current (never synced, or a frozen API server),
or telemetry sources fail; and the console's own embedded cluster is still starting, or failed to.
Each is told apart from "backend unreachable".
"""

from __future__ import annotations

import re

from backend.schemas import DataFreshness, KindFreshness, TelemetryFailure
from opsconsole.connection import Startup
from opsconsole.widgets.banner import ConnectionBanner
from tests.support.backend import FleetBackend
from tests.support.console import FakeClock, make_app, screen_text, wait_for


def banner(app) -> ConnectionBanner | None:
    found = app.screen.query(ConnectionBanner)
    return found.first() if found and found.first().has_class("-visible") else None


def flat(app) -> str:
    return re.sub(r"\s+", " ", screen_text(app))


def stale(age: float) -> DataFreshness:
    return DataFreshness(
        synced=True,
        cluster_age_seconds=age,
        cluster_problem=f"cluster data stale for {age:.0f} s (pods, nodes): the API server "
        "does not answer (ReadTimeoutError)",
        kinds=[KindFreshness(kind="pods", state="stale", age_seconds=age)],
    )


async def test_a_stale_cluster_is_a_banner_distinct_from_an_unreachable_backend() -> None:
    fake = FleetBackend()
    app = make_app(fake, clock=FakeClock())
    app.healthy_poll = 0.05
    fresh = fake.source.freshness
    fake.source.freshness = lambda: stale(12)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: banner(app) is not None, "the stale banner")
        text = flat(app)
        assert "cluster data is not current: cluster data stale for 12 s" in text
        assert "showing cluster data from 12 s ago" in text
        assert "backend unreachable" not in text
        assert "● cluster stale" in text and "● connected" not in text
        assert (shown := banner(app)) is not None and shown.has_class("-warning")

        fake.source.freshness = fresh  # type: ignore[method-assign]
        await wait_for(pilot, lambda: banner(app) is None, "the banner gone once current")
        assert "● connected" in screen_text(app)


async def test_a_backend_that_never_synced_shows_why_instead_of_an_empty_fleet() -> None:
    fake = FleetBackend()
    fake.source.model = None
    problem = (
        "cluster not synced yet: 0 of 13 kinds listed, waiting for pods: HTTP 401 Unauthorized"
    )
    fake.source.freshness = lambda: DataFreshness(  # type: ignore[method-assign]
        synced=False,
        cluster_problem=problem,
        kinds=[KindFreshness(kind="pods", state="pending", error="HTTP 401 Unauthorized")],
    )
    app = make_app(fake)
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_for(pilot, lambda: banner(app) is not None, "the banner")
        await wait_for(pilot, lambda: "401" in flat(app), "the reason")
        text = flat(app)
        assert "no fleet data yet" in text and "HTTP 401 Unauthorized" in text
        assert "0 nodes" not in text and "no active problems" not in text


async def test_telemetry_failures_are_shown_by_source_with_the_true_age() -> None:
    fake = FleetBackend()
    fake.source.freshness = lambda: DataFreshness(  # type: ignore[method-assign]
        synced=True,
        cluster_age_seconds=0,
        telemetry_age_seconds=95,
        telemetry_sources=3,
        telemetry_errors=2,
        telemetry_failures=[
            TelemetryFailure(source="http://10.0.0.7:9400/metrics", error="HTTP 500"),
            TelemetryFailure(source="http://10.0.0.8:9400/metrics", error="timed out"),
        ],
    )
    app = make_app(fake)
    async with app.run_test(size=(120, 24)) as pilot:
        await wait_for(pilot, lambda: banner(app) is not None, "the banner")
        text = flat(app)
        assert "telemetry: 2 of 3 sources failing" in text
        assert "http://10.0.0.7:9400/metrics: HTTP 500 (+1 more)" in text
        assert "GPU data 95 s old" in text


async def test_the_embedded_start_says_what_is_happening_then_the_childs_error() -> None:
    fake = FleetBackend()
    fake.mode = "down"
    progress = Startup("starting the sandbox")
    app = make_app(fake, sandbox=True)
    app.connection.startup = lambda: progress
    app.backoff_first = 0.05
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: banner(app) is not None, "the banner")
        text = flat(app)
        assert "starting the sandbox — no data yet" in text
        assert "unreachable" not in text
        assert "● starting" in text
        assert (shown := banner(app)) is not None and shown.has_class("-info")

        progress = Startup("starting the backend", "the embedded backend exited (code 1): boom")
        await wait_for(pilot, lambda: "exited (code 1): boom" in flat(app), "the child's error")
        assert (shown := banner(app)) is not None and not shown.has_class("-info")

        progress = Startup("starting the backend")
        fake.mode = "ok"
        await wait_for(pilot, lambda: banner(app) is None, "the first data")
        assert "● connected" in screen_text(app)
