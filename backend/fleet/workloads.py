"""Workloads (Deployments, InferenceServices, Jobs): one table row each, plus what the detail needs.

A row's status is derived the way an operator reads ``kubectl get``/``describe``: conditions first
(paused, failed rollout, job complete/failed), then why replicas are missing (waiting for Kueue
admission, refused by a ResourceQuota, unschedulable), then whether a rollout or canary is under
way. The reason found is kept as the row's message, so "Pending" always says what it waits for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.conventions import (
    ISVC_LABEL,
    MODEL_LABEL,
    QUEUE_LABEL,
    STAGE_LABEL,
    TENANT_LABEL,
)
from backend.fleet import kueue
from backend.fleet.index import ClusterIndex, Obj, ObjectKey, pod_owner_keys
from backend.fleet.objects import (
    condition,
    condition_true,
    containers,
    count,
    created,
    dig,
    labels,
    mapping,
    name_of,
    namespace_of,
    object_annotations,
    optional_count,
    owner_named,
    owners,
    pod_gated_by_kueue,
    pod_kserve_revision,
    pod_phase,
    pod_ready,
    pod_spec_gpu_model,
    pod_spec_gpus,
    pod_terminated,
    pod_unschedulable,
    text,
)
from backend.fleet.rollout import deployment_progress, inference_service_progress
from backend.fleet.traffic import canary_percent, traffic_split
from backend.k8s.annotations import REVISION_ANNOTATION
from backend.schemas import Workload, WorkloadKind, WorkloadStatus

KIND_PLURALS = {
    WorkloadKind.DEPLOYMENT: "deployments",
    WorkloadKind.INFERENCE_SERVICE: "inferenceservices",
    WorkloadKind.JOB: "jobs",
}
_RECORD_KINDS = frozenset(kind.value for kind in WorkloadKind)


@dataclass(slots=True)
class WorkloadRecord:
    """A workload row and the raw objects its detail view is derived from."""

    row: Workload
    obj: Obj
    pods: list[Obj]
    replicasets: list[Obj] = field(default_factory=list)
    quota_pending_gpus: int = 0  # GPUs it waits for because a quota refused them

    @property
    def key(self) -> ObjectKey:
        return (self.row.namespace, self.row.kind.value, self.row.name)


@dataclass(slots=True)
class _Facts:
    """What the status rules look at, gathered once per workload."""

    desired: int
    ready: int
    live_pods: list[Obj]
    quota_message: str | None  # waiting for Kueue admission / refused by a ResourceQuota
    unschedulable: str | None


def build_workloads(cluster: Mapping[str, Any], index: ClusterIndex) -> list[WorkloadRecord]:
    """Every workload the console shows, in (namespace, kind, name) order."""
    records: list[WorkloadRecord] = []
    for kind, plural in KIND_PLURALS.items():
        for obj in _values(cluster, plural):
            record = workload_record(kind, obj, index)
            if record is not None:
                records.append(record)
    records.sort(key=lambda r: (r.row.namespace, r.row.kind.value, r.row.name))
    return records


def workload_record(kind: WorkloadKind, obj: Obj, index: ClusterIndex) -> WorkloadRecord | None:
    """One workload object's record; None for one the console does not show."""
    if kind == WorkloadKind.DEPLOYMENT:
        return _deployment(obj, index) if _is_shown_deployment(obj, index) else None
    if kind == WorkloadKind.JOB:
        return _job(obj, index) if _in_scope(obj, index) else None
    return _inference_service(obj, index)


def workload_object(cluster: Mapping[str, Any], key: ObjectKey) -> tuple[WorkloadKind, Obj] | None:
    """The kind and object of the workload named by ``key``; None when there is none."""
    ns, kind_name, name = key
    kind = WorkloadKind(kind_name)
    objects = mapping(cluster).get(KIND_PLURALS[kind])
    obj = objects.get((ns, name)) if isinstance(objects, Mapping) else None
    if not isinstance(obj, Mapping) or not name_of(obj):
        return None
    return kind, obj


