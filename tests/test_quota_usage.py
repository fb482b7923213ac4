"""The quota usage history on SQLite and on a real PostgreSQL server: recordings, the 24 h and
7 d average and peak, and the 90 days kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.db.engine import create_db_engine
from backend.db.migrate import upgrade
from backend.db.quota_usage import DAY, QuotaUsageHistory, QuotaUsageStore, UsageSample
from tests.pg_fixture import pg_server, postgres_url  # noqa: F401

NOW = 1_800_000_000.0
H100 = "NVIDIA-H100-80GB-HBM3"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'usage.db'}"
    return str(request.getfixturevalue("postgres_url"))


async def test_windows_average_and_peak_and_old_rows_are_dropped(database_url: str) -> None:
    upgrade(database_url)
    engine = create_db_engine(database_url)
    try:
        history = QuotaUsageHistory(QuotaUsageStore(engine), 90, 1.5)
        assert history.updated is None and history.windows()["24h"] == {}
        recordings = [  # (days ago, allocated, busy, pending)
            (100, 50, 50, 50),  # beyond the 90 days: dropped
            (5, 10, 2, 0),
            (0.5, 6, 4, 3),
            (0, 8, 6, 1),
        ]
        for days, allocated, busy, pending in recordings:
            samples = [UsageSample("team-a", H100, allocated, busy, pending)]
            await history.record(samples, now=NOW - days * DAY)
        day, week = history.windows()["24h"], history.windows()["7d"]
        a_day, a_week = day[("team-a", H100)], week[("team-a", H100)]
        assert (a_day.samples, a_day.allocated_avg, a_day.allocated_peak) == (2, 7.0, 8)
        assert (a_day.busy_avg, a_day.busy_peak, a_day.pending_peak) == (5.0, 6, 3)
        assert (a_week.samples, a_week.allocated_avg, a_week.allocated_peak) == (3, 8.0, 10)
        assert history.updated is not None and history.updated.timestamp() == NOW
        assert history.oversubscription == 1.5
        # The 100-day-old row is gone: a window as long as the retention does not see it.
        assert QuotaUsageStore(engine).summary(NOW - 200 * DAY)[("team-a", H100)].samples == 3
    finally:
        engine.dispose()


INTERVAL = 300.0


async def test_gpu_hours_integrate_recordings_and_count_no_gap(database_url: str) -> None:
    """Each recording weighs the time until the next one, at most one interval, clipped to the
    window; the newest weighs nothing yet. Hand-computed GPU-seconds per recording below."""
    upgrade(database_url)
    engine = create_db_engine(database_url)
    try:
        history = QuotaUsageHistory(QuotaUsageStore(engine), 90, 1.0, interval=INTERVAL)
        since = NOW - DAY
        recordings = [  # (at, allocated, busy): weight in seconds → allocated, busy GPU-seconds
            (since - 600, 100, 100),  # a gap follows: its interval ends before the window
            (since - 120, 10, 10),  # 180 s inside the window → 1800, 1800
            (since + 180, 6, 0),  # a gap follows (the backend was down): 300 s → 1800, 0
            (since + 900, 6, 3),  # a gap follows: 300 s → 1800, 900
            (NOW - 300, 6, 3),  # 300 s → 1800, 900
            (NOW, 50, 50),  # the newest: nothing yet
        ]
        for at, allocated, busy in recordings:
            await history.record([UsageSample("team-a", H100, allocated, busy, 0)], now=at)
        await history.record([UsageSample("team-b", "*", 3, 0, 0)], now=NOW)
        day = history.hours()["24h"]
        a = day[("team-a", H100)]
        assert (a.samples, a.allocated, a.busy) == (4, 2.0, 1.0)  # 7200 and 3600 GPU-seconds
        assert (day[("team-b", "*")].samples, day[("team-b", "*")].allocated) == (1, 0.0)
        # 30 days: the recording 24 h 10 min ago counts 300 s of 100 GPUs, the next all 300 s.
        month = history.hours()["30d"][("team-a", H100)]
        assert (month.samples, month.allocated) == (6, pytest.approx((7200 + 1200 + 30000) / 3600))
    finally:
        engine.dispose()


def test_gpu_hours_window_starts_exactly_at_its_boundary(database_url: str) -> None:
    """A recording exactly at the window's start counts its whole interval; one an interval
    earlier counts nothing, and a second more of window takes a second of it."""
    upgrade(database_url)
    engine = create_db_engine(database_url)
    try:
        store = QuotaUsageStore(engine)
        since = NOW - DAY
        store.record(since - INTERVAL, [UsageSample("team-a", H100, 100, 100, 0)])
        store.record(since, [UsageSample("team-a", H100, 36, 18, 0)])
        store.record(since + INTERVAL, [UsageSample("team-a", H100, 12, 6, 0)])
        hours = store.summaries(since, INTERVAL)[1][("team-a", H100)]
        assert (hours.samples, hours.allocated, hours.busy) == (2, 3.0, 1.5)
        earlier = store.summaries(since - 1, INTERVAL)[1][("team-a", H100)]
        assert (earlier.samples, earlier.allocated) == (2, pytest.approx(3.0 + 100 / 3600))
    finally:
        engine.dispose()


async def test_a_fleet_with_no_quota_records_empty_windows(database_url: str) -> None:
    """A cluster with no tenant yet: a recording of nothing leaves every window empty."""
    upgrade(database_url)
    engine = create_db_engine(database_url)
    try:
        history = QuotaUsageHistory(QuotaUsageStore(engine), 90, 1.5)
        await history.record([], now=NOW)
        assert all(not windows for windows in history.windows().values())
        assert all(not hours for hours in history.hours().values())
        assert history.updated is not None
    finally:
        engine.dispose()
