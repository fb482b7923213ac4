"""Kubernetes objects as the API server, Kueue and KServe write them, for fixture fleets.

Small builders for the kinds the fleet model reads; the result of ``cluster()`` is what the
cluster cache hands the model: kind plural -> {(namespace, name): object}.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from backend.conventions import GPU_PRODUCT_LABEL, TENANT_LABEL

Obj = dict[str, Any]
Cluster = dict[str, dict[tuple[str, str], Obj]]
GPU = "nvidia.com/gpu"


def meta(name: str, namespace: str | None = None, created: str | None = None, **extra: Any) -> Obj:
    out: Obj = {"name": name, "uid": f"uid-{namespace}-{name}"}
    if namespace is not None:
        out["namespace"] = namespace
    if created is not None:
        out["creationTimestamp"] = created
    out.update(extra)
    return out


def namespace(name: str, tenant: str | None) -> Obj:
    labels = {TENANT_LABEL: tenant} if tenant else {}
    return {"kind": "Namespace", "metadata": meta(name, labels=labels)}


def node(name: str, model: str, gpus: int, *, ready: bool = True, cordoned: bool = False) -> Obj:
    quantity = {"cpu": "96", GPU: str(gpus)}
    return {
        "kind": "Node",
        "metadata": meta(name, labels={"kubernetes.io/hostname": name, GPU_PRODUCT_LABEL: model}),
        "spec": {"unschedulable": True} if cordoned else {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "Unknown"}],
            "capacity": quantity,
            "allocatable": dict(quantity),
        },
    }


def template(gpus: int, model: str, image: str, labels: Mapping[str, str] | None = None) -> Obj:
    return {
        "metadata": {"labels": dict(labels or {})},
        "spec": {
            "nodeSelector": {GPU_PRODUCT_LABEL: model},
            "containers": [{"name": "main", "image": image, "resources": {"limits": {GPU: gpus}}}],
        },
    }


def flavor(name: str, model: str) -> Obj:
    return {
        "kind": "ResourceFlavor",
        "metadata": meta(name),
        "spec": {"nodeLabels": {GPU_PRODUCT_LABEL: model}},
    }


def cluster_queue(
    name: str,
    tenant: str,
    quotas: Iterable[tuple[str, Mapping[str, Any], Mapping[str, Any]]],
    *,
    cohort: str | None = None,
    pending: int = 0,
) -> Obj:
    """``quotas``: (flavor, {nominalQuota, borrowingLimit, lendingLimit}, {total, borrowed})."""
    quotas = list(quotas)
    spec: Obj = {
        "resourceGroups": [
            {
                "coveredResources": [GPU],
                "flavors": [{"name": f, "resources": [{"name": GPU, **q}]} for f, q, _ in quotas],
            }
        ]
    }
    if cohort:
        spec["cohortName"] = cohort
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": meta(name, labels={TENANT_LABEL: tenant}),
        "spec": spec,
        "status": {
            "flavorsUsage": [{"name": f, "resources": [{"name": GPU, **u}]} for f, _, u in quotas],
            "pendingWorkloads": pending,
        },
    }


def resource_quota(name: str, ns: str, hard: int, used: int) -> Obj:
    key = f"requests.{GPU}"
    return {
        "kind": "ResourceQuota",
        "metadata": meta(name, ns),
        "spec": {"hard": {key: str(hard)}},
        "status": {"hard": {key: str(hard)}, "used": {key: str(used)}},
    }


def cluster(*objects: Obj) -> Cluster:
    """Objects by kind plural and (namespace, name), as the cluster cache hands them over."""
    out: Cluster = {}
    for obj in objects:
        plural = obj["kind"].lower() + "s"
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        out.setdefault(plural, {})[key] = obj
    return out