def workloads_of(key: ObjectKey, indexes: tuple[ClusterIndex, ...]) -> set[ObjectKey]:
    """The workloads whose records an object takes part in, as any of ``indexes`` places it:
    a workload itself, a ReplicaSet's Deployment, a pod's owners (and so on up)."""
    ns, kind, name = key
    if kind in _RECORD_KINDS:
        return {key}
    out: set[ObjectKey] = set()
    for index in indexes:
        if kind == "ReplicaSet":
            rs = index.replicasets.get((ns, name))
            deployment = owner_named(rs, "Deployment") if rs is not None else None
            if deployment:
                out.add((ns, WorkloadKind.DEPLOYMENT.value, deployment))
        elif kind == "Pod":
            pod = index.pods.get((ns, name))
            for owner in pod_owner_keys(pod, ns) if pod is not None else ():
                if owner[1] != "Pod":
                    out |= workloads_of(owner, (index,))
    return out


def _values(cluster: Mapping[str, Any], kind: str) -> list[Obj]:
    objects = mapping(cluster).get(kind)
    items = objects.values() if isinstance(objects, Mapping) else ()
    return [
        obj for obj in items if (type(obj) is dict or isinstance(obj, Mapping)) and name_of(obj)
    ]


def _in_scope(obj: Obj, index: ClusterIndex) -> bool:
    """A model workload anywhere, or any workload in a tenant's namespace."""
    return MODEL_LABEL in labels(obj) or index.tenant_of(namespace_of(obj)) is not None


def _is_shown_deployment(obj: Obj, index: ClusterIndex) -> bool:
    """In scope and not the predictor Deployment KServe makes for an InferenceService."""
    if ISVC_LABEL in labels(obj) or any(kind == "InferenceService" for kind, _ in owners(obj)):
        return False
    return _in_scope(obj, index)


def _base_row(obj: Obj, kind: WorkloadKind, index: ClusterIndex) -> dict[str, Any]:
    obj_labels = labels(obj)
    ns = namespace_of(obj)
    return {
        "namespace": ns,
        "name": name_of(obj),
        "kind": kind,
        "tenant": index.tenant_of(ns) or text(obj_labels.get(TENANT_LABEL)),
        "model": text(obj_labels.get(MODEL_LABEL)),
        "stage": text(obj_labels.get(STAGE_LABEL)),
        "queue": text(obj_labels.get(QUEUE_LABEL)),
        "created": created(obj),
    }


def _gpus_held(index: ClusterIndex, pods: list[Obj]) -> int:
    """GPUs held by pods bound to a node and not finished (the device plugin's allocation)."""
    return sum(index.gpus_of(p) for p in pods if dig(p, "spec", "nodeName") is not None)


def _gpu_model(template_spec: Any, pods: list[Obj]) -> str | None:
    model = pod_spec_gpu_model(template_spec)
    if model:
        return model
    for pod in pods:
        model = pod_spec_gpu_model(pod.get("spec"))
        if model:
            return model
    return None


def _quota_message(
    index: ClusterIndex, keys: list[ObjectKey], live_pods: list[Obj], queue: str | None
) -> tuple[str | None, int]:
    """Why pods wait for quota, and how many GPUs they wait for (Kueue, then ResourceQuota)."""
    waiting = [wl for key in keys for wl in index.kueue_by_owner.get(key, ()) if kueue.pending(wl)]
    if waiting:
        gpus = sum(g for wl in waiting for _, g in kueue.pod_set_gpus(wl))
        return kueue.pending_message(waiting[0]), gpus
    gated = [p for p in live_pods if pod_gated_by_kueue(p)]
    if gated:
        where = f" in queue {queue}" if queue else ""
        message = f"{len(gated)} pod(s) waiting for Kueue admission{where}"
        return message, sum(index.gpus_of(p) for p in gated)
    for key in keys:
        refusal = _quota_refusal_event(index, key)
        if refusal:
            return refusal, 0
    return None, 0


def _quota_refusal_event(index: ClusterIndex, key: ObjectKey) -> str | None:
    """The newest FailedCreate event saying a ResourceQuota refused a pod, if any."""
    events = [
        e
        for e in index.events_by_object.get(key, ())
        if e.get("reason") == "FailedCreate" and "exceeded quota" in (text(e.get("message")) or "")
    ]
    if events:
        return text(max(events, key=_event_sort_key).get("message"))
    return None


