"""The ReplicaSet controller: keeps ``spec.replicas`` pods alive and reports their readiness.

Pods are created from the template with generated names and a controlling ownerReference; in a
namespace with a GPU ResourceQuota each GPU pod is first checked against it
(``quota.check_quota``), and a refusal becomes the real ``FailedCreate`` event and
``ReplicaFailure`` condition. Pods that Kueue manages get the ``kueue.x-k8s.io/admission``
scheduling gate, as Kueue's pod webhook adds it.
"""

from __future__ import annotations

from backend.conventions import KUEUE_GATE, QUEUE_LABEL
from backend.sandbox.controllers.base import (
    TERMINAL_PHASES,
    ControllerContext,
    JsonObject,
    due,
    gpu_request,
    new_pod,
    owned_by,
    pod_phase,
    pod_ready,
    set_condition,
    unique_pod_name,
)
from backend.sandbox.controllers.quota import check_quota
from backend.sandbox.store import (
    LOCAL_QUEUE,
    POD,
    REPLICA_SET,
    RESOURCE_QUOTA,
    ApiError,
    ResourceType,
    Store,
    now_rfc3339,
)

RETRY_SECONDS = 5.0


def has_local_queue(store: Store, namespace: str) -> bool:
    return next(store.scan(LOCAL_QUEUE, namespace), None) is not None


def has_resource_quota(store: Store, namespace: str) -> bool:
    return next(store.scan(RESOURCE_QUOTA, namespace), None) is not None


def quota_refusal(store: Store, namespace: str, gpus: int, pod_name: str) -> str | None:
    """The FailedCreate message if the namespace's ResourceQuota refuses one more pod."""
    if not has_resource_quota(store, namespace):
        return None
    refusal = check_quota(store, namespace, gpus)
    if not refusal:
        return None
    # The real controllers create pods with generateName, so the refusal names the prefix
    # ("svc-654777685b-"); a stable message also keeps the ReplicaFailure condition still.
    prefix = pod_name.rsplit("-", 1)[0] + "-"
    return f'Error creating: pods "{prefix}" is forbidden: {refusal}'


def gate_for_kueue(store: Store, pod: JsonObject, owner_labels: dict[str, str]) -> None:
    """Add Kueue's admission gate to a new pod that asks for a queue in a Kueue namespace."""
    labels = pod["metadata"].get("labels") or {}
    if QUEUE_LABEL not in labels and QUEUE_LABEL not in owner_labels:
        return
    if not has_local_queue(store, pod["metadata"]["namespace"]):
        return
    spec = pod.setdefault("spec", {})
    gates = [g for g in spec.get("schedulingGates") or () if g.get("name") != KUEUE_GATE]
    spec["schedulingGates"] = [*gates, {"name": KUEUE_GATE}]
    status = pod.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "SchedulingGated",
            "message": "Scheduling is blocked due to non-empty scheduling gates",
            "lastProbeTime": None,
            "lastTransitionTime": pod["metadata"].get("creationTimestamp") or now_rfc3339(),
        }
    ]


def deletion_rank(pod: JsonObject) -> tuple:
    """Which pods go first when scaling down: unscheduled, then pending, then not ready, newest."""
    status = pod.get("status") or {}
    return (
        bool(pod["spec"].get("nodeName")),
        status.get("phase") == "Running",
        pod_ready(pod),
        _negated(pod["metadata"].get("creationTimestamp", "")),
    )


