"""Kubernetes objects as the API server, Kueue and KServe write them, for fixture fleets.

Small builders for the kinds the fleet model reads; the result of ``cluster()`` is what the
cluster cache hands the model: kind plural -> {(namespace, name): object}.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from backend.conventions import GPU_PRODUCT_LABEL, TENANT_LABEL
from backend.k8s.annotations import CHANGE_CAUSE_ANNOTATION, REVISION_ANNOTATION

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


def owned_by(kind: str, name: str) -> list[Obj]:
    """``ownerReferences`` naming the object's controller."""
    return [{"kind": kind, "name": name, "controller": True}]


def replica_set(
    name: str,
    ns: str,
    created: str,
    deployment: str,
    template_: Obj,
    *,
    revision: int,
    change_cause: str | None = None,
    replicas: int = 0,
    ready: int = 0,
) -> Obj:
    """A Deployment's ReplicaSet as the deployment controller leaves it after a rollout."""
    notes = {REVISION_ANNOTATION: str(revision)}
    if change_cause is not None:
        notes[CHANGE_CAUSE_ANNOTATION] = change_cause
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta(
            name, ns, created, annotations=notes, ownerReferences=owned_by("Deployment", deployment)
        ),
        "spec": {"replicas": replicas, "template": template_},
        "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready},
    }


def pod(
    name: str,
    ns: str,
    created: str,
    template_: Obj,
    *,
    status: Obj,
    node: str | None = None,
    owner: tuple[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Obj:
    """A pod made from ``template_`` (its labels and spec), bound to ``node`` when given."""
    pod_labels = {**template_["metadata"]["labels"], **(labels or {})}
    extra: Obj = {"labels": pod_labels}
    if owner is not None:
        extra["ownerReferences"] = owned_by(*owner)
    spec = dict(template_["spec"])
    if node is not None:
        spec["nodeName"] = node
    return {
        "kind": "Pod",
        "metadata": meta(name, ns, created, **extra),
        "spec": spec,
        "status": status,
    }


def running(*, ready: bool = True, restarts: int = 0) -> Obj:
    """A running pod's status."""
    return {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": [{"name": "main", "ready": ready, "restartCount": restarts}],
    }


def unschedulable(message: str) -> Obj:
    """A pending pod's status after the scheduler found no node for it."""
    return {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
            }
        ],
    }


def event(
    ns: str,
    about: tuple[str, str],
    reason: str,
    message: str,
    last_seen: str,
    *,
    warning: bool = False,
    count: int = 1,
) -> Obj:
    """A core/v1 Event about the object ``about`` = (kind, name) in ``ns``."""
    kind, name = about
    return {
        "kind": "Event",
        "metadata": meta(f"{name}.{reason.lower()}", ns, last_seen),
        "involvedObject": {"kind": kind, "name": name, "namespace": ns},
        "type": "Warning" if warning else "Normal",
        "reason": reason,
        "message": message,
        "count": count,
        "lastTimestamp": last_seen,
    }


def kueue_workload(name: str, ns: str, job: str, template_: Obj, *, pods: int, waiting: str) -> Obj:
    """The Kueue Workload of a Job still waiting for quota (``waiting``: Kueue's message)."""
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": meta(name, ns, ownerReferences=owned_by("Job", job)),
        "spec": {"podSets": [{"name": "main", "count": pods, "template": template_}]},
        "status": {
            "conditions": [
                {
                    "type": "QuotaReserved",
                    "status": "False",
                    "reason": "Pending",
                    "message": waiting,
                }
            ]
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
    return add({}, *objects)


def add(into: Cluster, *objects: Obj) -> Cluster:
    """``into`` with ``objects`` added (or replacing those of the same kind and name)."""
    for obj in objects:
        plural = obj["kind"].lower() + "s"
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        into.setdefault(plural, {})[key] = obj
    return into
