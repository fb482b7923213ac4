"""The fleet model updated from what changed equals the model built whole from the same inputs.

Random sequences of watch events (added, replaced and deleted objects of every kind the model
reads, in a small world where names collide on purpose: pods move between owners and nodes,
events and Kueue Workloads point at pods, ReplicaSets and Jobs, ClusterQueues change tenants)
and telemetry rounds (samples kept, replaced by equal ones, changed, moved or dropped) are applied
to a cluster held the way the cache holds it. After each batch, the model updated from the
previous one and the changed keys is compared with ``build_fleet_model`` on the same inputs:
every table, the overview, the problems, the quota review and every workload's detail. The model
the update started from must not change (readers may still hold it).
"""

from __future__ import annotations

import math
from dataclasses import replace as replace_sample
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.fleet import build_fleet_model
from backend.fleet.endpoints import Claims, is_endpoint, pod_owners
from backend.fleet.index import ClusterIndex, build_index, update_index
from backend.fleet.inputs import TelemetryLike
from backend.fleet.model import FleetModel, update_fleet_model
from backend.fleet.stepping import step_towards
from backend.schemas import DataFreshness
from backend.telemetry.base import TelemetrySnapshot
from backend.telemetry.dcgm import GpuSample
from backend.telemetry.inference import InferenceRound, InferenceSnapshot, PodTraffic
from tests.support.synthetic_fleet import FLEET_KINDS, FleetBuilder

NOW = 1_764_324_000.0
WHEN = ["2026-11-28T10:00:00Z", "2026-11-28T11:00:00Z"]
KINDS = FLEET_KINDS
NAMESPACES = ["ns-a", "ns-b", "ns-c"]
NODES = ["node-1", "node-2", "node-10"]
HOSTS = [*NODES, "host-1", "elsewhere"]
GPU_MODELS = ["NVIDIA-H100-80GB-HBM3", "NVIDIA-L40S"]
PODS = ["web-1-a", "web-1-b", "chat-p", "train-0", "stray"]
OWNERS: list[tuple[str, str] | None] = [
    ("ReplicaSet", "web-1"),
    ("ReplicaSet", "web-2"),
    ("ReplicaSet", "chat-rs"),
    ("Job", "train"),
    None,
]
SUBJECTS = [
    ("Pod", "web-1-a"),
    ("Pod", "train-0"),
    ("ReplicaSet", "web-1"),
    ("Deployment", "web"),
    ("Job", "train"),
    ("InferenceService", "chat"),
]
Cluster = dict[str, dict[tuple[str, str], dict[str, Any]]]

namespaces = st.sampled_from(NAMESPACES)
maybe = st.booleans()


def _meta(name: str, ns: str | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "creationTimestamp": WHEN[0], **extra}
    if ns:
        meta["namespace"] = ns
    return meta


def _condition(kind: str, status: bool, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "status": "True" if status else "False", **extra}


def _pod_spec(gpus: int, model: str | None) -> dict[str, Any]:
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    spec: dict[str, Any] = {"containers": [{"name": "main", "resources": {"limits": limits}}]}
    if model:
        spec["nodeSelector"] = {"nvidia.com/gpu.product": model}
    return spec


@st.composite
def namespace(draw: st.DrawFn) -> dict[str, Any]:
    tenant = draw(st.sampled_from([None, "team-a", "team-b"]))
    labels = {"opsconsole.io/tenant": tenant} if tenant else {}
    return {"metadata": _meta(draw(namespaces), labels=labels)}


@st.composite
def node(draw: st.DrawFn) -> dict[str, Any]:
    labels = {"nvidia.com/gpu.product": draw(st.sampled_from(GPU_MODELS))}
    hostname = draw(st.sampled_from([None, "host-1", "host-2"]))
    if hostname:
        labels["kubernetes.io/hostname"] = hostname
    gpus = str(draw(st.integers(0, 3)))
    return {
        "metadata": _meta(draw(st.sampled_from(NODES)), labels=labels),
        "spec": {"unschedulable": draw(maybe)},
        "status": {
            "capacity": {"nvidia.com/gpu": gpus},
            "allocatable": {"nvidia.com/gpu": gpus},
            "conditions": [_condition("Ready", draw(maybe))],
        },
    }