def _failure_message(rs: JsonObject) -> str | None:
    for cond in (rs.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return cond.get("message")
    return None


def _negated(text: str) -> tuple[int, ...]:
    return tuple(-ord(ch) for ch in text)


class ReplicaSetController:
    """Creates and deletes pods to match ``spec.replicas``; writes the ReplicaSet's status."""

    watches: tuple[ResourceType, ...] = (REPLICA_SET,)

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        # ReplicaSets refused by a quota, retried now and then as the real controller's backoff
        # retries them (the quota may have room again).
        self._refused: set[tuple[str, str]] = set()
        self._attempts: dict[tuple[str, str], str] = {}
        self._next_retry = 0.0

    def tick(self, now: float) -> None:
        if not self._refused or not due(now, self._next_retry, RETRY_SECONDS):
            return
        self._next_retry = now + RETRY_SECONDS
        for namespace, name in sorted(self._refused):
            self._reconcile(namespace, name, retry=True)

    def reconcile(self, rt: ResourceType, namespace: str, name: str) -> None:
        self._reconcile(namespace, name, retry=False)

    def _reconcile(self, namespace: str, name: str, retry: bool) -> None:
        """``retry``: a refused ReplicaSet tries again only from ``tick`` (the real controller's
        rate-limited requeue), not on every change of its own status."""
        store = self.ctx.store
        found = [
            store.find(POD, namespace, n)
            for n in self.ctx.index.children("ReplicaSet", namespace, name)
        ]
        rs = store.find(REPLICA_SET, namespace, name)
        if rs is None:
            self._refused.discard((namespace, name))
            for pod in found:  # garbage collection of the dependents
                if pod is not None:
                    store.delete(POD, namespace, pod["metadata"]["name"])
            return
        pods = [p for p in found if p is not None and owned_by(p, rs)]
        active = [p for p in pods if pod_phase(p) not in TERMINAL_PHASES]
        desired = rs["spec"].get("replicas")
        desired = 1 if desired is None else int(desired)
        failure: str | None = None
        key = (namespace, name)
        if len(active) < desired and key in self._refused and not retry:
            failure = _failure_message(rs)
        elif len(active) < desired:
            failure = self._create(rs, desired - len(active))
        elif len(active) > desired:
            for pod in sorted(active, key=deletion_rank)[: len(active) - desired]:
                store.delete(POD, namespace, pod["metadata"]["name"])
                self.ctx.record_event(
                    rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}"
                )
        if failure:
            self._refused.add(key)
        else:
            self._refused.discard(key)
            self._attempts.pop(key, None)
        rs = store.get(REPLICA_SET, namespace, name)
        current = [
            store.find(POD, namespace, n)
            for n in self.ctx.index.children("ReplicaSet", namespace, name)
        ]
        self._write_status(rs, [p for p in current if p is not None and owned_by(p, rs)], failure)

    def _create(self, rs: JsonObject, missing: int) -> str | None:
        """Create up to ``missing`` pods; the quota refusal message if one was refused."""
        store = self.ctx.store
        meta = rs["metadata"]
        template = rs["spec"].get("template") or {}
        gpus = gpu_request(template.get("spec") or {})
        key = (meta["namespace"], meta["name"])
        for _ in range(missing):
            # A refused pod keeps its name for the retries, so their events aggregate.
            pod_name = self._attempts.pop(key, None) or unique_pod_name(
                self.ctx, meta["namespace"], meta["name"]
            )
            refusal = quota_refusal(store, meta["namespace"], gpus, pod_name)
            if refusal:
                self._attempts[key] = pod_name
                if refusal != _failure_message(rs):  # a retry refused alike adds nothing new
                    self.ctx.record_event(rs, "Warning", "FailedCreate", refusal)
                return refusal
            pod = new_pod(self.ctx, template, meta["namespace"], pod_name, rs)
            gate_for_kueue(store, pod, meta.get("labels") or {})
            try:
                store.create(POD, pod)
            except ApiError as err:
                message = f"Error creating: {err.message}"
                self.ctx.record_event(rs, "Warning", "FailedCreate", message)
                return message
            self.ctx.record_event(rs, "Normal", "SuccessfulCreate", f"Created pod: {pod_name}")
        return None

    def _write_status(self, rs: JsonObject, pods: list[JsonObject], failure: str | None) -> None:
        active = [p for p in pods if pod_phase(p) not in TERMINAL_PHASES]
        ready = sum(1 for p in active if pod_ready(p))
        old = rs.get("status") or {}
        status: JsonObject = {
            "replicas": len(active),
            "fullyLabeledReplicas": len(active),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        conditions = [c for c in old.get("conditions") or () if c.get("type") != "ReplicaFailure"]
        if failure:
            conditions = set_condition(
                list(old.get("conditions") or ()),
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "FailedCreate",
                    "message": failure,
                },
                self.ctx.now_text(),
            )
        elif len(active) < (rs["spec"].get("replicas") or 0) and any(
            c.get("type") == "ReplicaFailure" for c in old.get("conditions") or ()
        ):
            conditions = list(old.get("conditions") or ())  # still short: keep the failure
        if conditions:
            status["conditions"] = conditions
        if status != old:
            self.ctx.store.update(REPLICA_SET, {**rs, "status": status})
