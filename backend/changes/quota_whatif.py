"""What a quota change would do to the queues: which pending Workloads Kueue would admit after it,
which stay pending and why, and which admitted ones would run beyond their queue's nominal quota.

The prediction replays one Kueue admission pass over the cluster as read for the plan, with the
planned quotas in place of the current ones: usage as each queue's status accounts it, then the
pending Workloads in creation order (BestEffortFIFO; StrictFIFO stops a queue at its head), each into
the first flavor with room, counting what the cohort can lend — the arithmetic of
``backend.k8s.kueue``, which the sandbox's Kueue controller uses too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.changes.kube import JsonObject
from backend.changes.quota_state import KUEUE, Cell, QuotaState, flavor_usage
from backend.conventions import GPU_RESOURCE, TENANT_LABEL
from backend.fleet.kueue import admitted, finished, pod_set_gpus
from backend.fleet.kueue import pending as kueue_pending
from backend.k8s.kueue import Cohorts, Quota, assign_flavor, flavor_quotas
from backend.k8s.selectors import match_label_selector
from backend.schemas import Workload


@dataclass
class SimQueue:
    """A ClusterQueue during the replayed pass."""

    name: str
    cohort: str | None
    flavors: list[str]
    quota: dict[str, Quota]
    namespace_selector: Mapping[str, Any] | None
    strict: bool
    usage: dict[str, int] = field(default_factory=dict)
    blocked: bool = False


@dataclass(frozen=True)
class WorkloadFate:
    """One Workload in the prediction."""

    tenant: str
    namespace: str
    name: str
    owner: str
    gpus: int
    flavor: str | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "namespace": self.namespace,
            "workload": self.name,
            "owner": self.owner,
            "gpus": self.gpus,
        }
        if self.flavor:
            out["flavor"] = self.flavor
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class Prediction:
    """Per tenant: pending Workloads admitted by the pass, and those left pending."""

    admitted: dict[str, list[WorkloadFate]] = field(default_factory=dict)
    pending: dict[str, list[WorkloadFate]] = field(default_factory=dict)


def _queues(state: QuotaState, nominal: Mapping[tuple[str, str], int]) -> dict[str, SimQueue]:
    """The ClusterQueues with ``nominal`` ((queue, flavor) -> GPUs) in place of their quota."""
    out = {}
    for cq in state.cluster_queues:
        spec = cq.get("spec") or {}
        name = (cq.get("metadata") or {}).get("name", "")
        flavors, quota = flavor_quotas(cq, GPU_RESOURCE)
        for flavor, q in quota.items():
            q.nominal = nominal.get((name, flavor), q.nominal)
        out[name] = SimQueue(
            name=name,
            cohort=spec.get("cohortName") or spec.get("cohort"),
            flavors=flavors,
            quota=quota,
            namespace_selector=spec.get("namespaceSelector"),
            strict=spec.get("queueingStrategy") == "StrictFIFO",
            usage=flavor_usage(cq),
        )
    return out


def _demand(wl: JsonObject) -> tuple[int, dict[str, str]]:
    gpus = sum(g for _, g in pod_set_gpus(wl))
    selector: dict[str, str] = {}
    for pod_set in (wl.get("spec") or {}).get("podSets") or ():
        spec = (pod_set.get("template") or {}).get("spec") or {}
        selector = spec.get("nodeSelector") or selector
    return gpus, selector


def _assigned_flavor(wl: JsonObject) -> str | None:
    admission = (wl.get("status") or {}).get("admission") or {}
    for pod_set in admission.get("podSetAssignments") or ():
        flavor = (pod_set.get("flavors") or {}).get(GPU_RESOURCE)
        if flavor:
            return str(flavor)
    return None


def _fate(state: QuotaState, wl: JsonObject, gpus: int, **extra: Any) -> WorkloadFate:
    meta = wl.get("metadata") or {}
    namespace = meta.get("namespace", "")
    owners = meta.get("ownerReferences") or []
    owner = f"{owners[0].get('kind', '').lower()}/{owners[0].get('name', '')}" if owners else ""
    tenant = state.namespace_labels.get(namespace, {}).get(TENANT_LABEL, "")
    return WorkloadFate(tenant, namespace, meta.get("name", ""), owner, gpus, **extra)


def predict(state: QuotaState, nominal: Mapping[tuple[str, str], int]) -> Prediction:
    """One admission pass with the planned nominal quotas."""
    queues = _queues(state, nominal)
    cluster_queue = {
        ((lq.get("metadata") or {}).get("namespace"), (lq.get("metadata") or {}).get("name")): (
            lq.get("spec") or {}
        ).get("clusterQueue")
        for lq in state.local_queues
    }
    pending: list[tuple[JsonObject, SimQueue | None]] = []
    for wl in state.workloads:
        if kueue_pending(wl):
            meta = wl.get("metadata") or {}
            queue_name = (wl.get("spec") or {}).get("queueName")
            q = queues.get(cluster_queue.get((meta.get("namespace"), queue_name)) or "")
            pending.append((wl, q))
    cohorts = Cohorts(queues)
    pending.sort(key=_fifo_key)
    prediction = Prediction()
    for wl, q in pending:
        gpus, selector = _demand(wl)
        flavor, reason = _admit(state, wl, q, gpus, selector, cohorts)
        fate = _fate(state, wl, gpus, flavor=flavor, reason=reason)
        side = prediction.admitted if flavor else prediction.pending
        side.setdefault(fate.tenant, []).append(fate)
    return prediction


def _admit(
    state: QuotaState,
    wl: JsonObject,
    q: SimQueue | None,
    gpus: int,
    selector: dict[str, str],
    cohorts: Cohorts,
) -> tuple[str | None, str]:
    if q is None:
        return None, "its LocalQueue or ClusterQueue doesn't exist"
    namespace = (wl.get("metadata") or {}).get("namespace", "")
    labels = state.namespace_labels.get(namespace, {})
    if q.namespace_selector is None or not match_label_selector(q.namespace_selector, labels):
        return None, "Workload namespace doesn't match ClusterQueue selector"
    if q.blocked:
        return None, "waiting for the head of the queue (StrictFIFO)"
    flavor, reason = assign_flavor(
        gpus, selector, q, q.flavors, state.flavor_labels, cohorts, GPU_RESOURCE
    )
    if flavor is None:
        q.blocked = q.strict
        return None, reason
    cohorts.add_usage(q, flavor, gpus)
    return flavor, ""


def _fifo_key(item: tuple[JsonObject, SimQueue | None]) -> tuple[str, str, str]:
    meta = item[0].get("metadata") or {}
    return (meta.get("creationTimestamp") or "", meta.get("namespace", ""), meta.get("name", ""))


def borrowers(state: QuotaState, cell: Cell, after: int) -> list[WorkloadFate]:
    """The admitted Workloads of ``cell``'s queue and flavor beyond the new nominal quota: the
    ones Kueue may reclaim, newest first (the order in which Kueue preempts equals)."""
    if cell.system != KUEUE or cell.used <= after:
        return []
    queue = cell.ref.name
    in_flavor = []
    local = {
        ((lq.get("metadata") or {}).get("namespace"), (lq.get("metadata") or {}).get("name"))
        for lq in state.local_queues
        if (lq.get("spec") or {}).get("clusterQueue") == queue
    }
    for wl in state.workloads:
        meta = wl.get("metadata") or {}
        key = (meta.get("namespace"), (wl.get("spec") or {}).get("queueName"))
        in_queue = key in local and admitted(wl) and not finished(wl)
        if in_queue and _assigned_flavor(wl) == cell.flavor:
            in_flavor.append(wl)
    in_flavor.sort(key=lambda wl: _fifo_key((wl, None)), reverse=True)
    out, excess = [], cell.used - after
    for wl in in_flavor:
        if excess <= 0:
            break
        gpus = _demand(wl)[0]
        out.append(_fate(state, wl, gpus, flavor=cell.flavor))
        excess -= gpus
    return out


def predict_resource_quota(
    cell: Cell, hard: int, waiting: list[tuple[Workload, int]]
) -> tuple[list[WorkloadFate], list[WorkloadFate]]:
    """Which workloads refused by a namespace's ResourceQuota fit under ``hard``: the quota
    admits each new pod while used + its GPUs stay within the quota, so the oldest waiting
    workloads take the room first. (admitted, still pending)."""
    room = hard - cell.used
    admitted, pending = [], []
    for workload, gpus in waiting:
        fate = WorkloadFate(
            cell.tenant,
            workload.namespace,
            workload.name,
            f"{workload.kind.value.lower()}/{workload.name}",
            gpus,
        )
        if gpus <= room:
            admitted.append(fate)
            room -= gpus
            continue
        reason = (
            f"exceeded quota: requested {gpus} GPUs, {max(room, 0)} left of "
            f"requests.{GPU_RESOURCE}={hard}"
        )
        pending.append(WorkloadFate(**{**vars(fate), "reason": reason}))
    return admitted, pending