@st.composite
def pod(draw: st.DrawFn) -> dict[str, Any]:
    owner = draw(st.sampled_from(OWNERS))
    labels: dict[str, str] = {}
    if draw(maybe):
        labels["batch.kubernetes.io/job-name"] = "train"
    if draw(maybe):
        labels["serving.kserve.io/inferenceservice"] = "chat"
    refs = [{"kind": owner[0], "name": owner[1]}] if owner else []
    spec = _pod_spec(draw(st.integers(0, 2)), draw(st.sampled_from([None, *GPU_MODELS])))
    node_name = draw(st.sampled_from([None, *NODES]))
    if node_name:
        spec["nodeName"] = node_name
    if draw(maybe):
        spec["schedulingGates"] = [{"name": "kueue.x-k8s.io/admission"}]
    phase = draw(st.sampled_from(["Running", "Pending", "Succeeded", "Failed"]))
    conditions = [_condition("Ready", draw(maybe))]
    if draw(maybe):
        message = draw(st.sampled_from(["0/3 nodes are available", "no GPUs"]))
        conditions.append(
            _condition("PodScheduled", False, reason="Unschedulable", message=message)
        )
    return {
        "metadata": _meta(
            draw(st.sampled_from(PODS)), draw(namespaces), labels=labels, ownerReferences=refs
        ),
        "spec": spec,
        "status": {"phase": phase, "conditions": conditions},
    }


@st.composite
def deployment(draw: st.DrawFn) -> dict[str, Any]:
    labels = {"opsconsole.io/model": "web"} if draw(maybe) else {}
    if draw(maybe):
        labels["kueue.x-k8s.io/queue-name"] = "main"
    replicas = draw(st.integers(0, 3))
    conditions = []
    if draw(maybe):
        conditions.append(_condition("Progressing", False, reason="ProgressDeadlineExceeded"))
    if draw(maybe):
        conditions.append(_condition("ReplicaFailure", True, message="exceeded quota: gpu"))
    revision = draw(st.sampled_from(["1", "2", "3"]))
    return {
        "metadata": _meta(
            draw(st.sampled_from(["web", "other"])),
            draw(namespaces),
            labels=labels,
            annotations={"deployment.kubernetes.io/revision": revision},
            generation=draw(st.integers(1, 2)),
        ),
        "spec": {
            "replicas": replicas,
            "paused": draw(maybe),
            "template": {"spec": _pod_spec(draw(st.integers(0, 2)), GPU_MODELS[0])},
        },
        "status": {
            "replicas": draw(st.integers(0, 4)),
            "readyReplicas": draw(st.integers(0, 3)),
            "updatedReplicas": draw(st.integers(0, 3)),
            "observedGeneration": draw(st.integers(1, 2)),
            "conditions": conditions,
        },
    }


@st.composite
def replicaset(draw: st.DrawFn) -> dict[str, Any]:
    owner = draw(st.sampled_from([None, "web", "other"]))
    refs = [{"kind": "Deployment", "name": owner}] if owner else []
    annotations = {"deployment.kubernetes.io/revision": draw(st.sampled_from(["1", "2", "3"]))}
    conditions = [_condition("ReplicaFailure", True, message="rs refused")] if draw(maybe) else []
    return {
        "metadata": _meta(
            draw(st.sampled_from(["web-1", "web-2", "chat-rs"])),
            draw(namespaces),
            ownerReferences=refs,
            annotations=annotations,
        ),
        "spec": {"replicas": draw(st.integers(0, 2)), "template": {"spec": _pod_spec(1, None)}},
        "status": {"conditions": conditions},
    }


