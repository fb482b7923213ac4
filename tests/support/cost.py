"""The detail fleet with an hour of usage history and a price for H100s: what the cost tests
compute by hand.

Recordings every 5 minutes for the last hour (13 of them: 12 intervals, the newest counts nothing
yet): team-a held 6 H100s (3 busy), 6 GPU-hours; team-b 2 A100s (2 busy, no price), 2 GPU-hours;
and team-a 36 H100s once, 8 days earlier, followed by a gap: one interval, 3 GPU-hours.
"""

from __future__ import annotations

from pathlib import Path

from backend.cost.basis import CostBasis
from backend.db.engine import create_db_engine
from backend.db.migrate import upgrade
from backend.db.quota_usage import DAY, QuotaUsageHistory, QuotaUsageStore, UsageSample
from tests.support.backend import FleetBackend
from tests.support.detail_fleet import NOW, detail_fleet
from tests.support.fleets import H100

A100 = "NVIDIA-A100-SXM4-40GB"
PRICES = CostBasis.priced({"NVIDIA H100 80GB HBM3": 4.5}, sample_seconds=15.0)


async def costed_fleet(tmp_path: Path) -> FleetBackend:
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    upgrade(url)
    history = QuotaUsageHistory(QuotaUsageStore(create_db_engine(url)), 90, 1.0, interval=300)
    await history.record([UsageSample("team-a", H100, 36, 36, 0)], now=NOW - 8 * DAY)
    for k in range(13):
        await history.record(
            [UsageSample("team-a", H100, 6, 3, 0), UsageSample("team-b", A100, 2, 2, 0)],
            now=NOW - 3600 + 300 * k,
        )
    backend = FleetBackend(detail_fleet())
    backend.source.quota_usage = history
    backend.source.cost_basis = PRICES
    return backend
