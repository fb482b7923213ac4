"""Cost showback, OpenCost's model: GPU-hours = allocated GPUs × hours (from the usage history),
cost = GPU-hours × the model's hourly price, efficiency = busy ÷ allocated GPU-hours.

A model without a price keeps its GPU-hours and has no cost: totals add the priced costs and say
how many GPU-hours were left unpriced, so that a missing price never reads as free.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from backend.cost.basis import CostBasis
from backend.db.quota_usage import GpuHours, Key
from backend.schemas import CostReport, CostRow, CostWindow, IdleGpus, TenantCost


def efficiency(busy: float, allocated: float) -> float | None:
    """Percent of the allocated GPU-hours that did work; None without allocation."""
    return round(100.0 * busy / allocated, 1) if allocated > 0 else None


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def cost_rows(hours: Mapping[Key, GpuHours], basis: CostBasis) -> list[CostRow]:
    """One row per tenant and GPU model with recordings in the window, by tenant then model."""
    rows = []
    for (tenant, model), h in sorted(hours.items()):
        price = basis.price(model)
        rows.append(
            CostRow(
                tenant=tenant,
                gpu_model=model,
                samples=h.samples,
                gpu_hours=round(h.allocated, 3),
                busy_gpu_hours=round(h.busy, 3),
                efficiency=efficiency(h.busy, h.allocated),
                price_per_hour=price,
                cost=None if price is None else _money(h.allocated * price),
            )
        )
    return rows


def _add(total: float | None, value: float | None) -> float | None:
    """A sum of costs where None is "no priced part yet" (not zero)."""
    if value is None:
        return total
    return value if total is None else total + value


@dataclass(slots=True)
class _Totals:
    """A tenant's sums while they are added up (plain floats: cheaper than a schema's fields)."""

    gpu_hours: float = 0.0
    busy_gpu_hours: float = 0.0
    cost: float | None = None
    unpriced_gpu_hours: float = 0.0
    idle_gpus: int = 0
    idle_cost_per_day: float | None = None


def tenant_costs(rows: Iterable[CostRow], idle: Iterable[IdleGpus]) -> list[TenantCost]:
    """Per tenant: its rows' totals and its idle GPUs, highest cost first, then GPU-hours."""
    out: dict[str, _Totals] = defaultdict(_Totals)
    for row in rows:
        t = out[row.tenant]
        t.gpu_hours += row.gpu_hours
        t.busy_gpu_hours += row.busy_gpu_hours
        t.cost = _add(t.cost, row.cost)
        if row.cost is None:
            t.unpriced_gpu_hours += row.gpu_hours
    for group in idle:
        t = out[group.tenant]
        t.idle_gpus += group.gpus
        t.idle_cost_per_day = _add(t.idle_cost_per_day, group.cost_per_day)
    costs = [
        TenantCost(
            tenant=tenant,
            gpu_hours=round(t.gpu_hours, 3),
            busy_gpu_hours=round(t.busy_gpu_hours, 3),
            efficiency=efficiency(t.busy_gpu_hours, t.gpu_hours),
            cost=_money(t.cost),
            unpriced_gpu_hours=round(t.unpriced_gpu_hours, 3),
            idle_gpus=t.idle_gpus,
            idle_cost_per_day=_money(t.idle_cost_per_day),
        )
        for tenant, t in out.items()
    ]
    return sorted(costs, key=lambda t: (-(t.cost or 0.0), -t.gpu_hours, t.tenant))


def cost_report(
    since: CostWindow,
    hours: Mapping[Key, GpuHours],
    idle: list[IdleGpus],
    basis: CostBasis,
    updated: datetime | None,
) -> CostReport:
    """The whole answer of ``GET /api/v1/cost`` from the window's GPU-hours and the idle GPUs
    (both already limited to what the caller may see)."""
    rows = cost_rows(hours, basis)
    tenants = tenant_costs(rows, idle)
    cost: float | None = None
    idle_cost: float | None = None
    for t in tenants:
        cost, idle_cost = _add(cost, t.cost), _add(idle_cost, t.idle_cost_per_day)
    return CostReport(
        since=since,
        items=rows,
        tenants=tenants,
        idle=idle,
        gpu_hours=round(sum(r.gpu_hours for r in rows), 3),
        cost=_money(cost),
        unpriced_gpu_hours=round(sum(r.gpu_hours for r in rows if r.cost is None), 3),
        idle_gpus=sum(i.gpus for i in idle),
        idle_cost_per_day=_money(idle_cost),
        history_updated=updated,
    )
