"""Kueue (kueue.x-k8s.io/v1beta2): Workloads, quota admission, borrowing in a cohort, queue status.

What the sandbox reproduces of Kueue's behaviour:
- a queued owner (a Job, or a ReplicaSet's pod group, labelled ``kueue.x-k8s.io/queue-name``) in a
  namespace with a LocalQueue gets a ``Workload`` ``<kind>-<owner>-<hash>`` with one pod set
  ``main`` (count = parallelism or replicas, requests = the pod's GPUs);
- pending Workloads are admitted in creation order (BestEffortFIFO: a head that does not fit does
  not block smaller ones behind it; StrictFIFO does), into the first flavor of the ClusterQueue
  whose node labels suit the pod and which has room: the queue's unused nominal quota, then what
  the cohort can lend (unused nominal quota of the other members, up to their ``lendingLimit``),
  never beyond ``nominalQuota + borrowingLimit``;
- admission removes the ``kueue.x-k8s.io/admission`` scheduling gate from the pods (adding the
  flavor's node labels to their nodeSelector) or sets ``suspend: false`` on the Job;
- finished or deleted owners release their quota; lowering ``nominalQuota`` evicts nobody: the
  admitted Workloads stay and the queue shows them as ``borrowed``.

Admission runs as one pass over all Workloads from ``tick`` when something changed (once per
tick, O(workloads)), so building a 20,000-pod fleet does not cost a pass per object.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from backend.conventions import GPU_RESOURCE, KUEUE_GATE, QUEUE_LABEL
from backend.k8s.kueue import POD_SET, Cohorts, Quota, assign_flavor, flavor_quotas
from backend.k8s.selectors import match_label_selector
from backend.sandbox.controllers.base import (
    ControllerContext,
    JsonObject,
    clone,
    controller_ref,
    gpu_request,
    set_condition,
)
from backend.sandbox.store import (
    CLUSTER_QUEUE,
    JOB,
    LOCAL_QUEUE,
    NAMESPACE,
    POD,
    REPLICA_SET,
    RESOURCE_FLAVOR,
    WORKLOAD,
    ResourceType,
)

JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
_OWNER_TYPES = {"Job": JOB, "ReplicaSet": REPLICA_SET}


def workload_name(kind: str, owner: str, uid: str) -> str:
    """Kueue's ``<kind>-<owner>-<hash5>``, within the 63 characters of a label value."""
    digest = hashlib.sha1(f"{kind}/{owner}/{uid}".encode()).hexdigest()[:5]
    return f"{kind.lower()}-{owner}"[:57] + f"-{digest}"


def is_condition_true(obj: JsonObject, kind: str) -> bool:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind:
            return cond.get("status") == "True"
    return False


@dataclass
class QueueState:
    """A ClusterQueue during one admission pass."""

    obj: JsonObject
    flavors: list[str]  # in the order the ClusterQueue lists them
    quota: dict[str, Quota]
    usage: dict[str, int] = field(default_factory=dict)  # admitted, not finished
    pending: int = 0
    admitted: int = 0
    blocked: bool = False  # StrictFIFO head did not fit

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]

    @property
    def cohort(self) -> str | None:
        spec = self.obj.get("spec") or {}
        return spec.get("cohortName") or spec.get("cohort")

    @property
    def strict(self) -> bool:
        return (self.obj.get("spec") or {}).get("queueingStrategy") == "StrictFIFO"


def queue_state(cq: JsonObject) -> QueueState:
    flavors, quota = flavor_quotas(cq, GPU_RESOURCE)
    return QueueState(cq, flavors, quota)


@dataclass
class Demand:
    """What one Workload asks for."""

    count: int
    per_pod: int
    node_selector: dict[str, str]

    @property
    def gpus(self) -> int:
        return self.count * self.per_pod


def demand_of(wl: JsonObject) -> Demand:
    count, per_pod = 0, 0
    selector: dict[str, str] = {}
    for ps in (wl.get("spec") or {}).get("podSets") or ():
        count += int(ps.get("count", 1))
        spec = (ps.get("template") or {}).get("spec") or {}
        per_pod = max(per_pod, gpu_request(spec))
        selector = spec.get("nodeSelector") or selector
    return Demand(count, per_pod, selector)


