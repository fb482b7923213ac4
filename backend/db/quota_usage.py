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
                conn.execute(sa.insert(QuotaUsageRow.__table__), rows)  # type: ignore[attr-defined]

    def prune(self, before: float) -> None:
        table = QuotaUsageRow.__table__  # type: ignore[attr-defined]
        with self.engine.begin() as conn:
            conn.execute(sa.delete(table).where(table.c.at < before))

    def summary(self, since: float) -> dict[Key, UsageWindow]:
        t = QuotaUsageRow.__table__  # type: ignore[attr-defined]
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
            )
            .where(t.c.at >= since)
            .group_by(t.c.tenant, t.c.gpu_model)
        )
        with self.engine.connect() as conn:
            return {
                (tenant, model): UsageWindow(
                    samples=n,
                    allocated_avg=_number(a_avg),
                    allocated_peak=a_max,
                    busy_avg=_number(b_avg),
                    busy_peak=b_max,
                    pending_avg=_number(p_avg),
                    pending_peak=p_max,
                )
                for tenant, model, n, a_avg, a_max, b_avg, b_max, p_avg, p_max in conn.execute(
                    query
                )
            }

    def gpu_hours(self, since: float, interval: float) -> dict[Key, GpuHours]:
        """GPU-hours from ``since`` on: each recording weighs the seconds until the next one, at
        most ``interval``, clipped to start at ``since`` (a window function over the recording
        times, then one grouped sum). The newest recording weighs nothing yet."""
        t = QuotaUsageRow.__table__  # type: ignore[attr-defined]
        times = sa.select(t.c.at).where(t.c.at >= since - interval).distinct().subquery()
        spans = sa.select(
            times.c.at, sa.func.lead(times.c.at).over(order_by=times.c.at).label("next")
        ).subquery()
        latest = spans.c.at + interval
        end = sa.case(
            (spans.c.next.is_(None), spans.c.at),
            (spans.c.next > latest, latest),
            else_=spans.c.next,
        )
        seconds = end - sa.case((spans.c.at < since, since), else_=spans.c.at)
        query = (
            sa.select(
                t.c.tenant,
                t.c.gpu_model,
                sa.func.count(),
                sa.func.sum(t.c.allocated * seconds),
                sa.func.sum(t.c.busy * seconds),
            )
            .join(spans, spans.c.at == t.c.at)
            .where(sa.or_(spans.c.at >= since, end > since))
            .group_by(t.c.tenant, t.c.gpu_model)
        )
        with self.engine.connect() as conn:
            return {
                (tenant, model): GpuHours(
                    samples=n,
                    allocated=float(allocated or 0) / HOUR,
                    busy=float(busy or 0) / HOUR,
                )
                for tenant, model, n, allocated, busy in conn.execute(query)
            }


def _number(value: object) -> float | None:
    """PostgreSQL's AVG of integers is a Decimal; round to what a reviewer reads."""
    return None if value is None else round(float(value), 2)  # type: ignore[arg-type]


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
            since = now - seconds
            self._windows[name] = await asyncio.to_thread(self.store.summary, since)
            self._hours[name] = await asyncio.to_thread(self.store.gpu_hours, since, self.interval)
        self.updated = datetime.fromtimestamp(now, UTC)

    def windows(self) -> Mapping[str, Mapping[Key, UsageWindow]]:
        """``{"24h": {(tenant, model): UsageWindow}, "7d": {...}, "30d": {...}}``."""
        return self._windows

    def hours(self) -> Mapping[str, Mapping[Key, GpuHours]]:
        """``{"24h": {(tenant, model): GpuHours}, ...}``, up to the latest recording."""
        return self._hours
