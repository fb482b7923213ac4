"""The console never shows stale or missing cluster data as a healthy fleet.

The backend answers, but its cluster data is not current (never synced, or a frozen API server),
or telemetry sources fail; and the console's own embedded cluster is still starting, or failed to.
Each is told apart from "backend unreachable".
"""

from __future__ import annotations

import re

import pytest

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


def never_synced(fake: FleetBackend, error: str | None) -> None:
    """A backend whose API server answered nodes but not yet pods and jobs (with ``error``)."""
    fake.source.model = None
    fake.source.freshness = lambda: DataFreshness(  # type: ignore[method-assign]
        synced=False,
        cluster_problem="cluster not synced yet: 1 of 3 kinds listed, waiting for pods, jobs"
        + (f": {error}" if error else ""),
        kinds=[
            KindFreshness(kind="nodes", state="live", age_seconds=0.0),
            KindFreshness(kind="pods", state="pending", error=error),
            KindFreshness(kind="jobs", state="pending", error=error),
        ],
    )


@pytest.mark.parametrize(
    ("error", "notice", "level", "link"),
    [
        (None, "cluster not synced yet: 1 of 3 kinds listed", "-info", "● syncing"),
        (
            "HTTP 503 Service Unavailable",
            "cluster not synced yet: the API server answers HTTP 503 Service Unavailable "
            "(1 of 3 kinds listed)",
            "-warning",
            "● cluster not synced",
        ),
        (
            "HTTP 401 Unauthorized",
            "cluster not synced yet: the API server refuses the backend's credentials "
            "(HTTP 401 Unauthorized)",
            None,
            "● cluster refused",
        ),
    ],
)
async def test_a_backend_that_never_synced_shows_why_instead_of_an_empty_fleet(
    error: str | None, notice: str, level: str | None, link: str
) -> None:
    fake = FleetBackend()
    never_synced(fake, error)
    app = make_app(fake)
    async with app.run_test(size=(120, 24)) as pilot:
        await wait_for(pilot, lambda: notice in flat(app), "the reason")
        text = flat(app)
        assert f"{notice} — no fleet data yet" in text
        assert "backend error" not in text and "503" not in text.replace(error or "", "")
        assert "data – " in text, "no data age: there is no data"
        assert link in text and "● connected" not in text and "● error" not in text
        assert "0 nodes" not in text and "no active problems" not in text
        shown = banner(app)
        assert shown is not None
        classes = {c for c in ("-info", "-warning") if shown.has_class(c)}
        assert classes == ({level} if level else set()), "the refused credentials in red"


async def test_the_not_synced_notice_ends_with_the_first_fleet_data() -> None:
    fake = FleetBackend()
    model, fresh = fake.source.model, fake.source.freshness
    never_synced(fake, "HTTP 401 Unauthorized")
    app = make_app(fake, refresh_interval=0.1)
    app.healthy_poll = 0.05
    async with app.run_test(size=(120, 24)) as pilot:
        await wait_for(pilot, lambda: "● cluster refused" in flat(app), "the refused credentials")
        fake.source.model, fake.source.freshness = model, fresh  # type: ignore[method-assign]
        await wait_for(pilot, lambda: banner(app) is None, "the notice gone")
        await wait_for(pilot, lambda: "● connected" in flat(app), "connected")
        assert "data <5 s" in flat(app)


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
