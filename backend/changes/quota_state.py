"""The cluster's GPU quota as a quota change reads it: fresh from the API server, every number the
change may write located by object and JSON pointer.

A *cell* is one quota number: a tenant's ClusterQueue ``nominalQuota`` of ``nvidia.com/gpu`` in
one ResourceFlavor (Kueue), or ``spec.hard["requests.nvidia.com/gpu"]`` of one ResourceQuota in
one of its namespaces (ResourceQuota mode, which counts every GPU model together). Reads go to the
API server, not the backend's cache, so that the plan's resourceVersions are the ones the writes
will be checked against.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.changes.kube import ClusterClient, JsonObject, KubeError, ObjectRef
from backend.changes.plan import json_pointer
from backend.conventions import GPU_PRODUCT_LABEL, GPU_RESOURCE, TENANT_LABEL
from backend.k8s.quantity import quantity_ceil

KUEUE = "kueue"
RESOURCE_QUOTA = "resourcequota"
RQ_GPU = f"requests.{GPU_RESOURCE}"
ANY_MODEL = "*"
KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_VERSIONS = ("v1beta2", "v1beta1")
KINDS = (
    "namespaces",
    "nodes",
    "resourceflavors",
    "clusterqueues",
    "localqueues",
    "workloads",
    "resourcequotas",
)
ClusterObjects = Mapping[str, Mapping[Any, JsonObject]]  # the cache's snapshot: kind -> objects


@dataclass
class Cell:
    """One quota number a change may write, and where it is."""

    tenant: str
    system: str  # KUEUE or RESOURCE_QUOTA
    ref: ObjectRef
    resource_version: str
    path: str  # JSON pointer of the number
    raw: Any  # the value as the object holds it (a quantity string or a number)
    value: int
    gpu_model: str  # the flavor's nvidia.com/gpu.product; ANY_MODEL for a ResourceQuota
    flavor: str | None = None
    namespace: str | None = None
    used: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (str(self.ref), self.path)

    def label(self) -> str:
        where = self.flavor if self.system == KUEUE else f"namespace {self.namespace}"
        return f"{self.tenant} ({where})"


@dataclass
class QuotaState:
    """Every tenant's quota cells, and what the checks and the what-if need besides."""

    cells: dict[str, list[Cell]] = field(default_factory=lambda: defaultdict(list))
    tenant_namespaces: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    flavor_models: dict[str, str | None] = field(default_factory=dict)
    flavor_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    capacity: dict[str, int] = field(default_factory=dict)  # GPU product -> GPUs in the nodes
    cluster_queues: list[JsonObject] = field(default_factory=list)
    local_queues: list[JsonObject] = field(default_factory=list)
    workloads: list[JsonObject] = field(default_factory=list)
    kueue_version: str = KUEUE_VERSIONS[0]

    def tenants(self) -> set[str]:
        return set(self.tenant_namespaces) | set(self.cells)

    def system(self, tenant: str) -> str | None:
        cells = self.cells.get(tenant)
        return cells[0].system if cells else None


def _list_kueue(cluster: ClusterClient, plural: str, kind: str) -> tuple[list[JsonObject], str]:
    """Kueue objects from the first version the cluster serves; none when Kueue is absent."""
    for version in KUEUE_VERSIONS:
        try:
            return cluster.list(ObjectRef(KUEUE_GROUP, version, plural, kind, None, "")), version
        except KubeError as exc:
            if exc.status != 404:
                raise
    return [], KUEUE_VERSIONS[0]


def read_quota_state(cluster: ClusterClient) -> QuotaState:
    """Everything fresh from the API server (one list per kind)."""
    flavors, version = _list_kueue(cluster, "resourceflavors", "ResourceFlavor")
    objects = {
        "namespaces": cluster.list(ObjectRef("", "v1", "namespaces", "Namespace", None, "")),
        "nodes": cluster.list(ObjectRef("", "v1", "nodes", "Node", None, "")),
        "resourceflavors": flavors,
        "clusterqueues": _list_kueue(cluster, "clusterqueues", "ClusterQueue")[0],
        "localqueues": _list_kueue(cluster, "localqueues", "LocalQueue")[0],
        "workloads": _list_kueue(cluster, "workloads", "Workload")[0],
        "resourcequotas": cluster.list(
            ObjectRef("", "v1", "resourcequotas", "ResourceQuota", None, "")
        ),
    }
    return quota_state(objects, version)


def cached_quota_state(
    cached: ClusterObjects, cluster: ClusterClient, tenants: Iterable[str]
) -> QuotaState:
    """From the backend's cache (kept current by watches), except the quota objects of
    ``tenants``, read fresh: their values and resourceVersions are what the writes check."""
    objects = {kind: list(cached.get(kind, {}).values()) for kind in KINDS}
    queues = objects["clusterqueues"]
    version = str(queues[0].get("apiVersion", "")).rpartition("/")[2] if queues else ""
    state = quota_state(objects, version or KUEUE_VERSIONS[0])
    for tenant in tenants:
        _refresh(state, cluster, tenant)
    return state


