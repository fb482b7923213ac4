"""The quota usage history: per tenant and GPU model, every few minutes, what it held (allocated),
used (busy) and waited for (pending); kept 90 days, summarised as 24 h, 7 d and 30 d average and
peak, and as GPU-hours (what cost showback charges).

The summaries are computed by the database (grouped queries per window) after each recording and
kept in memory, so that ``GET /api/v1/quotas`` and ``GET /api/v1/cost`` never wait for the
database.

GPU-hours integrate the recordings honestly: each recording stands for the time until the next
one, at most one recording interval, clipped to the window; the newest stands for nothing until
the next is taken (no time is claimed that was not observed, at either end). A gap in the history
(the backend was down) counts one interval after the recording that starts it, never the whole
gap: a missing interval is not allocation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy import Engine, Float, Index
from sqlmodel import Field, SQLModel

from backend.schemas import UsageWindow

DAY = 86400.0
WINDOWS = {"24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
HOUR = 3600.0
Key = tuple[str, str]  # (tenant, GPU model as the quota review names it)


class QuotaUsageRow(SQLModel, table=True):
    __tablename__ = "quota_usage"
    __table_args__ = (Index("ix_quota_usage_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: float = Field(sa_type=Float, description="Unix time of the recording.")
    tenant: str = Field(max_length=253)
    gpu_model: str = Field(max_length=253)
    allocated: int
    busy: int
    pending: int


USAGE_TABLE = SQLModel.metadata.tables[QuotaUsageRow.__tablename__]


@dataclass(frozen=True)
class UsageSample:
    tenant: str
    gpu_model: str
    allocated: int
    busy: int
    pending: int


@dataclass(frozen=True)
class GpuHours:
    """A tenant's GPU-hours of one GPU model over a window: held (allocated) and doing work."""

    samples: int
    allocated: float
    busy: float


