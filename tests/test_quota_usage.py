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
    """Each recording weighs the time since the previous one, at most one interval, clipped to
    the window: hand-computed GPU-seconds per recording below."""
    upgrade(database_url)
    engine = create_db_engine(database_url)
    try:
        history = QuotaUsageHistory(QuotaUsageStore(engine), 90, 1.0, interval=INTERVAL)
        since = NOW - DAY
        recordings = [  # (at, allocated, busy): weight in seconds → GPU-seconds
            (since - 600, 100, 100),  # before the window: nothing
            (since + 120, 10, 5),  # gap of 720 s: one interval, clipped to the window: 120 s
            (since + 420, 10, 5),  # 300 s
            (NOW - 3600, 4, 4),  # after a long gap (the backend was down): one interval
            (NOW - 3300, 4, 0),  # 300 s
            (NOW, 2, 1),  # 300 s
        ]
        for at, allocated, busy in recordings:
            await history.record([UsageSample("team-a", H100, allocated, busy, 0)], now=at)
        await history.record([UsageSample("team-b", "*", 3, 0, 0)], now=NOW)
        day = history.hours()["24h"]
        a = day[("team-a", H100)]
        # allocated: 10·120 + 10·300 + 4·300 + 4·300 + 2·300 = 7200 GPU-s = 2 GPU-hours
        # busy: 5·120 + 5·300 + 4·300 + 0 + 1·300 = 3600 GPU-s = 1 GPU-hour
        assert (a.samples, a.allocated, a.busy) == (5, 2.0, 1.0)
        # team-b's one recording came at the same time as team-a's last: 3·300 s
        assert day[("team-b", "*")].allocated == 0.25
        # The 30-day window also sees the recording 24 h 10 min ago (100 GPUs for 300 s).
        month = history.hours()["30d"][("team-a", H100)]
        assert month.samples == 6
        assert month.allocated == pytest.approx(2.0 + 100 * 300 / 3600 + 10 * 180 / 3600)
    finally:
        engine.dispose()


def test_gpu_hours_window_starts_exactly_at_its_boundary(database_url: str) -> None:
    """A recording exactly at the window's start stands for the time before it: not counted; the
    next one counts its whole interval."""
    upgrade(database_url)
    engine = create_db_engine(database_url)
    try:
        store = QuotaUsageStore(engine)
        since = NOW - DAY
        store.record(since, [UsageSample("team-a", H100, 36, 36, 0)])
        store.record(since + INTERVAL, [UsageSample("team-a", H100, 12, 6, 0)])
        hours = store.gpu_hours(since, INTERVAL)[("team-a", H100)]
        assert (hours.samples, hours.allocated, hours.busy) == (1, 1.0, 0.5)
        # One second earlier, the first recording counts one second of 36 GPUs.
        earlier = store.gpu_hours(since - 1, INTERVAL)[("team-a", H100)]
        assert (earlier.samples, earlier.allocated) == (2, pytest.approx(1.0 + 36 / 3600))
    finally:
        engine.dispose()
