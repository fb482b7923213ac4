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