class QuotaUsageStore:
    """Recording, pruning and summarising, synchronously (callers run it in a thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, at: float, samples: Iterable[UsageSample]) -> None:
        rows = [{"at": at, **vars(s)} for s in samples]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(USAGE_TABLE), rows)

    def prune(self, before: float) -> None:
        table = USAGE_TABLE
        with self.engine.begin() as conn:
            conn.execute(sa.delete(table).where(table.c.at < before))

    def summary(self, since: float) -> dict[Key, UsageWindow]:
        """Average and peak per tenant and model of the recordings from ``since`` on."""
        return {key: window for key, (window, _, _) in self._grouped(since).items()}

    def summaries(
        self, since: float, interval: float
    ) -> tuple[dict[Key, UsageWindow], dict[Key, GpuHours]]:
        """Both summaries of a window from one grouped scan: average and peak, and GPU-hours
        (see the module's docstring for the weights).

        Most recordings weigh exactly ``interval`` (the recorder sleeps that long between two),
        so GPU-seconds are ``interval × SUM(allocated)`` from the scan, corrected by the few
        recordings that weigh otherwise: the newest, those before a gap or closer than the
        interval to the next, and the one before the window whose interval reaches into it."""
        grouped = self._grouped(since)
        seconds = {key: [interval * a, interval * b] for key, (_, a, b) in grouped.items()}
        for (tenant, model), extra, allocated, busy in self._corrections(since, interval):
            held = seconds.setdefault((tenant, model), [0.0, 0.0])
            held[0] += extra * allocated
            held[1] += extra * busy
        windows = {key: window for key, (window, _, _) in grouped.items()}
        hours = {
            key: GpuHours(
                samples=windows[key].samples if key in windows else 0,
                allocated=max(0.0, a) / HOUR,
                busy=max(0.0, b) / HOUR,
            )
            for key, (a, b) in seconds.items()
        }
        return windows, hours

    def _grouped(self, since: float) -> dict[Key, tuple[UsageWindow, float, float]]:
        """Per tenant and model from ``since`` on: the window, and the sums of allocated and
        busy GPUs over its recordings."""
        t = USAGE_TABLE
        query = (
            sa.select(
                t.c.tenant,
                t.c.gpu_model,
                sa.func.count(),
                sa.func.avg(t.c.allocated),
                sa.func.max(t.c.allocated),
                sa.func.avg(t.c.busy),
                sa.func.max(t.c.busy),
                sa.func.avg(t.c.pending),
                sa.func.max(t.c.pending),
                sa.func.sum(t.c.allocated),
                sa.func.sum(t.c.busy),
            )
            .where(t.c.at >= since)
            .group_by(t.c.tenant, t.c.gpu_model)
        )
        with self.engine.connect() as conn:
            return {
                (tenant, model): (
                    UsageWindow(
                        samples=n,
                        allocated_avg=_number(a_avg),
                        allocated_peak=a_max,
                        busy_avg=_number(b_avg),
                        busy_peak=b_max,
                        pending_avg=_number(p_avg),
                        pending_peak=p_max,
                    ),
                    float(a_sum or 0),
                    float(b_sum or 0),
                )
                for (
                    tenant, model, n, a_avg, a_max, b_avg, b_max, p_avg, p_max, a_sum, b_sum
                ) in conn.execute(query)
            }  # fmt: skip

    def _corrections(
        self, since: float, interval: float
    ) -> list[tuple[tuple[str, str], float, int, int]]:
        """((tenant, model), seconds to add per GPU, allocated, busy) of every recording whose
        weight is not the ``interval`` the grouped scan gave it (0 before the window)."""
        t = USAGE_TABLE
        with self.engine.connect() as conn:
            times = list(
                conn.execute(
                    sa.select(t.c.at).where(t.c.at >= since - interval).distinct().order_by(t.c.at)
                ).scalars()
            )
            extra = {}
            if not times:  # nothing recorded yet
                return []
            for at, following in zip(times, [*times[1:], None], strict=True):
                end = at if following is None else min(following, at + interval)
                weight = max(0.0, end - max(at, since))
                counted = interval if at >= since else 0.0
                if abs(weight - counted) > 1e-9:
                    extra[at] = weight - counted
            if not extra:
                return []
            rows = conn.execute(
                sa.select(t.c.tenant, t.c.gpu_model, t.c.at, t.c.allocated, t.c.busy).where(
                    t.c.at.in_(list(extra))
                )
            )
            return [((tenant, model), extra[at], a, b) for tenant, model, at, a, b in rows]


def _number(value: Decimal | float | None) -> float | None:
    """PostgreSQL's AVG of integers is a Decimal; round to what a reviewer reads."""
    return None if value is None else round(float(value), 2)


class QuotaUsageHistory:
    """The backend's usage history: records samples, keeps the windows' summaries current."""

    def __init__(
        self,
        store: QuotaUsageStore,
        retention_days: float,
        oversubscription: float,
        interval: float = 300.0,
    ):
        self.store = store
        self.retention = retention_days * DAY
        self.oversubscription = oversubscription
        self.interval = interval
        self.updated: datetime | None = None
        self._windows: dict[str, dict[Key, UsageWindow]] = {name: {} for name in WINDOWS}
        self._hours: dict[str, dict[Key, GpuHours]] = {name: {} for name in WINDOWS}

    async def record(self, samples: list[UsageSample], now: float | None = None) -> None:
        """Store one recording, drop what is older than the retention, refresh the summaries."""
        now = time.time() if now is None else now
        await asyncio.to_thread(self.store.record, now, samples)
        await asyncio.to_thread(self.store.prune, now - self.retention)
        for name, seconds in WINDOWS.items():
            windows, hours = await asyncio.to_thread(
                self.store.summaries, now - seconds, self.interval
            )
            self._windows[name], self._hours[name] = windows, hours
        self.updated = datetime.fromtimestamp(now, UTC)

    def windows(self) -> Mapping[str, Mapping[Key, UsageWindow]]:
        """``{"24h": {(tenant, model): UsageWindow}, "7d": {...}, "30d": {...}}``."""
        return self._windows

    def hours(self) -> Mapping[str, Mapping[Key, GpuHours]]:
        """``{"24h": {(tenant, model): GpuHours}, ...}``, up to the latest recording."""
        return self._hours