@st.composite
def job(draw: st.DrawFn) -> dict[str, Any]:
    labels = {"kueue.x-k8s.io/queue-name": "main"} if draw(maybe) else {}
    conditions = []
    if draw(maybe):
        conditions.append(_condition(draw(st.sampled_from(["Complete", "Failed"])), True))
    return {
        "metadata": _meta(
            draw(st.sampled_from(["train", "batch"])), draw(namespaces), labels=labels
        ),
        "spec": {
            "parallelism": draw(st.integers(0, 2)),
            "suspend": draw(maybe),
            "template": {"spec": _pod_spec(draw(st.integers(0, 2)), None)},
        },
        "status": {"ready": draw(st.sampled_from([None, 0, 1])), "conditions": conditions},
    }


@st.composite
def inference_service(draw: st.DrawFn) -> dict[str, Any]:
    predictor: dict[str, Any] = {
        "minReplicas": draw(st.integers(0, 2)),
        "model": {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
    }
    canary = draw(st.sampled_from([None, 0, 10, 100]))
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    return {
        "metadata": _meta("chat", draw(namespaces)),
        "spec": {"predictor": predictor},
        "status": {
            "conditions": [_condition("Ready", draw(maybe))] if draw(maybe) else [],
            "components": {
                "predictor": {
                    "latestCreatedRevision": draw(st.sampled_from(["chat-00001", "chat-00002"])),
                    "previousRolledoutRevision": "chat-00001",
                }
            },
        },
    }


@st.composite
def event(draw: st.DrawFn) -> dict[str, Any]:
    kind, name = draw(st.sampled_from(SUBJECTS))
    ns = draw(namespaces)
    message = draw(st.sampled_from(["exceeded quota: gpu, requested: 1", "Scheduled"]))
    return {
        "metadata": _meta(draw(st.sampled_from(["e1", "e2", "e3"])), ns),
        "involvedObject": {"kind": kind, "name": name, "namespace": ns},
        "reason": draw(st.sampled_from(["FailedCreate", "Scheduled"])),
        "message": message,
        "type": "Warning",
        "lastTimestamp": draw(st.sampled_from(WHEN)),
    }


@st.composite
def kueue_workload(draw: st.DrawFn) -> dict[str, Any]:
    kind, name = draw(st.sampled_from(SUBJECTS))
    status: dict[str, Any] = {}
    if draw(maybe):
        status["admission"] = {"clusterQueue": "cq-a"}
    else:
        status["conditions"] = [_condition("QuotaReserved", False, message="insufficient quota")]
    pod_set = {
        "name": "main",
        "count": draw(st.integers(1, 2)),
        "template": {"spec": _pod_spec(1, draw(st.sampled_from([None, *GPU_MODELS])))},
    }
    return {
        "metadata": _meta(
            draw(st.sampled_from(["wl-1", "wl-2"])),
            draw(namespaces),
            ownerReferences=[{"kind": kind, "name": name}],
        ),
        "spec": {"queueName": "main", "podSets": [pod_set]},
        "status": status,
    }


@st.composite
def cluster_queue(draw: st.DrawFn) -> dict[str, Any]:
    tenant = draw(st.sampled_from([None, "team-a", "team-b", "team-z"]))
    labels = {"opsconsole.io/tenant": tenant} if tenant else {}
    flavor = draw(st.sampled_from(["h100", "l40s", "any"]))
    resources = [{"name": "nvidia.com/gpu", "nominalQuota": draw(st.integers(0, 8))}]
    usage = [{"name": "nvidia.com/gpu", "total": draw(st.integers(0, 9)), "borrowed": 0}]
    return {
        "metadata": _meta(draw(st.sampled_from(["cq-a", "cq-b"])), labels=labels),
        "spec": {
            "cohortName": "all",
            "resourceGroups": [{"flavors": [{"name": flavor, "resources": resources}]}],
        },
        "status": {"flavorsUsage": [{"name": flavor, "resources": usage}]},
    }


@st.composite
def resource_quota(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "metadata": _meta(draw(st.sampled_from(["gpu", "gpu-2"])), draw(namespaces)),
        "spec": {"hard": {"requests.nvidia.com/gpu": str(draw(st.integers(0, 4)))}},
        "status": {"used": {"requests.nvidia.com/gpu": str(draw(st.integers(0, 4)))}},
    }


@st.composite
def resource_flavor(draw: st.DrawFn) -> dict[str, Any]:
    model = draw(st.sampled_from([None, *GPU_MODELS]))
    node_labels = {"nvidia.com/gpu.product": model} if model else {}
    return {
        "metadata": _meta(draw(st.sampled_from(["h100", "l40s"]))),
        "spec": {"nodeLabels": node_labels},
    }


@st.composite
def local_queue(draw: st.DrawFn) -> dict[str, Any]:
    return {"metadata": _meta("main", draw(namespaces)), "spec": {"clusterQueue": "cq-a"}}


OBJECTS = {
    "namespaces": namespace(),
    "nodes": node(),
    "pods": pod(),
    "deployments": deployment(),
    "replicasets": replicaset(),
    "jobs": job(),
    "inferenceservices": inference_service(),
    "events": event(),
    "workloads": kueue_workload(),
    "clusterqueues": cluster_queue(),
    "resourcequotas": resource_quota(),
    "resourceflavors": resource_flavor(),
    "localqueues": local_queue(),
}
# Pods, events and workloads change most, as on a live cluster; namespaces and flavors rarely.
WEIGHTED_KINDS = [
    *["pods"] * 6,
    *["events", "replicasets", "deployments", "workloads", "nodes"] * 2,
    "jobs",
    "inferenceservices",
    "clusterqueues",
    "resourcequotas",
    "localqueues",
    "namespaces",
    "resourceflavors",
]


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


@st.composite
def watch_event(draw: st.DrawFn, cluster: Cluster) -> tuple[str, tuple[str, str]]:
    """Apply one ADDED/MODIFIED/DELETED event to ``cluster`` as the cache does; its key."""
    kind = draw(st.sampled_from(WEIGHTED_KINDS))
    objects = cluster[kind]
    if objects and draw(st.integers(0, 4)) == 0:
        key = draw(st.sampled_from(sorted(objects)))
        del objects[key]
        return kind, key
    obj = draw(OBJECTS[kind])
    objects[_key(obj)] = obj  # a new key goes last; a replaced one keeps its place
    return kind, _key(obj)


@st.composite
def scrape(draw: st.DrawFn, previous: TelemetrySnapshot) -> TelemetrySnapshot:
    """A telemetry round: each GPU's sample kept, copied, changed, moved or dropped."""
    samples: dict[str, GpuSample] = {}
    history: dict[str, tuple[float | None, ...]] = {}
    for i in range(draw(st.integers(0, 6))):
        uuid = f"GPU-{i}"
        old = previous.samples.get(uuid)
        choice = draw(st.sampled_from(["keep", "copy", "new", "drop"]))
        if choice == "drop":
            continue
        if old is not None and choice in ("keep", "copy"):
            samples[uuid] = old if choice == "keep" else replace_sample(old)
            history[uuid] = tuple(previous.history.get(uuid, ()))
            continue
        pod = draw(st.sampled_from([None, *PODS]))
        samples[uuid] = GpuSample(
            uuid=uuid,
            gpu=draw(st.integers(0, 3)),
            node=draw(st.sampled_from(HOSTS)),
            model_name="NVIDIA H100",
            device=None,
            pci_bus_id=None,
            mig_profile=None,
            mig_instance=None,
            utilization=draw(st.sampled_from([None, 0.0, 3.0, 55.5, 100.0])),
            power_watts=draw(st.sampled_from([None, 120.0])),
            temperature_c=draw(st.sampled_from([None, 40.0, 90.0])),
            last_xid=draw(st.sampled_from([None, 0, 79])),
            pod=pod,
            namespace=draw(namespaces) if pod else None,
            sampled_at=NOW,
        )
        history[uuid] = (*previous.history.get(uuid, ())[-2:], samples[uuid].utilization)
    return TelemetrySnapshot(samples=samples, history=history, completed_at=NOW)


# Model-server pods: those that may exist, and pods already gone, known by their ReplicaSet.
TRAFFIC_PODS = [*PODS, "web-1-gone", "web-2-gone", "chat-rs-gone"]


@st.composite
def traffic(draw: st.DrawFn, previous: InferenceSnapshot) -> InferenceSnapshot:
    """A model-server round after ``previous``'s (the newest three kept): each pod served
    nothing, or some requests with or without errors."""
    pods: dict[tuple[str, str], PodTraffic] = {}
    for ns in NAMESPACES:
        for name in TRAFFIC_PODS:
            requests = draw(st.sampled_from([None, 0.0, 10.0, 300.0]))
            if requests is None:
                continue
            errors = draw(st.sampled_from([0.0, 3.0])) if requests else 0.0
            buckets = ((0.1, requests / 2), (1.0, requests * 0.9), (math.inf, requests))
            pods[(ns, name)] = PodTraffic(30.0, requests, errors, buckets)
    rounds = (*previous.rounds, InferenceRound(NOW + len(previous.rounds), pods))
    return InferenceSnapshot(rounds[-3:], {}, summary_rounds=2)


def _snapshot(cluster: Cluster) -> Cluster:
    """What ``ClusterCache.snapshot`` hands the model: shallow copies of every kind."""
    return {kind: dict(objects) for kind, objects in cluster.items()}


def placement(model: FleetModel) -> tuple[Any, ...]:
    """Which samples each node has, the nodes with each pod's samples, and the workloads that
    hold each pod (which endpoint serves a pod is read from them): an update changes only what
    changed, and must leave what a whole build would."""
    parts = model.parts
    samples = {node: sorted(map(id, on)) for node, on in parts.samples.items()}
    holders = {pod: keys for pod, keys in parts.holders.items() if keys}
    return samples, dict(parts.sample_pods), holders


def everything(model: FleetModel) -> dict[str, Any]:
    """Every answer the model gives, as JSON-ready data."""
    freshness = DataFreshness(synced=True)
    namespaces = sorted({w.namespace for w in model.workloads.items} | set(NAMESPACES))
    return {
        "tenants": [t.model_dump(mode="json") for t in model.tenants.items],
        "workloads": [w.model_dump(mode="json") for w in model.workloads.items],
        "nodes": [n.model_dump(mode="json") for n in model.nodes.items],
        "gpus": [g.model_dump(mode="json") for g in model.gpus.items],
        "problems": [p.model_dump(mode="json") for p in model.problems],
        "endpoints": [e.model_dump(mode="json") for e in model.endpoints.items],
        "overview": model.overview_json(freshness),
        "quota_rows": [r.model_dump(mode="json") for r in model.quota_rows()],
        "quota_models": [m.model_dump(mode="json") for m in model.quota_models(1.5)],
        "waiting": {
            ns: [(w.model_dump(mode="json"), g) for w, g in model.quota_waiting(ns)]
            for ns in namespaces
        },
        "details": {
            (w.namespace, w.kind.value, w.name): model.workload_json(
                w.namespace, w.kind.value, w.name
            )
            for w in model.workloads.items
        },
        "pages": [
            model.gpus.page_json(filters={"tenant": "team-a"}, sort="-utilization"),
            model.gpus.page_json(filters={"idle": "true"}),
            model.gpus.page_json(filters={"node": NODES[0]}),
            model.gpus.page_json(filters={"node": "gpu-node-0001"}),
            model.gpus.page_json(filters={"idle": "false"}, q="gpu"),
            model.gpus.page_json(q="gpu", sort="node"),
            model.workloads.page_json(q="web", sort="gpus"),
            model.nodes.page_json(filters={"gpu_model": GPU_MODELS[0]}),
            model.tenants.page_json(sort="-gpu_used"),
        ],
    }


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_updated_model_equals_the_model_built_whole(data: st.DataObject) -> None:
    cluster: Cluster = {kind: {} for kind in KINDS}
    telemetry = TelemetrySnapshot()
    inference = data.draw(traffic(InferenceSnapshot()))
    for _ in range(data.draw(st.integers(0, 25), label="initial objects")):
        data.draw(watch_event(cluster))
    model = build_fleet_model(_snapshot(cluster), telemetry, now=NOW, inference=inference)
    for _ in range(data.draw(st.integers(1, 8), label="batches")):
        changed: set[tuple[str, tuple[str, str]]] = set()
        for _ in range(data.draw(st.integers(1, 4), label="batch size")):
            event = data.draw(st.integers(0, 7), label="scrape, traffic or watch event?")
            if event == 0:
                telemetry = data.draw(scrape(telemetry))
            elif event == 1:
                inference = data.draw(traffic(inference))
            else:
                changed.add(data.draw(watch_event(cluster)))
        held = everything(model)
        cluster_now = _snapshot(cluster)
        updated = update_fleet_model(
            model, cluster_now, changed, telemetry, inference=inference, now=NOW
        )
        assert everything(model) == held, "the previous model changed under its readers"
        whole = build_fleet_model(_snapshot(cluster), telemetry, now=NOW, inference=inference)
        assert everything(updated) == everything(whole)
        assert placement(updated) == placement(whole)
        model = updated


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_an_endpoints_claims_read_one_name_at_a_time_equal_the_whole_map(
    data: st.DataObject,
) -> None:
    """An update that recomputes a few endpoints asks which endpoint each of their pods serves
    among all endpoints; ``Claims`` answers name by name what ``pod_owners`` of every endpoint
    answers at once. The world has pods held by two endpoints (a Deployment's ReplicaSet and an
    InferenceService's label), and ReplicaSets named like pods, labelled for an
    InferenceService or owned by two Deployments."""
    cluster: Cluster = {kind: {} for kind in KINDS}
    for _ in range(data.draw(st.integers(0, 40), label="objects")):
        data.draw(watch_event(cluster))
    for _ in range(data.draw(st.integers(0, 3), label="odd ReplicaSets")):
        name, ns = data.draw(st.sampled_from(PODS)), data.draw(namespaces)
        owners = data.draw(st.sampled_from([[], ["web"], ["web", "other"], ["other", "web"]]))
        refs = [{"kind": "Deployment", "name": owner} for owner in owners]
        isvc = {"serving.kserve.io/inferenceservice": "chat"} if data.draw(maybe) else {}
        rs = {"metadata": _meta(name, ns, labels=isvc, ownerReferences=refs)}
        cluster["replicasets"][(ns, name)] = rs
    if data.draw(maybe, label="a pod serving two endpoints"):
        ns = data.draw(namespaces)
        served = {
            "deployments": data.draw(deployment()),
            "replicasets": data.draw(replicaset()),
            "inferenceservices": data.draw(inference_service()),
            "pods": data.draw(pod()),
        }
        served["deployments"]["metadata"].update(labels={"opsconsole.io/model": "web"}, name="web")
        served["replicasets"]["metadata"].update(
            name="web-1", ownerReferences=[{"kind": "Deployment", "name": "web"}]
        )
        served["pods"]["metadata"].update(
            name="web-1-a",
            labels={"serving.kserve.io/inferenceservice": "chat"},
            ownerReferences=[{"kind": "ReplicaSet", "name": "web-1"}],
        )
        for kind, obj in served.items():
            obj["metadata"]["namespace"] = ns
            cluster[kind][_key(obj)] = obj
    parts = build_fleet_model(_snapshot(cluster), None, now=NOW).parts
    endpoints = [record for record in parts.records.values() if is_endpoint(record)]
    whole = pod_owners(endpoints, parts.index, revisions=False)
    claims = Claims(endpoints, parts.index, parts.holders)
    names = set(whole) | {f"{ns}/{name}" for ns in NAMESPACES for name in [*PODS, "web-1"]}
    assert {name: claims.get(name) for name in names} == {name: whole.get(name) for name in names}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_an_index_built_whole_equals_one_grown_object_by_object(data: st.DataObject) -> None:
    """A whole build appends to its lists and sorts them once at the end; an update inserts
    each object in place. Both must leave every list in the same order, whatever order the
    objects come in."""
    cluster: Cluster = {kind: {} for kind in KINDS}
    for _ in range(data.draw(st.integers(0, 40), label="objects")):
        data.draw(watch_event(cluster))
    shuffled = {
        kind: dict(data.draw(st.permutations(list(objects.items())), label=kind))
        for kind, objects in cluster.items()
    }
    grown = ClusterIndex()
    additions = [(kind, obj) for kind, objects in cluster.items() for obj in objects.values()]
    for kind, obj in data.draw(st.permutations(additions), label="additions"):
        grown = update_index(grown, [(kind, None, obj)])
    built = build_index(shuffled)
    assert built == grown
    assert not built.filling  # later updates insert in place again


@pytest.mark.timeout(600)  # three whole builds of the large fleet, on a shared machine
@pytest.mark.parametrize("isvc_first", [False, True], ids=["isvc-added", "isvc-removed"])
def test_an_endpoint_that_comes_or_goes_moves_its_namespaces_traffic(isvc_first: bool) -> None:
    """A pod of a model Deployment's ReplicaSet that also carries an InferenceService's label:
    its traffic is the Deployment's until the InferenceService exists. The Deployment's own
    record does not change when the InferenceService comes or goes, but its traffic does."""
    labels = {"opsconsole.io/model": "web"}
    rs_owner = [{"kind": "Deployment", "name": "other"}]
    pod_owner = [{"kind": "ReplicaSet", "name": "web-1"}]
    isvc = {"metadata": _meta("chat", "ns-b"), "spec": {"predictor": {"minReplicas": 1}}}
    cluster: Cluster = {kind: {} for kind in KINDS}
    cluster["deployments"][("ns-b", "other")] = {
        "metadata": _meta("other", "ns-b", labels=labels),
        "spec": {"replicas": 1, "template": {"spec": _pod_spec(0, None)}},
    }
    cluster["replicasets"][("ns-b", "web-1")] = {
        "metadata": _meta("web-1", "ns-b", ownerReferences=rs_owner)
    }
    cluster["pods"][("ns-b", "web-1-b")] = {
        "metadata": _meta(
            "web-1-b",
            "ns-b",
            labels={"serving.kserve.io/inferenceservice": "chat"},
            ownerReferences=pod_owner,
        ),
        "spec": _pod_spec(0, None),
        "status": {"phase": "Running"},
    }
    if isvc_first:
        cluster["inferenceservices"][("ns-b", "chat")] = isvc
    served = PodTraffic(30.0, 10.0, 0.0, ((0.1, 5.0), (1.0, 9.0), (math.inf, 10.0)))
    inference = InferenceSnapshot(
        (InferenceRound(NOW, {("ns-b", "web-1-b"): served}),), {}, summary_rounds=1
    )
    model = build_fleet_model(_snapshot(cluster), None, now=NOW, inference=inference)
    if isvc_first:
        del cluster["inferenceservices"][("ns-b", "chat")]
    else:
        cluster["inferenceservices"][("ns-b", "chat")] = isvc
    changed = {("inferenceservices", ("ns-b", "chat"))}
    updated = update_fleet_model(
        model, _snapshot(cluster), changed, None, inference=inference, now=NOW
    )
    whole = build_fleet_model(_snapshot(cluster), None, now=NOW, inference=inference)
    rates = {(e.kind.value, e.name): e.request_rate for e in whole.endpoints.items}
    assert rates[("Deployment", "other")] == (None if not isvc_first else 10.0 / 30.0)
    assert everything(updated) == everything(whole)


def test_large_fleet_updates_equal_a_whole_build() -> None:
    """The benchmark's large fleet (1,000 nodes, 8,000 GPUs, 200 tenants): pods deleted and
    moved to another node, a Deployment scaled, a ReplicaSet and a Kueue Workload replaced, a
    node made not Ready, then a telemetry round that changes some GPUs."""
    builder = FleetBuilder(1000, seed=1)
    cluster: Cluster = {kind: dict(objects) for kind, objects in builder.build(200).items()}
    telemetry = builder.telemetry(5)
    model = build_fleet_model(_snapshot(cluster), telemetry, now=NOW)
    changed: set[tuple[str, tuple[str, str]]] = set()

    def replace(kind: str, key: tuple[str, str], path: tuple[str, str], value: Any) -> None:
        obj = dict(cluster[kind][key])
        obj[path[0]] = {**obj.get(path[0], {}), path[1]: value}
        cluster[kind][key] = obj
        changed.add((kind, key))

    pods = sorted(cluster["pods"])
    for key in pods[::997]:
        del cluster["pods"][key]
        changed.add(("pods", key))
    for key in pods[5::1009]:
        replace("pods", key, ("spec", "nodeName"), "gpu-node-0002")
    replace("deployments", sorted(cluster["deployments"])[3], ("spec", "replicas"), 7)
    replace("replicasets", sorted(cluster["replicasets"])[7], ("status", "replicas"), 1)
    replace("workloads", sorted(cluster["workloads"])[2], ("status", "admission"), None)
    ready = [_condition("Ready", False)]
    replace("nodes", sorted(cluster["nodes"])[1], ("status", "conditions"), ready)
    updated = update_fleet_model(model, _snapshot(cluster), changed, telemetry, now=NOW)
    whole = build_fleet_model(_snapshot(cluster), telemetry, now=NOW)
    assert everything(updated) == everything(whole)

    samples = dict(telemetry.samples)
    for uuid in sorted(samples)[::13]:
        samples[uuid] = replace_sample(samples[uuid], utilization=1.0, last_xid=79)
    rescraped = TelemetrySnapshot(samples=samples, history=telemetry.history, completed_at=NOW)
    again = update_fleet_model(updated, _snapshot(cluster), set(), rescraped, now=NOW)
    whole = build_fleet_model(_snapshot(cluster), rescraped, now=NOW)
    assert everything(again) == everything(whole)


def test_a_telemetry_round_is_brought_in_a_slice_of_gpus_at_a_time() -> None:
    """Every step moves at most the limit of GPUs to the new round, the model of each step
    equals the model built whole from it, and the steps end on the round itself."""
    builder = FleetBuilder(40, seed=2)
    cluster = builder.build(8)
    current: TelemetryLike = builder.telemetry(3)
    target = builder.telemetry(3)
    model = build_fleet_model(cluster, current, now=NOW)
    steps = 0
    while current is not target:
        step = step_towards(current, target, 32)  # few enough to patch the GPU table
        moved = [u for u in target.samples if current.samples.get(u) is not step.samples.get(u)]
        assert 0 < len(moved) <= 32
        assert all(step.samples[u] is target.samples[u] for u in moved)
        model = update_fleet_model(model, cluster, set(), step, now=NOW)
        assert everything(model) == everything(build_fleet_model(cluster, step, now=NOW))
        current, steps = step, steps + 1
    assert steps == 10  # 320 GPUs, 32 at a time


def test_a_round_that_arrives_while_another_steps_in_is_stepped_towards_whole() -> None:
    """A step carries the GPUs its round has left to move; a newer round must not be stepped
    towards with that list (it differs in other GPUs), but compared again."""
    builder = FleetBuilder(40, seed=3)
    cluster = builder.build(8)
    first: TelemetryLike = builder.telemetry(3)
    second, third = builder.telemetry(3), builder.telemetry(3)
    current = step_towards(step_towards(first, second, 32), second, 32)
    model = build_fleet_model(cluster, current, now=NOW)
    steps = 0
    while current is not third:
        current, steps = step_towards(current, third, 32), steps + 1
        model = update_fleet_model(model, cluster, set(), current, now=NOW)
    assert steps == 10  # every GPU of the third round, whatever the second had left to move
    assert everything(model) == everything(build_fleet_model(cluster, third, now=NOW))