def _failure_condition(objects: list[Obj]) -> str | None:
    """The message of a ReplicaFailure condition (set on the ReplicaSet, copied to the
    Deployment) when pod creation is refused, e.g. by a ResourceQuota."""
    for obj in objects:
        cond = condition(obj, "ReplicaFailure")
        if cond is not None and str(cond.get("status")) == "True":
            return text(cond.get("message")) or "replica creation failed"
    return None


def _event_sort_key(event: Obj) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or dig(event, "series", "lastObservedTime")
        or dig(event, "metadata", "creationTimestamp")
        or ""
    )


def _first_unschedulable(pods: list[Obj]) -> str | None:
    for pod in pods:
        if dig(pod, "spec", "nodeName") is None:
            message = pod_unschedulable(pod)
            if message:
                return message
    return None


def _ready_count(status_value: Any, live_pods: list[Obj]) -> int:
    value = optional_count(status_value)
    return value if value is not None else sum(1 for p in live_pods if pod_ready(p))


def _live(pods: list[Obj]) -> list[Obj]:
    return [p for p in pods if not pod_terminated(p)]


def _fill_replicas_and_gpus(
    row: dict[str, Any],
    index: ClusterIndex,
    facts: _Facts,
    wanted: int,
    pod_spec: Mapping[str, Any],
    quota_gpus: int,
) -> int:
    """Replicas and GPU fields of a serving row; returns the GPUs it waits for.

    Requested GPUs are what ``wanted`` pods of ``pod_spec`` ask for, or what the live pods ask
    for if that is more (a rollout holds old and new pods at once). ``replicas`` is
    ``facts.desired``."""
    live = facts.live_pods
    held = _gpus_held(index, live)
    requested = max(wanted * pod_spec_gpus(pod_spec), sum(index.gpus_of(p) for p in live))
    row.update(
        replicas=facts.desired,
        ready_replicas=facts.ready,
        gpus=held,
        gpus_requested=requested,
        gpu_model=_gpu_model(pod_spec, live),
    )
    return quota_gpus or (max(0, requested - held) if facts.quota_message else 0)


# -- Deployments ---------------------------------------------------------------------------------


def _deployment(obj: Obj, index: ClusterIndex) -> WorkloadRecord:
    ns, name = namespace_of(obj), name_of(obj)
    spec, status = mapping(obj.get("spec")), mapping(obj.get("status"))
    replicasets = index.rs_by_deployment.get((ns, name), [])
    pods = [
        p
        for rs in replicasets
        for p in index.pods_by_owner.get((ns, "ReplicaSet", name_of(rs)), ())
    ]
    live = _live(pods)
    row = _base_row(obj, WorkloadKind.DEPLOYMENT, index)
    keys = [(ns, "Deployment", name)] + [(ns, "ReplicaSet", name_of(rs)) for rs in replicasets]
    keys += [(ns, "Pod", name_of(p)) for p in live]
    quota_message, quota_gpus = _quota_message(index, keys, live, row["queue"])
    if not quota_message:
        quota_message = _failure_condition([obj, *replicasets])
    template_spec = dig(spec, "template", "spec")
    desired = count(spec.get("replicas"), default=1)
    facts = _Facts(
        desired=desired,
        ready=_ready_count(status.get("readyReplicas"), live),
        live_pods=live,
        quota_message=quota_message,
        unschedulable=_first_unschedulable(live),
    )
    row_status, message = _deployment_status(obj, facts)
    row.update(
        status=row_status,
        message=message,
        revision=text(object_annotations(obj).get(REVISION_ANNOTATION)),
        rollout=deployment_progress(obj),
    )
    pending_gpus = _fill_replicas_and_gpus(row, index, facts, desired, template_spec, quota_gpus)
    return WorkloadRecord(Workload(**row), obj, pods, replicasets, pending_gpus)


