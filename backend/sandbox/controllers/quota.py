"""ResourceQuota: ``status.hard``/``status.used`` and the admission check for new pods.

The real API server charges a pod to its namespace's quotas at admission (and refuses it with
``exceeded quota: ...``); the quota controller later recomputes ``status.used`` from the pods.
``check_quota`` is the admission half (the ReplicaSet and Job controllers call it before creating
a pod; when it allows the pod it charges it at once, as the admission plugin does, so that pods
created in one burst cannot overrun the quota). ``ResourceQuotaController`` is the recount half,
which recounts only namespaces that have a ResourceQuota.
"""

from __future__ import annotations

from backend.conventions import GPU_RESOURCE
from backend.k8s.quantity import quantity_ceil
from backend.sandbox.controllers.base import (
    TERMINAL_PHASES,
    ControllerContext,
    JsonObject,
    gpu_request,
)
from backend.sandbox.store import POD, RESOURCE_QUOTA, ResourceType, Store

GPU_QUOTA = f"requests.{GPU_RESOURCE}"
PODS_QUOTA = "pods"
TRACKED = (GPU_QUOTA, PODS_QUOTA, f"limits.{GPU_RESOURCE}")


def _pretty(values: dict[str, int]) -> str:
    """apimachinery's ``quota.PrettyPrint``: sorted ``name=value`` joined by commas."""
    return ",".join(f"{k}={v}" for k, v in sorted(values.items()))


def check_quota(store: Store, namespace: str, gpus: int) -> str | None:
    """Admit one new pod asking for ``gpus`` GPUs: None (and charge it), or the refusal message.

    The message is the quota admission plugin's, e.g. ``exceeded quota: gpu-quota, requested:
    requests.nvidia.com/gpu=2, used: requests.nvidia.com/gpu=8, limited:
    requests.nvidia.com/gpu=8`` (the caller wraps it as ``pods "<name>" is forbidden: ...``).
    """
    quotas = store.list(RESOURCE_QUOTA, namespace)
    requested = {GPU_QUOTA: gpus, f"limits.{GPU_RESOURCE}": gpus, PODS_QUOTA: 1}
    for rq in quotas:
        hard = {
            k: quantity_ceil(v) or 0 for k, v in ((rq.get("spec") or {}).get("hard") or {}).items()
        }
        used = {
            k: quantity_ceil(v) or 0
            for k, v in ((rq.get("status") or {}).get("used") or {}).items()
        }
        exceeded = [
            key
            for key in TRACKED
            if key in hard and requested[key] and used.get(key, 0) + requested[key] > hard[key]
        ]
        if exceeded:
            name = rq["metadata"]["name"]
            return (
                f"exceeded quota: {name}, "
                f"requested: {_pretty({k: requested[k] for k in exceeded})}, "
                f"used: {_pretty({k: used.get(k, 0) for k in exceeded})}, "
                f"limited: {_pretty({k: hard[k] for k in exceeded})}"
            )
    for rq in quotas:
        _charge(store, rq, requested)
    return None


def _charge(store: Store, rq: JsonObject, requested: dict[str, int]) -> None:
    hard = (rq.get("spec") or {}).get("hard") or {}
    status = rq.get("status") or {}
    used = dict(status.get("used") or {})
    for key in TRACKED:
        if key in hard:
            used[key] = str((quantity_ceil(used.get(key, 0)) or 0) + requested[key])
    new_status = {**status, "hard": dict(hard), "used": used}
    store.update(
        RESOURCE_QUOTA,
        {**rq, "metadata": {**rq["metadata"]}, "status": new_status},
        subresource="status",
    )


def pod_usage(pod: JsonObject | None) -> tuple[int, int]:
    """(GPUs, pods) a pod counts for: terminal pods release their quota."""
    if pod is None or (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return 0, 0
    if pod["metadata"].get("deletionTimestamp"):
        return 0, 0
    return gpu_request(pod.get("spec") or {}), 1


class ResourceQuotaController:
    """Keeps every ResourceQuota's ``status.hard`` and ``status.used`` true to the pods.

    The recount scans the namespace's pods from the store (not from the pods reconciled so far),
    so it never lowers ``used`` below what admission has charged for pods already created. Only
    namespaces with a ResourceQuota are counted: few in any fleet.
    """

    watches: tuple[ResourceType, ...] = (RESOURCE_QUOTA, POD)

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.store = ctx.store
        # Namespaces that have a ResourceQuota: pod changes elsewhere cost nothing.
        self._quota_namespaces: set[str] = set()

    def tick(self, now: float) -> None:
        """Quota only moves with pods and quotas; nothing is time-driven."""

    def reconcile(self, rt: ResourceType, namespace: str, name: str) -> None:
        if rt is POD and namespace not in self._quota_namespaces:
            return
        quotas = self.store.list(RESOURCE_QUOTA, namespace)
        if not quotas:
            self._quota_namespaces.discard(namespace)
            return
        self._quota_namespaces.add(namespace)
        gpus = pods = 0
        for pod in self.store.scan(POD, namespace):
            pod_gpus, counted = pod_usage(pod)
            gpus += pod_gpus
            pods += counted
        for rq in quotas:
            self._write_status(rq, gpus, pods)

    def _write_status(self, rq: JsonObject, gpus: int, pods: int) -> None:
        hard = dict((rq.get("spec") or {}).get("hard") or {})
        values = {GPU_QUOTA: gpus, f"limits.{GPU_RESOURCE}": gpus, PODS_QUOTA: pods}
        used = {key: str(values.get(key, 0)) for key in hard}
        status = {"hard": hard, "used": used}
        if status != rq.get("status"):
            obj = {**rq, "metadata": {**rq["metadata"]}, "status": status}
            self.store.update(RESOURCE_QUOTA, obj, subresource="status")
