"""A workload's detail: revision history, pods, recent events, conditions and endpoint health.

Computed on request from the records the model keeps (one workload's ReplicaSets, pods and events,
never a scan of the fleet). Revisions follow ``kubectl rollout history``: a Deployment's
ReplicaSets numbered by ``deployment.kubernetes.io/revision`` (missing = 0), newest first, with
``kubernetes.io/change-cause`` or ``<none>`` (null here). KServe revisions come from the
predictor's status: the latest created one and the previously rolled-out one with their traffic,
and the traffic split between them (``backend.fleet.traffic``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from backend.fleet.index import ClusterIndex, Obj
from backend.fleet.objects import (
    conditions,
    count,
    created,
    dig,
    first_image,
    mapping,
    name_of,
    object_annotations,
    optional_count,
    owner_named,
    pod_kserve_revision,
    pod_phase,
    pod_ready,
    pod_restarts,
    pod_spec_gpus,
    revision_number,
    sequence,
    text,
    timestamp,
    trailing_number,
)
from backend.fleet.traffic import revision_traffic, traffic_split
from backend.fleet.workloads import WorkloadRecord
from backend.k8s.annotations import CHANGE_CAUSE_ANNOTATION, REVISION_ANNOTATION
from backend.schemas import (
    ClusterEvent,
    EndpointHealth,
    PodSummary,
    Revision,
    TrafficSplit,
    WorkloadDetail,
    WorkloadKind,
)

MAX_EVENTS = 50


def workload_detail(
    record: WorkloadRecord, index: ClusterIndex, endpoint: EndpointHealth | None = None
) -> WorkloadDetail:
    row, obj = record.row, record.obj
    traffic = None
    if row.kind == WorkloadKind.DEPLOYMENT:
        revisions = deployment_revisions(record)
    elif row.kind == WorkloadKind.INFERENCE_SERVICE:
        traffic = traffic_split(obj)
        revisions = kserve_revisions(obj, record.pods, traffic)
    else:
        revisions = []
    return WorkloadDetail(
        **row.model_dump(),
        paused=dig(obj, "spec", "paused") is True or dig(obj, "spec", "suspend") is True,
        images=_images(record),
        revisions=revisions,
        traffic=traffic,
        pods=[_pod_summary(p, index) for p in sorted(record.pods, key=name_of)],
        events=workload_events(record, index),
        conditions=[_condition(c) for c in conditions(obj)],
        endpoint=endpoint,
    )


def deployment_revisions(record: WorkloadRecord) -> list[Revision]:
    current = text(object_annotations(record.obj).get(REVISION_ANNOTATION))
    numbered = [(rs_revision(rs), rs) for rs in record.replicasets]
    numbered.sort(key=lambda item: (item[0], name_of(item[1])), reverse=True)
    if current is None and numbered:
        current = str(numbered[0][0])
    out = []
    for number, rs in numbered:
        status = mapping(rs.get("status"))
        out.append(
            Revision(
                revision=str(number),
                change_cause=_change_cause(rs),
                created=created(rs),
                replicas=count(status.get("replicas")),
                ready_replicas=count(status.get("readyReplicas")),
                image=first_image(dig(rs, "spec", "template", "spec")),
                current=str(number) == current,
            )
        )
    return out


def rs_revision(rs: Obj) -> int:
    return revision_number(object_annotations(rs).get(REVISION_ANNOTATION))


def _change_cause(obj: Obj) -> str | None:
    cause = text(object_annotations(obj).get(CHANGE_CAUSE_ANNOTATION))
    return None if not cause or cause == "<none>" else cause


def kserve_revisions(obj: Obj, pods: list[Obj], split: TrafficSplit | None) -> list[Revision]:
    """Revisions named in the predictor's status, newest first, with traffic % and tags."""
    predictor = mapping(dig(obj, "status", "components", "predictor"))
    traffic = revision_traffic(split)
    latest = text(predictor.get("latestCreatedRevision"))
    names = [latest, *traffic]
    for key in ("latestReadyRevision", "latestRolledoutRevision", "previousRolledoutRevision"):
        names.append(text(predictor.get(key)))
    unique = list(dict.fromkeys(n for n in names if n))
    unique.sort(key=trailing_number, reverse=True)
    pods_by_revision = _pods_by_revision(pods)
    out = []
    for name in unique:
        routed = traffic.get(name)
        percent, tag = (routed.percent, routed.tag) if routed else (None, None)
        if tag is None:
            tag = _default_tag(name, latest, predictor)
        revision_pods = pods_by_revision.get(name, [])
        out.append(
            Revision(
                revision=name,
                replicas=len(revision_pods),
                ready_replicas=sum(1 for p in revision_pods if pod_ready(p)),
                image=next((first_image(p.get("spec")) for p in revision_pods), None),
                current=name == latest,
                traffic_percent=percent,
                tag=tag,
            )
        )
    return out