def _deployment_status(obj: Obj, facts: _Facts) -> tuple[WorkloadStatus, str]:
    spec, status = mapping(obj.get("spec")), mapping(obj.get("status"))
    if spec.get("paused") is True:
        return WorkloadStatus.PAUSED, "rollout paused"
    progressing = condition(obj, "Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        reason = text(progressing.get("message")) or "progress deadline exceeded"
        return WorkloadStatus.DEGRADED, f"rollout failed: {reason}"
    ready, desired = facts.ready, facts.desired
    rolling = _rolling(obj, desired)
    if ready < desired:
        cause = facts.quota_message or facts.unschedulable
        if cause:
            return (WorkloadStatus.PENDING if ready == 0 else WorkloadStatus.DEGRADED), cause
        if rolling or (ready == 0 and facts.live_pods):
            return WorkloadStatus.PROGRESSING, f"{ready}/{desired} replicas ready"
        return WorkloadStatus.DEGRADED, f"{ready}/{desired} replicas ready"
    total = optional_count(status.get("replicas"))
    if rolling or (total is not None and total > desired):
        return WorkloadStatus.PROGRESSING, "rollout in progress"
    return WorkloadStatus.RUNNING, ""


def _rolling(obj: Obj, desired: int) -> bool:
    """A rollout is under way: spec not yet observed, or not every replica updated."""
    status = mapping(obj.get("status"))
    generation = optional_count(dig(obj, "metadata", "generation"))
    observed = optional_count(status.get("observedGeneration"))
    if generation is not None and observed is not None and observed < generation:
        return True
    updated = optional_count(status.get("updatedReplicas"))
    if updated is not None and updated < desired:
        return True
    progressing = condition(obj, "Progressing")
    return progressing is not None and progressing.get("reason") == "ReplicaSetUpdated"


# -- Jobs ----------------------------------------------------------------------------------------


def _job(obj: Obj, index: ClusterIndex) -> WorkloadRecord:
    ns, name = namespace_of(obj), name_of(obj)
    spec, status = mapping(obj.get("spec")), mapping(obj.get("status"))
    pods = index.pods_by_owner.get((ns, "Job", name), [])
    live = _live(pods)
    row = _base_row(obj, WorkloadKind.JOB, index)
    keys = [(ns, "Job", name)] + [(ns, "Pod", name_of(p)) for p in live]
    quota_message, quota_gpus = _quota_message(index, keys, live, row["queue"])
    template_spec = dig(spec, "template", "spec")
    parallelism = count(spec.get("parallelism"), default=1)
    facts = _Facts(
        desired=parallelism,
        ready=_ready_count(status.get("ready"), live),
        live_pods=live,
        quota_message=quota_message,
        unschedulable=_first_unschedulable(live),
    )
    row_status, message = _job_status(obj, facts, row["queue"])
    held = _gpus_held(index, live)
    requested = max(parallelism * pod_spec_gpus(template_spec), sum(index.gpus_of(p) for p in live))
    if row_status in (WorkloadStatus.SUCCEEDED, WorkloadStatus.FAILED):
        requested = held
    row.update(
        status=row_status,
        message=message,
        replicas=parallelism,
        ready_replicas=facts.ready,
        gpus=held,
        gpus_requested=requested,
        gpu_model=_gpu_model(template_spec, live),
    )
    waiting = row_status == WorkloadStatus.PENDING and facts.quota_message
    pending_gpus = quota_gpus or (max(0, requested - held) if waiting else 0)
    return WorkloadRecord(Workload(**row), obj, pods, [], pending_gpus)


def _job_status(obj: Obj, facts: _Facts, queue: str | None) -> tuple[WorkloadStatus, str]:
    if condition_true(obj, "Complete"):
        return WorkloadStatus.SUCCEEDED, ""
    failed = condition(obj, "Failed")
    if failed is not None and str(failed.get("status")) == "True":
        why = text(failed.get("message")) or text(failed.get("reason")) or "job failed"
        return WorkloadStatus.FAILED, why
    if dig(obj, "spec", "suspend") is True:
        if facts.quota_message or queue:
            return (
                WorkloadStatus.PENDING,
                facts.quota_message or f"waiting for quota in queue {queue}",
            )
        return WorkloadStatus.PAUSED, "suspended"
    running = sum(1 for p in facts.live_pods if pod_phase(p) == "Running")
    if facts.ready > 0 or running > 0:
        return WorkloadStatus.RUNNING, ""
    cause = facts.quota_message or facts.unschedulable
    if cause:
        return WorkloadStatus.PENDING, cause
    return WorkloadStatus.PENDING, "waiting for pods to start"


# -- InferenceServices ---------------------------------------------------------------------------


def _predictor_spec(obj: Obj) -> Mapping[str, Any]:
    return mapping(dig(obj, "spec", "predictor"))


def _predictor_pod_spec(predictor: Mapping[str, Any]) -> dict[str, Any]:
    """A pod spec equivalent of the predictor: its model container (or containers) and selector."""
    model = mapping(predictor.get("model"))
    pod_containers = list(containers(predictor)) or ([model] if model else [])
    return {"containers": pod_containers, "nodeSelector": predictor.get("nodeSelector")}


def _inference_service(obj: Obj, index: ClusterIndex) -> WorkloadRecord:
    ns, name = namespace_of(obj), name_of(obj)
    predictor = _predictor_spec(obj)
    pods = index.pods_by_owner.get((ns, "InferenceService", name), [])
    live = _live(pods)
    row = _base_row(obj, WorkloadKind.INFERENCE_SERVICE, index)
    keys = [(ns, "InferenceService", name)] + [(ns, "Pod", name_of(p)) for p in live]
    quota_message, quota_gpus = _quota_message(index, keys, live, row["queue"])
    pod_spec = _predictor_pod_spec(predictor)
    min_replicas = count(predictor.get("minReplicas"), default=1)
    desired = len(live) if live else min_replicas
    facts = _Facts(
        desired=desired,
        ready=sum(1 for p in live if pod_ready(p)),
        live_pods=live,
        quota_message=quota_message,
        unschedulable=_first_unschedulable(live),
    )
    canary = canary_percent(obj)
    latest = text(dig(obj, "status", "components", "predictor", "latestCreatedRevision"))
    row_status, message = _isvc_status(obj, facts, canary)
    row.update(
        status=row_status,
        message=message,
        revision=latest,
        canary_percent=canary,
        rollout=inference_service_progress(
            obj,
            traffic_split(obj),
            desired=desired,
            ready=facts.ready,
            updated=sum(1 for p in live if latest and pod_kserve_revision(p) == latest),
        ),
    )
    pending_gpus = _fill_replicas_and_gpus(row, index, facts, min_replicas, pod_spec, quota_gpus)
    return WorkloadRecord(Workload(**row), obj, pods, [], pending_gpus)


def _isvc_status(obj: Obj, facts: _Facts, canary: int | None) -> tuple[WorkloadStatus, str]:
    ready_cond = condition(obj, "Ready")
    cause = facts.quota_message or facts.unschedulable
    if ready_cond is not None and str(ready_cond.get("status")) == "True":
        latest = text(dig(obj, "status", "components", "predictor", "latestCreatedRevision"))
        if canary is not None and 0 < canary < 100:
            return WorkloadStatus.PROGRESSING, f"canary: {canary}% to {latest or 'latest'}"
        if cause and facts.ready < facts.desired:
            return WorkloadStatus.DEGRADED, cause
        return WorkloadStatus.RUNNING, ""
    if cause and facts.ready == 0:
        return WorkloadStatus.PENDING, cause
    if ready_cond is None:
        if facts.ready > 0:
            return WorkloadStatus.RUNNING, ""
        return WorkloadStatus.PENDING, "waiting for the InferenceService to become ready"
    why = text(ready_cond.get("message")) or text(ready_cond.get("reason")) or "not ready"
    if cause:
        why = cause
    if facts.ready == 0 and facts.live_pods:
        return WorkloadStatus.PROGRESSING, why
    return WorkloadStatus.DEGRADED, why


def pod_holders(records: Iterable[WorkloadRecord]) -> dict[tuple[str, str], set[ObjectKey]]:
    """(namespace, pod) -> the keys of the workloads whose records hold the pod."""
    out: dict[tuple[str, str], set[ObjectKey]] = {}
    for record in records:
        namespace, key = record.row.namespace, record.key
        for pod in record.pods:
            out.setdefault((namespace, name_of(pod)), set()).add(key)
    return out


def holder_label(holders: Iterable[ObjectKey]) -> str:
    """ "Kind/name" of the pod's workload: the last of its holders in (namespace, kind, name)
    order, when (rarely) several records hold one pod."""
    _, kind, name = max(holders)
    return f"{kind}/{name}"