class KueueController:
    """Workloads for queued owners, admission against ClusterQueue quota, queue status."""

    watches: tuple[ResourceType, ...] = (
        JOB,
        REPLICA_SET,
        POD,
        WORKLOAD,
        CLUSTER_QUEUE,
        LOCAL_QUEUE,
        RESOURCE_FLAVOR,
    )

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self._dirty = True
        self._seq = 0
        self._order: dict[tuple[str, str], int] = {}  # workload -> creation sequence
        # owner uid -> gated pods (namespace, name) waiting for their Workload's admission
        self._gated: dict[str, set[tuple[str, str]]] = {}
        self._lq_namespaces: set[str] | None = None
        # owner -> (uid, generation, finished) at its last sync: pod churn re-enqueues owners
        # thousands of times, but only a spec change or a Job finishing changes the Workload.
        self._synced: dict[tuple[str, str, str], tuple[str, int, bool, str]] = {}

    # -- routing --------------------------------------------------------------------------------
    def reconcile(self, rt: ResourceType, namespace: str, name: str) -> None:
        if rt is JOB or rt is REPLICA_SET:
            self._sync_owner(rt, namespace, name)  # marks the pass due only if it changed
            return
        if rt is POD:
            self._sync_pod(namespace, name)
            return
        if rt is LOCAL_QUEUE:
            self._lq_namespaces = None
            self._synced.clear()
        self._dirty = True

    def tick(self, now: float) -> None:
        if self._dirty:
            self.admit_pending()

    # -- owners -> Workloads --------------------------------------------------------------------
    def _queued_namespaces(self) -> set[str]:
        if self._lq_namespaces is None:
            self._lq_namespaces = {
                lq["metadata"]["namespace"] for lq in self.store.list(LOCAL_QUEUE)
            }
        return self._lq_namespaces

    def _sync_owner(self, rt: ResourceType, namespace: str, name: str) -> None:
        owner = self.store.find(rt, namespace, name)
        key = (rt.kind, namespace, name)
        if owner is None:
            self._dirty = True
            self._synced.pop(key, None)
            self._delete_workloads_of(rt.kind, namespace, name)
            return
        meta = owner["metadata"]
        finished = rt is JOB and (
            is_condition_true(owner, "Complete") or is_condition_true(owner, "Failed")
        )
        seen = self._synced.get(key)
        if (
            seen is not None
            and seen[:3] == (meta["uid"], meta.get("generation", 1), finished)
            and (not seen[3] or self.store.find(WORKLOAD, namespace, seen[3]) is not None)
        ):
            return
        self._dirty = True
        self._synced[key] = (meta["uid"], meta.get("generation", 1), finished, "")
        template = (owner.get("spec") or {}).get("template") or {}
        queue = (meta.get("labels") or {}).get(QUEUE_LABEL) or (
            (template.get("metadata") or {}).get("labels") or {}
        ).get(QUEUE_LABEL)
        if not queue or namespace not in self._queued_namespaces():
            return
        wl_name = workload_name(rt.kind, name, meta["uid"])
        self._synced[key] = (meta["uid"], meta.get("generation", 1), finished, wl_name)
        existing = self.store.find(WORKLOAD, namespace, wl_name)
        spec = owner.get("spec") or {}
        if rt is JOB:
            count = int(spec.get("parallelism", 1) or 0)
        else:
            count = int(spec.get("replicas", 1) or 0)
        if rt is REPLICA_SET and count == 0:
            self._synced[key] = (meta["uid"], meta.get("generation", 1), finished, "")
            if existing is not None:
                self.store.delete(WORKLOAD, namespace, wl_name)
            return
        wanted = self._workload(owner, rt, wl_name, queue, count, template)
        if existing is None:
            self._seq += 1
            self._order[(namespace, wl_name)] = self._seq
            self.store.create(WORKLOAD, wanted)
            existing = self.store.find(WORKLOAD, namespace, wl_name)
            if rt is JOB and not finished:
                self._suspend_new_job(owner)
        elif existing.get("spec") != wanted["spec"]:
            changed = {**existing, "metadata": {**existing["metadata"]}, "spec": wanted["spec"]}
            existing = self.store.update(WORKLOAD, changed)
        if rt is JOB and existing is not None:
            self._sync_job_finished(owner, existing)

    def _suspend_new_job(self, job: JsonObject) -> None:
        """Kueue's webhook creates queued Jobs suspended; the sandbox suspends them on sight.

        (Its Job controller may have started pods in the meantime; suspending deletes them, as a
        Kueue eviction does.)
        """
        spec = job.get("spec") or {}
        if spec.get("suspend"):
            return
        changed = {**job, "metadata": {**job["metadata"]}, "spec": {**spec, "suspend": True}}
        self.store.update(JOB, changed)

    def _workload(
        self,
        owner: JsonObject,
        rt: ResourceType,
        wl_name: str,
        queue: str,
        count: int,
        template: JsonObject,
    ) -> JsonObject:
        meta = owner["metadata"]
        pod_spec = template.get("spec") or {}
        containers = [
            {"name": c.get("name", ""), "resources": clone(c.get("resources") or {})}
            for c in pod_spec.get("containers") or ()
        ]
        slim: JsonObject = {"containers": containers}
        if pod_spec.get("nodeSelector"):
            slim["nodeSelector"] = dict(pod_spec["nodeSelector"])
        return {
            "metadata": {
                "name": wl_name,
                "namespace": meta["namespace"],
                "labels": {JOB_UID_LABEL: meta["uid"]},
                "ownerReferences": [
                    {
                        "apiVersion": owner.get("apiVersion", rt.api_version),
                        "kind": rt.kind,
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
                "creationTimestamp": meta.get("creationTimestamp") or self.ctx.clock.rfc3339(),
            },
            "spec": {
                "active": True,
                "queueName": queue,
                "priority": 0,
                "podSets": [{"name": POD_SET, "count": count, "template": {"spec": slim}}],
            },
        }

    def _sync_job_finished(self, job: JsonObject, wl: JsonObject) -> None:
        """A finished Job's Workload gets ``Finished`` and stops counting against quota."""
        if is_condition_true(wl, "Finished"):
            return
        for kind, reason, message in (
            ("Complete", "Succeeded", "Job finished successfully"),
            ("Failed", "Failed", "Job failed"),
        ):
            if is_condition_true(job, kind):
                self._set_conditions(
                    wl,
                    [{"type": "Finished", "status": "True", "reason": reason, "message": message}],
                )
                return

    def _delete_workloads_of(self, kind: str, namespace: str, name: str) -> None:
        prefix = f"{kind.lower()}-{name}"[:57] + "-"
        for wl in self.store.list(WORKLOAD, namespace):
            ref = controller_ref(wl)
            if wl["metadata"]["name"].startswith(prefix) and ref and ref.get("name") == name:
                self.store.delete(WORKLOAD, namespace, wl["metadata"]["name"])

    # -- gated pods -----------------------------------------------------------------------------
    def _sync_pod(self, namespace: str, name: str) -> None:
        pod = self.store.find(POD, namespace, name)
        if pod is None:
            return
        gates = (pod.get("spec") or {}).get("schedulingGates") or ()
        if not any(g.get("name") == KUEUE_GATE for g in gates):
            return
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") not in _OWNER_TYPES:
            return
        wl = self.store.find(
            WORKLOAD, namespace, workload_name(ref["kind"], ref["name"], ref.get("uid", ""))
        )
        if wl is not None and _admitted(wl):
            self._ungate(pod, _assigned_flavor(wl))
        else:
            self._gated.setdefault(ref.get("uid", ""), set()).add((namespace, name))

    def _release_owner(self, wl: JsonObject, flavor: str | None) -> None:
        """On admission: unsuspend the Job, or ungate the pod group's pods."""
        ref = controller_ref(wl)
        if ref is None:
            return
        ns = wl["metadata"]["namespace"]
        if ref["kind"] == "Job":
            cq = ((wl.get("status") or {}).get("admission") or {}).get("clusterQueue", "")
            self._unsuspend_job(ns, ref["name"], flavor, cq)
        for pod_ns, pod_name in sorted(self._gated.pop(ref.get("uid", ""), ())):
            pod = self.store.find(POD, pod_ns, pod_name)
            if pod is not None:
                self._ungate(pod, flavor)
        owner_kind = ref["kind"]
        for pod_name in self.ctx.index.children(owner_kind, ns, ref["name"]):
            pod = self.store.find(POD, ns, pod_name)
            if pod is not None:
                self._ungate(pod, flavor)

    def _unsuspend_job(self, namespace: str, name: str, flavor: str | None, cq: str) -> None:
        job = self.store.find(JOB, namespace, name)
        if job is None or not (job.get("spec") or {}).get("suspend"):
            return
        spec = clone(job["spec"])
        spec["suspend"] = False
        labels = self._flavor_labels(flavor)
        if labels:
            tspec = spec.setdefault("template", {}).setdefault("spec", {})
            tspec["nodeSelector"] = {**(tspec.get("nodeSelector") or {}), **labels}
        job = self.store.update(JOB, {**job, "metadata": {**job["metadata"]}, "spec": spec})
        self.ctx.record_event(
            job, "Normal", "Started", f"Admitted by clusterQueue {cq}", component="kueue-job"
        )

    def _ungate(self, pod: JsonObject, flavor: str | None) -> None:
        spec = pod.get("spec") or {}
        gates = [g for g in spec.get("schedulingGates") or () if g.get("name") != KUEUE_GATE]
        if len(gates) == len(spec.get("schedulingGates") or ()):
            return
        new_spec = {**spec}
        if gates:
            new_spec["schedulingGates"] = gates
        else:
            new_spec.pop("schedulingGates", None)
        labels = self._flavor_labels(flavor)
        if labels:
            new_spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **labels}
        self.store.update(POD, {**pod, "metadata": {**pod["metadata"]}, "spec": new_spec})

    def _flavor_labels(self, flavor: str | None) -> dict[str, str]:
        if not flavor:
            return {}
        rf = self.store.find(RESOURCE_FLAVOR, "", flavor)
        return dict(((rf or {}).get("spec") or {}).get("nodeLabels") or {})

    # -- admission ------------------------------------------------------------------------------
    def admit_pending(self) -> None:
        """One admission pass: usage, then pending Workloads in creation order, then status."""
        self._dirty = False
        queues = {cq["metadata"]["name"]: queue_state(cq) for cq in self.store.list(CLUSTER_QUEUE)}
        local = {
            (lq["metadata"]["namespace"], lq["metadata"]["name"]): lq
            for lq in self.store.list(LOCAL_QUEUE)
        }
        flavor_labels = {
            rf["metadata"]["name"]: ((rf.get("spec") or {}).get("nodeLabels") or {})
            for rf in self.store.list(RESOURCE_FLAVOR)
        }
        lq_stats: dict[tuple[str, str], dict] = {key: _lq_counts() for key in local}
        pending: list[tuple[JsonObject, QueueState | None, str]] = []
        for wl in self.store.list(WORKLOAD):
            if not self._owner_exists(wl):
                self.store.delete(WORKLOAD, wl["metadata"]["namespace"], wl["metadata"]["name"])
                continue
            if is_condition_true(wl, "Finished"):
                continue
            ns = wl["metadata"]["namespace"]
            queue_name = (wl.get("spec") or {}).get("queueName", "")
            lq = local.get((ns, queue_name))
            cq_name = ((lq or {}).get("spec") or {}).get("clusterQueue", "")
            q = queues.get(cq_name)
            if _admitted(wl):
                flavor = _assigned_flavor(wl)
                demand = demand_of(wl)
                gpus = demand.gpus
                if flavor and q is not None:
                    self._follow_scale(wl, q.name, flavor, demand)
                if q is not None and flavor:
                    q.usage[flavor] = q.usage.get(flavor, 0) + gpus
                    q.admitted += 1
                if lq is not None and flavor:
                    _count_lq(lq_stats[(ns, queue_name)], "admitted", flavor, gpus)
                continue
            if lq is None:
                problem = f"LocalQueue {queue_name} doesn't exist"
            elif q is None:
                problem = f"ClusterQueue {cq_name} doesn't exist"
            else:
                problem = ""
            pending.append((wl, q, problem))
        cohorts = Cohorts(queues)
        pending.sort(key=self._fifo_key)
        for wl, q, problem in pending:
            ns = wl["metadata"]["namespace"]
            key = (ns, (wl.get("spec") or {}).get("queueName", ""))
            if problem or q is None:
                self._mark_pending(wl, problem or "ClusterQueue doesn't exist", "Inadmissible")
                if key in lq_stats:
                    lq_stats[key]["pending"] += 1
                continue
            flavor, message = self._assign(wl, q, cohorts, flavor_labels)
            if flavor is None or q.blocked:
                q.pending += 1
                q.blocked = q.blocked or q.strict
                self._mark_pending(wl, message or "waiting for the head of the queue", "Pending")
                lq_stats[key]["pending"] += 1
                continue
            gpus = demand_of(wl).gpus
            cohorts.add_usage(q, flavor, gpus)
            q.admitted += 1
            _count_lq(lq_stats[key], "admitted", flavor, gpus)
            self._admit(wl, q, flavor, gpus)
        for q in queues.values():
            self._write_cq_status(q)
        for key, lq in local.items():
            self._write_lq_status(lq, lq_stats[key])

    def _fifo_key(self, item: tuple[JsonObject, QueueState | None, str]) -> tuple:
        meta = item[0]["metadata"]
        key = (meta["namespace"], meta["name"])
        return (meta.get("creationTimestamp", ""), self._order.get(key, 0), key)

    def _owner_exists(self, wl: JsonObject) -> bool:
        ref = controller_ref(wl)
        rt = _OWNER_TYPES.get((ref or {}).get("kind", ""))
        if ref is None or rt is None:
            return True
        owner = self.store.find(rt, wl["metadata"]["namespace"], ref["name"])
        return owner is not None and owner["metadata"].get("uid") == ref.get("uid")

    def _assign(
        self,
        wl: JsonObject,
        q: QueueState,
        cohorts: Cohorts,
        flavor_labels: dict[str, dict[str, str]],
    ) -> tuple[str | None, str]:
        """The first flavor that suits the pods and has room, or None and Kueue's reason."""
        if not self._namespace_matches(q, wl["metadata"]["namespace"]):
            return None, "Workload namespace doesn't match ClusterQueue selector"
        demand = demand_of(wl)
        if demand.per_pod == 0:
            return (q.flavors[0] if q.flavors else None), "no GPUs requested"
        return assign_flavor(
            demand.gpus, demand.node_selector, q, q.flavors, flavor_labels, cohorts, GPU_RESOURCE
        )

    def _namespace_matches(self, q: QueueState, namespace: str) -> bool:
        selector = (q.obj.get("spec") or {}).get("namespaceSelector")
        if selector is None:
            return False  # Kueue: a nil selector matches no namespace
        ns = self.store.find(NAMESPACE, "", namespace)
        labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
        return match_label_selector(selector, labels)

    def _follow_scale(self, wl: JsonObject, cq: str, flavor: str, demand: Demand) -> None:
        """A scaled pod group keeps its admission, now for its new size.

        (A simplification: real Kueue re-queues a grown pod group; here growth shows up as
        usage, and as borrowing when it goes past the nominal quota.)
        """
        admission = _admission(cq, flavor, demand)
        if (wl.get("status") or {}).get("admission") != admission:
            status = {**(wl.get("status") or {}), "admission": admission}
            new = {**wl, "metadata": {**wl["metadata"]}, "status": status}
            self.store.update(WORKLOAD, new, subresource="status")

    def _admit(self, wl: JsonObject, q: QueueState, flavor: str, gpus: int) -> None:
        admission = _admission(q.name, flavor, demand_of(wl))
        wl = self._set_conditions(
            wl,
            [
                {
                    "type": "QuotaReserved",
                    "status": "True",
                    "reason": "QuotaReserved",
                    "message": f"Quota reserved in ClusterQueue {q.name}",
                },
                {
                    "type": "Admitted",
                    "status": "True",
                    "reason": "Admitted",
                    "message": "The workload is admitted",
                },
            ],
            admission,
        )
        self.ctx.record_event(
            wl,
            "Normal",
            "QuotaReserved",
            f"Quota reserved in ClusterQueue {q.name}, wait time since queued was 0s",
            component="kueue-admission",
        )
        self._release_owner(wl, flavor)

    def _mark_pending(self, wl: JsonObject, message: str, reason: str) -> None:
        before = next(
            (
                c
                for c in (wl.get("status") or {}).get("conditions") or ()
                if c.get("type") == "QuotaReserved"
            ),
            None,
        )
        self._set_conditions(
            wl,
            [{"type": "QuotaReserved", "status": "False", "reason": reason, "message": message}],
        )
        if before is None or before.get("message") != message:
            self.ctx.record_event(wl, "Warning", reason, message, component="kueue-admission")

    def _set_conditions(
        self, wl: JsonObject, conditions: list[JsonObject], admission: JsonObject | None = None
    ) -> JsonObject:
        """Write conditions (with Kueue's observedGeneration) and admission if anything changes."""
        now = self.ctx.clock.rfc3339()
        old = wl.get("status") or {}
        status = {**old}
        if admission is not None:
            status["admission"] = admission
        updated = list(old.get("conditions") or ())
        for cond in conditions:
            cond = {**cond, "observedGeneration": wl["metadata"].get("generation", 1)}
            updated = set_condition(updated, cond, now)
        status["conditions"] = updated
        if status == old:
            return wl
        new = {**wl, "metadata": {**wl["metadata"]}, "status": status}
        return self.store.update(WORKLOAD, new, subresource="status")

    # -- queue status ---------------------------------------------------------------------------
    def _write_cq_status(self, q: QueueState) -> None:
        usage = []
        for flavor in q.flavors:
            used = q.usage.get(flavor, 0)
            borrowed = max(0, used - q.quota[flavor].nominal)
            usage.append(
                {
                    "name": flavor,
                    "resources": [
                        {"name": GPU_RESOURCE, "total": str(used), "borrowed": str(borrowed)}
                    ],
                }
            )
        old = q.obj.get("status") or {}
        status = {
            "flavorsReservation": usage,
            "flavorsUsage": clone(usage),
            "pendingWorkloads": q.pending,
            "reservingWorkloads": q.admitted,
            "admittedWorkloads": q.admitted,
            "conditions": set_condition(
                list(old.get("conditions") or ()),
                {
                    "type": "Active",
                    "status": "True",
                    "reason": "Ready",
                    "message": "Can admit new workloads",
                    "observedGeneration": q.obj["metadata"].get("generation", 1),
                },
                self.ctx.clock.rfc3339(),
            ),
        }
        if status != old:
            obj = {**q.obj, "metadata": {**q.obj["metadata"]}, "status": status}
            self.store.update(CLUSTER_QUEUE, obj, subresource="status")

    def _write_lq_status(self, lq: JsonObject, stats: dict) -> None:
        usage = [
            {"name": f, "resources": [{"name": GPU_RESOURCE, "total": str(n)}]}
            for f, n in sorted(stats["usage"].items())
        ]
        old = lq.get("status") or {}
        status = {
            "pendingWorkloads": stats["pending"],
            "reservingWorkloads": stats["admitted"],
            "admittedWorkloads": stats["admitted"],
            "flavorsReservation": usage,
            "flavorsUsage": clone(usage),
            "conditions": set_condition(
                list(old.get("conditions") or ()),
                {
                    "type": "Active",
                    "status": "True",
                    "reason": "Ready",
                    "message": "Can submit new workloads to localQueue",
                    "observedGeneration": lq["metadata"].get("generation", 1),
                },
                self.ctx.clock.rfc3339(),
            ),
        }
        if status != old:
            obj = {**lq, "metadata": {**lq["metadata"]}, "status": status}
            self.store.update(LOCAL_QUEUE, obj, subresource="status")


def _admission(cq: str, flavor: str, demand: Demand) -> JsonObject:
    """``status.admission`` for a Workload admitted into ``flavor`` of ClusterQueue ``cq``."""
    return {
        "clusterQueue": cq,
        "podSetAssignments": [
            {
                "name": POD_SET,
                "flavors": {GPU_RESOURCE: flavor},
                "resourceUsage": {GPU_RESOURCE: str(demand.gpus)},
                "count": demand.count,
            }
        ],
    }


def _admitted(wl: JsonObject) -> bool:
    return is_condition_true(wl, "Admitted") and bool((wl.get("status") or {}).get("admission"))


def _assigned_flavor(wl: JsonObject) -> str | None:
    admission = (wl.get("status") or {}).get("admission") or {}
    for ps in admission.get("podSetAssignments") or ():
        flavor = (ps.get("flavors") or {}).get(GPU_RESOURCE)
        if flavor:
            return flavor
    return None


def _lq_counts() -> dict:
    return {"pending": 0, "admitted": 0, "usage": {}}


def _count_lq(stats: dict, kind: str, flavor: str, gpus: int) -> None:
    stats[kind] += 1
    stats["usage"][flavor] = stats["usage"].get(flavor, 0) + gpus
