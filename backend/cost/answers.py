"""``GET /api/v1/cost``'s answers as JSON, rendered once per model, window, tenant scope, usage
recording and prices (the model's answer cache).

An answer reads the usage history's GPU-hours and the model's idle GPUs now, so it changes with
either. The answers requests asked of a model are rendered again for the model that replaces it
(in its worker thread, before it is published) and for the current model when the usage history
records (in a thread): while operators poll them, requests only copy bytes. An answer nobody
asks for is not rendered (each costs ~20 ms of CPU on the large fleet, and a model is replaced
every second or two).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from datetime import datetime
from typing import Protocol

from backend.cost.basis import CostBasis
from backend.cost.idle import idle_gpus
from backend.cost.showback import cost_report
from backend.cputime import accounted
from backend.db.quota_usage import GpuHours, Key
from backend.fleet.model import FleetModel
from backend.schemas import CostWindow


class UsageHours(Protocol):
    """What the answers read of the usage history (``QuotaUsageHistory``)."""

    @property
    def updated(self) -> datetime | None: ...

    def hours(self) -> Mapping[str, Mapping[Key, GpuHours]]: ...


Render = Callable[[], bytes]
COST = "cost"  # the answers' keys start with it, and their rendering's CPU is counted as it


def _answer(
    model: FleetModel,
    usage: UsageHours | None,
    basis: CostBasis,
    scope: frozenset[str] | None,
    since: CostWindow,
) -> tuple[Hashable, Render]:
    """The answer's key in the model's cache, and how it is rendered."""
    updated = usage.updated if usage is not None else None

    def visible(tenant: str) -> bool:
        return scope is None or tenant in scope

    def render() -> bytes:
        with accounted(COST):
            window = usage.hours().get(since, {}) if usage is not None else {}
            hours = {key: h for key, h in window.items() if visible(key[0])}
            gpus = [g for g in model.gpus.items if g.idle and g.tenant and visible(g.tenant)]
            threshold = model.rules.idle_utilization_percent
            idle = idle_gpus(gpus, model.quota_rows(), threshold, basis)
            report = cost_report(since, hours, idle, basis, updated)
            return report.__pydantic_serializer__.to_json(report)

    return (COST, scope, since, updated, id(basis)), render


def cost_json(
    model: FleetModel,
    usage: UsageHours | None,
    basis: CostBasis,
    scope: frozenset[str] | None,
    since: CostWindow,
) -> bytes:
    """The ``CostReport`` of ``since`` as ``scope`` (None: every tenant) may see it."""
    return model.answer_json(*_answer(model, usage, basis, scope, since))


def prerender_cost(
    model: FleetModel, usage: UsageHours | None, basis: CostBasis, asked_of: FleetModel
) -> None:
    """Render for ``model`` the cost answers (scope and window) requests asked of ``asked_of``:
    the model it replaces, or itself when the usage history recorded."""
    for key in asked_of.asked():
        if isinstance(key, tuple) and key[0] == COST:
            _, scope, since, *_ = key
            model.prerender(*_answer(model, usage, basis, scope, since))
