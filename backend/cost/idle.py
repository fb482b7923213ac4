"""Idle GPUs per tenant: allocated to a pod but below the idle utilization now, for how long, and
what they cost per day.

How long comes from each GPU's utilization history (the last samples the telemetry kept): the
run of idle samples at its end, times the telemetry round. The history is in memory, so after a
backend restart an idle time starts again from zero and grows: every figure is "idle at least
this long", and says so when the run spans the whole history kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from backend.cost.basis import CostBasis
from backend.fleet.objects import normalized_model
from backend.fleet.tenants import ANY_MODEL
from backend.schemas import Gpu, IdleGpus, QuotaRow


def idle_run(history: Sequence[float | None], threshold: float) -> int:
    """How many of the newest samples are idle (known and below ``threshold``)."""
    run = 0
    for value in reversed(history):
        if value is None or value >= threshold:
            break
        run += 1
    return run


def _quota_models(rows: Iterable[QuotaRow]) -> dict[tuple[str, str], str]:
    """(tenant, normalized model or '*') -> the quota row's gpu_model."""
    return {(r.tenant, normalized_model(r.gpu_model)): r.gpu_model for r in rows}


def idle_gpus(
    gpus: Iterable[Gpu], rows: Iterable[QuotaRow], threshold: float, basis: CostBasis
) -> list[IdleGpus]:
    """One entry per tenant and GPU model holding idle GPUs, by tenant then model."""
    runs: dict[tuple[str, str], list[tuple[int, bool]]] = defaultdict(list)
    for gpu in gpus:
        if gpu.idle and gpu.tenant:
            run = idle_run(gpu.history, threshold)
            runs[(gpu.tenant, gpu.model)].append((run, run == len(gpu.history)))
    quotas = _quota_models(rows)
    out = []
    for (tenant, model), found in sorted(runs.items()):
        shortest, whole = min(found)
        price = basis.price(model)
        quota = quotas.get((tenant, normalized_model(model))) or quotas.get((tenant, ANY_MODEL))
        out.append(
            IdleGpus(
                tenant=tenant,
                gpu_model=model,
                quota_model=quota,
                gpus=len(found),
                idle_seconds=shortest * basis.sample_seconds if shortest else None,
                idle_at_least=whole and shortest > 0,
                price_per_hour=price,
                cost_per_day=None if price is None else round(len(found) * price * 24, 2),
            )
        )
    return out
