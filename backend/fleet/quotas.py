"""The quota review: every tenant's GPU quota per model against what it uses, waits for and idles.

Built from the tenants the model already derived (Kueue quota per flavor, or the ResourceQuota
total), split per namespace for ResourceQuota tenants, and joined with the GPUs the tenant's pods
hold: ``allocated`` (held GPUs of the row's model) and ``idle`` (held but below the telemetry
idle threshold). ``model_totals`` puts each GPU model's granted nominal quota next to its capacity.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from backend.fleet.index import ClusterIndex
from backend.fleet.objects import count, dig, mapping, name_of, normalized_model
from backend.fleet.tenants import ANY_MODEL, RQ_GPU
from backend.schemas import (
    Gpu,
    NamespaceQuota,
    Node,
    QuotaMode,
    QuotaModelTotal,
    QuotaRow,
    Tenant,
)


def _held(gpus: Iterable[Gpu]) -> dict[tuple[str, str], tuple[int, int]]:
    """(tenant, normalized model or ANY_MODEL for all) -> (allocated, idle) GPUs."""
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    models: dict[str, str] = {}
    for gpu in gpus:
        if gpu.allocated and gpu.tenant:
            model = models.get(gpu.model) or models.setdefault(
                gpu.model, normalized_model(gpu.model)
            )
            for key in ((gpu.tenant, model), (gpu.tenant, ANY_MODEL)):
                held = out[key]
                held[0] += 1
                held[1] += 1 if gpu.idle else 0
    return {key: (a, i) for key, (a, i) in out.items()}


def _namespace_quotas(index: ClusterIndex, namespaces: list[str]) -> list[NamespaceQuota]:
    out = []
    for ns in namespaces:
        for quota in index.quotas_by_namespace.get(ns, ()):
            hard = mapping(dig(quota, "spec", "hard"))
            if RQ_GPU in hard:
                used = mapping(dig(quota, "status", "used")).get(RQ_GPU)
                out.append(
                    NamespaceQuota(
                        namespace=ns,
                        name=name_of(quota),
                        hard=count(hard[RQ_GPU]),
                        used=count(used),
                    )
                )
    return out


def quota_rows_by_tenant(
    index: ClusterIndex, tenants: list[Tenant], gpus: Iterable[Gpu]
) -> dict[str, list[QuotaRow]]:
    """The quota rows of each of ``tenants``, from every GPU (only theirs are read)."""
    names = {tenant.name for tenant in tenants}
    held = _held(g for g in gpus if g.tenant in names)
    return {tenant.name: _tenant_rows(index, tenant, held) for tenant in tenants}


def _tenant_rows(
    index: ClusterIndex, tenant: Tenant, held: dict[tuple[str, str], tuple[int, int]]
) -> list[QuotaRow]:
    rows: list[QuotaRow] = []
    if tenant.quota_mode == QuotaMode.NONE:
        return rows
    for quota in tenant.quotas:
        model = ANY_MODEL if quota.gpu_model == ANY_MODEL else normalized_model(quota.gpu_model)
        allocated, idle = held.get((tenant.name, model), (0, 0))
        rq = tenant.quota_mode == QuotaMode.RESOURCE_QUOTA
        rows.append(
            QuotaRow(
                tenant=tenant.name,
                system=tenant.quota_mode,
                gpu_model=quota.gpu_model,
                flavor=quota.flavor,
                cluster_queue=tenant.cluster_queue,
                cohort=tenant.cohort,
                namespaces=tenant.namespaces,
                namespace_quotas=_namespace_quotas(index, tenant.namespaces) if rq else [],
                nominal=quota.nominal,
                borrowing_limit=quota.borrowing_limit,
                lending_limit=quota.lending_limit,
                used=quota.used,
                borrowed=quota.borrowed,
                pending=quota.pending,
                allocated=allocated,
                idle=idle,
            )
        )
    return rows


def model_totals(
    index: ClusterIndex, rows: list[QuotaRow], nodes: list[Node], ratio: float
) -> list[QuotaModelTotal]:
    """Per GPU model with nodes or a flavor: capacity, Kueue nominal quota, and the limit."""
    capacity: dict[str, int] = defaultdict(int)
    names: dict[str, str] = {}
    for node in nodes:
        if node.gpu_model:
            capacity[normalized_model(node.gpu_model)] += node.gpus_capacity
            names.setdefault(normalized_model(node.gpu_model), node.gpu_model)
    flavors: dict[str, list[str]] = defaultdict(list)
    for flavor, product in sorted(index.flavor_models.items()):
        if product:
            flavors[normalized_model(product)].append(flavor)
            names.setdefault(normalized_model(product), product)
    nominal: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.system == QuotaMode.KUEUE:
            nominal[normalized_model(row.gpu_model)] += row.nominal
    return [
        QuotaModelTotal(
            gpu_model=names[key],
            flavors=flavors.get(key, []),
            capacity=capacity.get(key, 0),
            nominal=nominal.get(key, 0),
            limit=math.floor(capacity.get(key, 0) * ratio),
        )
        for key in sorted(names)
    ]