def _default_tag(name: str, latest: str | None, predictor: Any) -> str | None:
    if name == latest:
        return "latest"
    if name == text(mapping(predictor).get("previousRolledoutRevision")):
        return "prev"
    return None


def _pods_by_revision(pods: list[Obj]) -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = {}
    for pod in pods:
        revision = pod_kserve_revision(pod)
        if revision:
            out.setdefault(revision, []).append(pod)
    return out


def _pod_summary(pod: Obj, index: ClusterIndex) -> PodSummary:
    return PodSummary(
        name=name_of(pod),
        node=text(dig(pod, "spec", "nodeName")),
        phase=pod_phase(pod),
        ready=pod_ready(pod),
        restarts=pod_restarts(pod),
        gpus=pod_spec_gpus(pod.get("spec")),
        revision=pod_revision(pod, index),
        created=created(pod),
    )


def pod_revision(pod: Obj, index: ClusterIndex) -> str | None:
    """The KServe revision label first (its pods also have a ReplicaSet), then the RS number."""
    kserve = pod_kserve_revision(pod)
    if kserve:
        return kserve
    rs_name = owner_named(pod, "ReplicaSet")
    if rs_name:
        rs = index.replicasets.get((text(dig(pod, "metadata", "namespace")) or "", rs_name))
        if rs is not None:
            return str(rs_revision(rs))
    return None


def _images(record: WorkloadRecord) -> list[str]:
    obj = record.obj
    template = dig(obj, "spec", "template", "spec")
    specs = [template] if template else [p.get("spec") for p in record.pods]
    predictor = mapping(dig(obj, "spec", "predictor"))
    specs.append(predictor)
    images = []
    for spec in specs:
        for container in sequence(mapping(spec).get("containers")):
            image = text(mapping(container).get("image"))
            if image:
                images.append(image)
    return list(dict.fromkeys(images))


def workload_events(record: WorkloadRecord, index: ClusterIndex) -> list[ClusterEvent]:
    """Events about the workload, its ReplicaSets and its pods, newest first, at most 50."""
    ns = record.row.namespace
    keys = [record.key]
    keys += [(ns, "ReplicaSet", name_of(rs)) for rs in record.replicasets]
    keys += [(ns, "Pod", name_of(p)) for p in record.pods]
    events = [e for key in keys for e in index.events_by_object.get(key, ())]
    stamped = [(_last_seen(e), e) for e in events]
    stamped.sort(key=lambda item: item[0].timestamp() if item[0] else float("-inf"), reverse=True)
    return [_event(e, seen) for seen, e in stamped[:MAX_EVENTS]]


def _last_seen(event: Obj) -> datetime | None:
    for value in (
        event.get("lastTimestamp"),
        dig(event, "series", "lastObservedTime"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        dig(event, "metadata", "creationTimestamp"),
    ):
        stamp = timestamp(value)
        if stamp is not None:
            return stamp
    return None


def _event(event: Obj, last_seen: datetime | None) -> ClusterEvent:
    regarding = mapping(event.get("involvedObject") or event.get("regarding"))
    series_count = optional_count(dig(event, "series", "count"))
    return ClusterEvent(
        type=text(event.get("type")) or "Normal",
        reason=text(event.get("reason")) or "",
        message=text(event.get("message")) or text(event.get("note")) or "",
        object=f"{text(regarding.get('kind')) or '?'}/{text(regarding.get('name')) or '?'}",
        count=max(1, optional_count(event.get("count")) or series_count or 1),
        last_seen=last_seen,
    )


def _condition(cond: Any) -> dict[str, str]:
    keys = ("type", "status", "reason", "message", "lastTransitionTime", "lastUpdateTime")
    out = {}
    for key in keys:
        value = text(mapping(cond).get(key))
        if value is not None:
            out[key] = value
    return out
