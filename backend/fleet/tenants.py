"""Tenants: their namespaces, GPU quota per GPU model, and what they use, borrow and wait for.

Quota comes from Kueue when the tenant has a ClusterQueue (labelled ``opsconsole.io/tenant``):
nominal quota and limits per flavor from the spec, usage and borrowing from ``flavorsUsage``, and
pending GPUs from Kueue Workloads not yet admitted. Flavors are mapped to GPU models through the
ResourceFlavor's ``nodeLabels["nvidia.com/gpu.product"]`` (no label = any model, "*"). Without a
ClusterQueue, a ResourceQuota with ``requests.nvidia.com/gpu`` gives one quota for any model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from backend.fleet import kueue
from backend.fleet.index import ClusterIndex, Obj
from backend.fleet.objects import count as quantity_count
from backend.fleet.objects import (
    dig,
    mapping,
    name_of,
    namespace_of,
    normalized_model,
)
from backend.fleet.workloads import WorkloadRecord
from backend.schemas import Gpu, QuotaMode, Tenant, TenantQuota, WorkloadStatus

RQ_GPU = "requests.nvidia.com/gpu"
ANY_MODEL = "*"


def tenant_names(index: ClusterIndex) -> set[str]:
    """The tenants: named by a namespace label or a ClusterQueue label."""
    return set(index.tenant_namespaces) | set(index.cluster_queues)


def tenant_rows(
    index: ClusterIndex, records: Iterable[WorkloadRecord], gpus: Iterable[Gpu], names: set[str]
) -> dict[str, Tenant]:
    """The rows of the tenants ``names`` (each a tenant of the index), from every record and GPU
    (only theirs are read)."""
    by_tenant: dict[str, list[WorkloadRecord]] = defaultdict(list)
    for record in records:
        if record.row.tenant in names:
            by_tenant[record.row.tenant].append(record)
    utilization: dict[str, list[float]] = defaultdict(list)
    for gpu in gpus:
        if gpu.tenant in names and gpu.utilization is not None:
            utilization[gpu.tenant].append(gpu.utilization)
    pending = _kueue_pending_by_tenant(index)
    return {
        name: _tenant(name, index, by_tenant.get(name, []), utilization.get(name, []), pending)
        for name in names
    }


def _tenant(
    name: str,
    index: ClusterIndex,
    records: list[WorkloadRecord],
    utils: list[float],
    kueue_pending: dict[str, list[tuple[str | None, int]]],
) -> Tenant:
    namespaces = list(index.tenant_namespaces.get(name, []))
    queues = index.cluster_queues.get(name, [])
    fields: dict[str, Any]
    if queues:
        fields = _kueue_quota(queues, index, kueue_pending.get(name, []))
    else:
        fields = _resource_quota(namespaces, index, records)
    quotas: list[TenantQuota] = fields.pop("quotas")
    used = sum(q.used for q in quotas) if quotas else _held(records)
    return Tenant(
        name=name,
        namespaces=namespaces,
        gpu_quota=sum(q.nominal for q in quotas),
        gpu_used=used,
        gpu_borrowed=sum(q.borrowed for q in quotas),
        utilization=sum(utils) / len(utils) if utils else None,
        workloads=len(records),
        workloads_pending=sum(1 for r in records if r.row.status == WorkloadStatus.PENDING),
        quotas=quotas,
        **fields,
    )


def _held(records: Iterable[WorkloadRecord]) -> int:
    return sum(r.row.gpus for r in records)


def _kueue_pending_by_tenant(index: ClusterIndex) -> dict[str, list[tuple[str | None, int]]]:
    """tenant -> [(GPU model or None, GPUs)] over its namespaces' pending Kueue Workloads."""
    out: dict[str, list[tuple[str | None, int]]] = defaultdict(list)
    for workload in index.kueue_workloads.values():
        tenant = index.tenant_of(namespace_of(workload))
        if tenant and kueue.pending(workload):
            out[tenant].extend(kueue.pod_set_gpus(workload))
    return out


def _kueue_quota(
    queues: list[Obj], index: ClusterIndex, pending: list[tuple[str | None, int]]
) -> dict[str, Any]:
    quotas: list[TenantQuota] = []
    for queue in queues:
        usage = kueue.gpu_flavor_usage(queue)
        for entry in kueue.gpu_flavor_quotas(queue):
            flavor = entry["flavor"]
            used, borrowed = usage.get(flavor, (0, 0))
            borrowed = max(borrowed, used - entry["nominal"], 0)  # status may lag a quota cut
            model = index.flavor_models.get(flavor) or ANY_MODEL
            quotas.append(TenantQuota(gpu_model=model, used=used, borrowed=borrowed, **entry))
    _assign_pending(quotas, pending)
    return {
        "quota_mode": QuotaMode.KUEUE,
        "cluster_queue": name_of(queues[0]) or None,
        "cohort": kueue.cohort(queues[0]),
        "gpu_pending": sum(gpus for _, gpus in pending),
        "quotas": quotas,
    }


def _assign_pending(quotas: list[TenantQuota], pending: list[tuple[str | None, int]]) -> None:
    """Add each pending pod set's GPUs to the quota of its GPU model (or the only quota)."""
    by_model = {normalized_model(q.gpu_model): q for q in quotas}
    for model, gpus in pending:
        quota = by_model.get(normalized_model(model)) if model else None
        if quota is None:
            quota = by_model.get(normalized_model(ANY_MODEL))
        if quota is None and len(quotas) == 1:
            quota = quotas[0]
        if quota is not None:
            quota.pending += gpus


def _resource_quota(
    namespaces: list[str], index: ClusterIndex, records: list[WorkloadRecord]
) -> dict[str, Any]:
    hard = used = 0
    found = False
    for ns in namespaces:
        for quota in index.quotas_by_namespace.get(ns, ()):
            spec_hard = mapping(dig(quota, "spec", "hard"))
            if RQ_GPU not in spec_hard:
                continue
            found = True
            hard += quantity_count(spec_hard.get(RQ_GPU))
            used += quantity_count(mapping(dig(quota, "status", "used")).get(RQ_GPU))
    pending = sum(r.quota_pending_gpus for r in records)
    if not found:
        return {"quota_mode": QuotaMode.NONE, "gpu_pending": pending, "quotas": []}
    total = TenantQuota(gpu_model=ANY_MODEL, nominal=hard, used=used, pending=pending)
    return {"quota_mode": QuotaMode.RESOURCE_QUOTA, "gpu_pending": pending, "quotas": [total]}