def _refresh(state: QuotaState, cluster: ClusterClient, tenant: str) -> None:
    if tenant not in state.cells:
        return
    refs = {str(c.ref): c.ref for c in state.cells[tenant]}
    state.cells[tenant] = []
    for ref in refs.values():
        obj = cluster.get(ref)
        if ref.kind == "ClusterQueue":
            state.cluster_queues = [
                obj if (q.get("metadata") or {}).get("name") == ref.name else q
                for q in state.cluster_queues
            ]
            _kueue_cells(state, obj)
        else:
            _resource_quota_cell(state, obj)


def quota_state(objects: Mapping[str, list[JsonObject]], kueue_version: str) -> QuotaState:
    """The state from lists of objects per kind (plural -> objects)."""
    state = QuotaState(kueue_version=kueue_version)
    for ns in objects["namespaces"]:
        meta = ns.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        state.namespace_labels[meta.get("name", "")] = labels
        if labels.get(TENANT_LABEL):
            state.tenant_namespaces[labels[TENANT_LABEL]].append(meta.get("name", ""))
    for names in state.tenant_namespaces.values():
        names.sort()
    for node in objects["nodes"]:
        product = ((node.get("metadata") or {}).get("labels") or {}).get(GPU_PRODUCT_LABEL)
        gpus = quantity_ceil(((node.get("status") or {}).get("capacity") or {}).get(GPU_RESOURCE))
        if product and gpus:
            state.capacity[product] = state.capacity.get(product, 0) + gpus
    for flavor in objects["resourceflavors"]:
        labels = dict((flavor.get("spec") or {}).get("nodeLabels") or {})
        name = (flavor.get("metadata") or {}).get("name", "")
        state.flavor_labels[name] = labels
        state.flavor_models[name] = labels.get(GPU_PRODUCT_LABEL)
    state.cluster_queues = objects["clusterqueues"]
    state.local_queues = objects["localqueues"]
    state.workloads = objects["workloads"]
    for cq in state.cluster_queues:
        _kueue_cells(state, cq)
    for rq in objects["resourcequotas"]:
        _resource_quota_cell(state, rq)
    return state


def _kueue_cells(state: QuotaState, cq: JsonObject) -> None:
    meta = cq.get("metadata") or {}
    tenant = (meta.get("labels") or {}).get(TENANT_LABEL)
    if not tenant:
        return
    ref = ObjectRef(
        KUEUE_GROUP, state.kueue_version, "clusterqueues", "ClusterQueue", None, meta["name"]
    )
    usage = flavor_usage(cq)
    groups = (cq.get("spec") or {}).get("resourceGroups") or []
    for g, group in enumerate(groups):
        for f, flavor in enumerate(group.get("flavors") or []):
            for r, resource in enumerate(flavor.get("resources") or []):
                if resource.get("name") != GPU_RESOURCE:
                    continue
                name = flavor.get("name", "")
                raw = resource.get("nominalQuota")
                state.cells[tenant].append(
                    Cell(
                        tenant=tenant,
                        system=KUEUE,
                        ref=ref,
                        resource_version=str(meta.get("resourceVersion") or ""),
                        path=json_pointer(
                            "spec",
                            "resourceGroups",
                            g,
                            "flavors",
                            f,
                            "resources",
                            r,
                            "nominalQuota",
                        ),
                        raw=raw,
                        value=quantity_ceil(raw) or 0,
                        gpu_model=state.flavor_models.get(name) or ANY_MODEL,
                        flavor=name,
                        used=usage.get(name, 0),
                    )
                )


def flavor_usage(cq: JsonObject) -> dict[str, int]:
    """GPUs in use per flavor, as Kueue accounts them in the ClusterQueue's status."""
    out: dict[str, int] = {}
    for usage in (cq.get("status") or {}).get("flavorsUsage") or []:
        for resource in usage.get("resources") or []:
            if resource.get("name") == GPU_RESOURCE:
                out[usage.get("name", "")] = quantity_ceil(resource.get("total")) or 0
    return out


def _resource_quota_cell(state: QuotaState, rq: JsonObject) -> None:
    meta = rq.get("metadata") or {}
    namespace = meta.get("namespace", "")
    tenant = state.namespace_labels.get(namespace, {}).get(TENANT_LABEL)
    hard = (rq.get("spec") or {}).get("hard") or {}
    if not tenant or RQ_GPU not in hard:
        return
    used = ((rq.get("status") or {}).get("used") or {}).get(RQ_GPU)
    state.cells[tenant].append(
        Cell(
            tenant=tenant,
            system=RESOURCE_QUOTA,
            ref=ObjectRef("", "v1", "resourcequotas", "ResourceQuota", namespace, meta["name"]),
            resource_version=str(meta.get("resourceVersion") or ""),
            path=json_pointer("spec", "hard", RQ_GPU),
            raw=hard[RQ_GPU],
            value=quantity_ceil(hard[RQ_GPU]) or 0,
            gpu_model=ANY_MODEL,
            namespace=namespace,
            used=quantity_ceil(used) or 0,
        )
    )
