"""The fleet model built from hand-written, realistic cluster objects and telemetry.

The objects follow what the real API server, Kueue and KServe write (and the upstream samples in
/work/shared/samples), including their gaps: missing annotations, missing status, quantities as
strings. ``fleet_cluster()`` and ``fleet_telemetry()`` are reused by tests/test_api_contract.py.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import yaml

from backend.fleet import GpuRules, build_fleet_model
from backend.fleet.objects import count, timestamp
from backend.fleet.query import QueryError, decode_cursor, encode_cursor
from backend.k8s.quantity import quantity_value
from backend.schemas import (
    DataFreshness,
    Page,
    ProblemSeverity,
    QuotaMode,
    Tenant,
    WorkloadKind,
    WorkloadStatus,
)
from backend.telemetry.dcgm import parse_dcgm

SAMPLES = Path("/work/shared/samples")
H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-80GB"
TS = "2026-11-28T10:00:00Z"


# -- hand-written objects ------------------------------------------------------------------------


def _meta(name: str, ns: str | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{ns}-{name}", "creationTimestamp": TS}
    if ns:
        meta["namespace"] = ns
    meta.update(extra)
    return meta


def _gpu_container(gpus: int | str, image: str = "registry.example/llm:1") -> dict[str, Any]:
    return {"name": "main", "image": image, "resources": {"limits": {"nvidia.com/gpu": gpus}}}


def _pod(
    name: str,
    ns: str,
    *,
    gpus: int | str,
    model: str,
    node: str | None = None,
    owner: tuple[str, str] | None = None,
    labels: dict[str, str] | None = None,
    phase: str | None = None,
    gated: bool = False,
    unschedulable: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeSelector": {"nvidia.com/gpu.product": model},
        "containers": [_gpu_container(gpus)],
    }
    status: dict[str, Any] = {"phase": phase or ("Running" if node else "Pending")}
    if node:
        spec["nodeName"] = node
        status["conditions"] = [{"type": "Ready", "status": "True"}]
        status["containerStatuses"] = [{"name": "main", "ready": True, "restartCount": 1}]
    if gated:
        spec["schedulingGates"] = [{"name": "kueue.x-k8s.io/admission"}]
        status["conditions"] = [
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
        ]
    if unschedulable:
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": unschedulable,
            }
        ]
    meta = _meta(name, ns, labels=labels or {})
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1]}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def _node(name: str, model: str | None, gpus: int, *, ready: bool = True, cordoned: bool = False):
    labels = {"kubernetes.io/hostname": name}
    if model:
        labels["nvidia.com/gpu.product"] = model
    status: dict[str, Any] = {
        "conditions": [{"type": "Ready", "status": "True" if ready else "Unknown"}],
        "capacity": {"cpu": "96", "nvidia.com/gpu": str(gpus)} if gpus else {"cpu": "8"},
        "allocatable": {"cpu": "95", "nvidia.com/gpu": str(gpus)} if gpus else {"cpu": "8"},
    }
    spec = {"unschedulable": True} if cordoned else {}
    return {"kind": "Node", "metadata": _meta(name, labels=labels), "spec": spec, "status": status}


def _rs(name: str, ns: str, deployment: str, revision: str | None, cause: str | None, **status):
    annotations = {}
    if revision is not None:
        annotations["deployment.kubernetes.io/revision"] = revision
    if cause is not None:
        annotations["kubernetes.io/change-cause"] = cause
    return {
        "kind": "ReplicaSet",
        "metadata": _meta(
            name,
            ns,
            annotations=annotations,
            ownerReferences=[{"kind": "Deployment", "name": deployment, "controller": True}],
        ),
        "spec": {
            "replicas": status.get("replicas", 0),
            "template": {"spec": {"containers": [_gpu_container(4, f"llm:{revision}")]}},
        },
        "status": status,
    }


def _deployment(
    name: str,
    ns: str,
    *,
    replicas: int,
    ready: int,
    gpus: int,
    model: str = H100,
    revision: str = "1",
    labels: dict[str, str] | None = None,
    spec_extra: dict[str, Any] | None = None,
    status_extra: dict[str, Any] | None = None,
):
    status = {
        "observedGeneration": 2,
        "replicas": replicas,
        "readyReplicas": ready,
        "updatedReplicas": replicas,
        "availableReplicas": ready,
    }
    status.update(status_extra or {})
    spec = {
        "replicas": replicas,
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "nodeSelector": {"nvidia.com/gpu.product": model},
                "containers": [_gpu_container(gpus)],
            },
        },
    }
    spec.update(spec_extra or {})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(
            name,
            ns,
            generation=2,
            labels=labels or {},
            annotations={"deployment.kubernetes.io/revision": revision},
        ),
        "spec": spec,
        "status": status,
    }


def _event(name: str, ns: str, kind: str, obj: str, reason: str, message: str, when: str, **kw):
    return {
        "kind": "Event",
        "metadata": _meta(name, ns),
        "involvedObject": {"kind": kind, "name": obj, "namespace": ns},
        "reason": reason,
        "message": message,
        "type": kw.get("type", "Normal"),
        "count": kw.get("count", 1),
        "lastTimestamp": when,
    }


def _kueue_workload(name, ns, owner, *, count_, gpus, model, admitted=False, message=None):
    status: dict[str, Any] = {}
    if admitted:
        status["admission"] = {"clusterQueue": "team-a"}
        status["conditions"] = [{"type": "Admitted", "status": "True"}]
    else:
        status["conditions"] = [
            {
                "type": "QuotaReserved",
                "status": "False",
                "reason": "Pending",
                "message": message or "waiting",
            }
        ]
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": _meta(name, ns, ownerReferences=[{"kind": owner[0], "name": owner[1]}]),
        "spec": {
            "queueName": "team-queue",
            "podSets": [
                {
                    "name": "main",
                    "count": count_,
                    "template": {
                        "spec": {
                            "nodeSelector": {"nvidia.com/gpu.product": model},
                            "containers": [_gpu_container(gpus)],
                        }
                    },
                }
            ],
        },
        "status": status,
    }


def _by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects}


WHISPER_MESSAGE = (
    "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in "
    "flavor h100, 2 more needed"
)
QUOTA_MESSAGE = (
    'pods "embedder-7d9-x" is forbidden: exceeded quota: gpu-quota, requested: '
    "requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=4, limited: requests.nvidia.com/gpu=4"
)


def _sample_cluster_queue() -> dict[str, Any]:
    """The upstream Kueue sample (v1beta2), made team-b's queue, with a v1beta1 ``cohort``."""
    queue = yaml.safe_load((SAMPLES / "kueue-clusterqueue-gpu.yaml").read_text())
    queue["metadata"]["labels"] = {"opsconsole.io/tenant": "team-b"}
    queue["spec"]["cohort"] = "shared"
    queue["status"] = {
        "flavorsUsage": [
            {
                "name": "tas-flavor",
                "resources": [
                    {"name": "cpu", "total": "10"},
                    {"name": "nvidia.com/gpu", "total": "2", "borrowed": "0"},
                ],
            }
        ]
    }
    return queue


def _sample_isvc() -> dict[str, Any]:
    """The upstream KServe canary sample, with the status KServe writes during the canary."""
    isvc = yaml.safe_load((SAMPLES / "kserve-inferenceservice-canary.yaml").read_text())
    isvc["metadata"]["namespace"] = "team-b"
    isvc["metadata"]["creationTimestamp"] = TS
    isvc["spec"]["predictor"]["model"]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    isvc["status"] = {
        "conditions": [{"type": "Ready", "status": "True"}],
        "components": {
            "predictor": {
                "latestCreatedRevision": "sklearn-iris-predictor-00002",
                "latestReadyRevision": "sklearn-iris-predictor-00002",
                "latestRolledoutRevision": "sklearn-iris-predictor-00001",
                "previousRolledoutRevision": "sklearn-iris-predictor-00001",
                "traffic": [
                    {
                        "latestRevision": True,
                        "percent": 10,
                        "revisionName": "sklearn-iris-predictor-00002",
                        "tag": "latest",
                    },
                    {
                        "latestRevision": False,
                        "percent": 90,
                        "revisionName": "sklearn-iris-predictor-00001",
                        "tag": "prev",
                    },
                ],
            }
        },
    }
    return isvc


def fleet_cluster() -> dict[str, dict[tuple[str, str], dict[str, Any]]]:
    """A small fleet exercising Kueue and ResourceQuota tenants, every workload status and KServe."""
    tenant = "opsconsole.io/tenant"
    namespaces = [
        {"kind": "Namespace", "metadata": _meta("team-a", labels={tenant: "team-a"})},
        {"kind": "Namespace", "metadata": _meta("team-a-dev", labels={tenant: "team-a"})},
        {"kind": "Namespace", "metadata": _meta("team-b", labels={tenant: "team-b"})},
        {"kind": "Namespace", "metadata": _meta("team-c", labels={tenant: "team-c"})},
        {"kind": "Namespace", "metadata": _meta("kube-system")},
    ]
    nodes = [
        _node("node-1", H100, 8),
        _node("node-2", H100, 8, cordoned=True),
        _node("node-3", A100, 4, ready=False),
        _node("cpu-1", None, 0),
    ]
    flavors = [
        {"metadata": _meta("h100"), "spec": {"nodeLabels": {"nvidia.com/gpu.product": H100}}},
        {"metadata": _meta("a100"), "spec": {"nodeLabels": {"nvidia.com/gpu.product": A100}}},
        {"metadata": _meta("tas-flavor"), "spec": {}},
    ]
    team_a_queue = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": _meta("team-a", labels={tenant: "team-a"}),
        "spec": {
            "cohortName": "research",
            "resourceGroups": [
                {
                    "coveredResources": ["nvidia.com/gpu"],
                    "flavors": [
                        {
                            "name": "h100",
                            "resources": [
                                {"name": "nvidia.com/gpu", "nominalQuota": 8, "borrowingLimit": 4}
                            ],
                        },
                        {
                            "name": "a100",
                            "resources": [
                                {"name": "nvidia.com/gpu", "nominalQuota": "4", "lendingLimit": 2}
                            ],
                        },
                    ],
                }
            ],
        },
        "status": {
            "flavorsUsage": [
                {
                    "name": "h100",
                    "resources": [{"name": "nvidia.com/gpu", "total": 10, "borrowed": 2}],
                },
                {"name": "a100", "resources": [{"name": "nvidia.com/gpu", "total": 0}]},
            ],
            "pendingWorkloads": 2,
        },
    }
    quotas = [
        {
            "kind": "ResourceQuota",
            "metadata": _meta("gpu-quota", "team-c"),
            "spec": {"hard": {"requests.nvidia.com/gpu": "4"}},
            "status": {
                "hard": {"requests.nvidia.com/gpu": "4"},
                "used": {"requests.nvidia.com/gpu": "4"},
            },
        }
    ]
    llama_labels = {
        "opsconsole.io/model": "llama-70b",
        "opsconsole.io/stage": "production",
        "kueue.x-k8s.io/queue-name": "team-queue",
    }
    deployments = [
        _deployment(
            "llama-70b", "team-a", replicas=2, ready=2, gpus=4, revision="3", labels=llama_labels
        ),
        _deployment("mistral", "team-a", replicas=1, ready=1, gpus=1, spec_extra={"paused": True}),
        _deployment(
            "whisper",
            "team-a",
            replicas=2,
            ready=0,
            gpus=1,
            labels={"kueue.x-k8s.io/queue-name": "team-queue"},
            status_extra={"readyReplicas": None, "availableReplicas": None},
        ),
        _deployment("embedder", "team-c", replicas=3, ready=2, gpus=1, model=A100),
        _deployment(
            "broken",
            "team-b",
            replicas=1,
            ready=0,
            gpus=1,
            status_extra={
                "conditions": [
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": 'ReplicaSet "broken-5f" has timed out progressing.',
                    }
                ]
            },
        ),
        _deployment("coredns", "kube-system", replicas=2, ready=2, gpus=0),
        _deployment(
            "sklearn-iris-predictor",
            "team-b",
            replicas=1,
            ready=1,
            gpus=1,
            labels={"serving.kserve.io/inferenceservice": "sklearn-iris"},
        ),
    ]
    replicasets = [
        _rs("llama-70b-0a", "team-a", "llama-70b", None, None),
        _rs("llama-70b-1b", "team-a", "llama-70b", "1", "initial release v1"),
        _rs("llama-70b-2c", "team-a", "llama-70b", "2", "<none>"),
        _rs("llama-70b-3d", "team-a", "llama-70b", "3", "bump to v3", replicas=2, readyReplicas=2),
        _rs("whisper-5c", "team-a", "whisper", "1", None, replicas=2),
        _rs("embedder-7d9", "team-c", "embedder", "1", None, replicas=3, readyReplicas=2),
        _rs("broken-5f", "team-b", "broken", "1", None, replicas=1),
        # KServe raw deployment mode: predictor Deployment -> ReplicaSet -> pods
        _rs("sklearn-iris-predictor-7f", "team-b", "sklearn-iris-predictor", "4", None),
    ]
    pods = [
        _pod(
            "llama-70b-3d-aaa",
            "team-a",
            gpus=4,
            model=H100,
            node="node-1",
            owner=("ReplicaSet", "llama-70b-3d"),
        ),
        _pod(
            "llama-70b-3d-bbb",
            "team-a",
            gpus="4",
            model=H100,
            node="node-1",
            owner=("ReplicaSet", "llama-70b-3d"),
        ),
        _pod(
            "whisper-5c-1",
            "team-a",
            gpus=1,
            model=H100,
            owner=("ReplicaSet", "whisper-5c"),
            gated=True,
        ),
        _pod(
            "whisper-5c-2",
            "team-a",
            gpus=1,
            model=H100,
            owner=("ReplicaSet", "whisper-5c"),
            gated=True,
        ),
        _pod(
            "embedder-7d9-1",
            "team-c",
            gpus=1,
            model=A100,
            node="node-3",
            owner=("ReplicaSet", "embedder-7d9"),
        ),
        _pod(
            "embedder-7d9-2",
            "team-c",
            gpus=1,
            model=A100,
            node="node-3",
            owner=("ReplicaSet", "embedder-7d9"),
        ),
        _pod(
            "broken-5f-1",
            "team-b",
            gpus=1,
            model=H100,
            owner=("ReplicaSet", "broken-5f"),
            unschedulable="0/4 nodes are available: 4 Insufficient nvidia.com/gpu.",
        ),
        _pod(
            "sklearn-iris-predictor-00001-x",
            "team-b",
            gpus=1,
            model=H100,
            node="node-2",
            owner=("ReplicaSet", "sklearn-iris-predictor-7f"),
            labels={
                "serving.kserve.io/inferenceservice": "sklearn-iris",
                "serving.knative.dev/revision": "sklearn-iris-predictor-00001",
            },
        ),
        _pod(
            "sklearn-iris-predictor-00002-y",
            "team-b",
            gpus=1,
            model=H100,
            node="node-2",
            labels={
                "serving.kserve.io/inferenceservice": "sklearn-iris",
                "serving.knative.dev/revision": "sklearn-iris-predictor-00002",
            },
        ),
        _pod(
            "train-2-abc",
            "team-b",
            gpus=2,
            model=A100,
            node="node-3",
            owner=("Job", "train-2"),
            labels={"batch.kubernetes.io/job-name": "train-2"},
        ),
        _pod(
            "train-1-done",
            "team-a",
            gpus=8,
            model=H100,
            node="node-1",
            owner=("Job", "train-1"),
            phase="Succeeded",
        ),
    ]
    jobs = [
        {
            "kind": "Job",
            "metadata": _meta("train-1", "team-a"),
            "spec": {"parallelism": 1, "template": {"spec": {"containers": [_gpu_container(8)]}}},
            "status": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1},
        },
        {
            "kind": "Job",
            "metadata": _meta("train-2", "team-b"),
            "spec": {"parallelism": 1, "template": {"spec": {"containers": [_gpu_container(2)]}}},
            "status": {"active": 1, "ready": 1},
        },
        {
            "kind": "Job",
            "metadata": _meta(
                "finetune", "team-a-dev", labels={"kueue.x-k8s.io/queue-name": "team-queue"}
            ),
            "spec": {
                "parallelism": 4,
                "suspend": True,
                "template": {
                    "spec": {
                        "nodeSelector": {"nvidia.com/gpu.product": A100},
                        "containers": [_gpu_container(2)],
                    }
                },
            },
            "status": {},
        },
    ]
    workloads = [
        _kueue_workload(
            "replicaset-whisper-5c",
            "team-a",
            ("ReplicaSet", "whisper-5c"),
            count_=2,
            gpus=1,
            model=H100,
            message=WHISPER_MESSAGE,
        ),
        _kueue_workload(
            "job-finetune",
            "team-a-dev",
            ("Job", "finetune"),
            count_=4,
            gpus=2,
            model=A100,
            message="insufficient quota for nvidia.com/gpu in flavor a100",
        ),
        _kueue_workload(
            "replicaset-llama-70b-3d",
            "team-a",
            ("ReplicaSet", "llama-70b-3d"),
            count_=2,
            gpus=4,
            model=H100,
            admitted=True,
        ),
    ]
    events = [
        _event(
            "embedder-7d9.1",
            "team-c",
            "ReplicaSet",
            "embedder-7d9",
            "FailedCreate",
            QUOTA_MESSAGE,
            "2026-11-28T10:05:00Z",
            type="Warning",
            count=7,
        ),
        _event(
            "llama.1",
            "team-a",
            "Deployment",
            "llama-70b",
            "ScalingReplicaSet",
            "Scaled up replica set llama-70b-3d to 2",
            "2026-11-28T10:01:00Z",
        ),
        _event(
            "llama.2",
            "team-a",
            "Pod",
            "llama-70b-3d-aaa",
            "Pulled",
            "Container image pulled",
            "2026-11-28T10:03:00Z",
        ),
        _event(
            "llama.3",
            "team-a",
            "ReplicaSet",
            "llama-70b-3d",
            "SuccessfulCreate",
            "Created pod: llama-70b-3d-aaa",
            "2026-11-28T10:02:00Z",
        ),
    ]
    return {
        "namespaces": _by_key(namespaces),
        "nodes": _by_key(nodes),
        "resourceflavors": _by_key(flavors),
        "clusterqueues": _by_key([team_a_queue, _sample_cluster_queue()]),
        "resourcequotas": _by_key(quotas),
        "deployments": _by_key(deployments),
        "replicasets": _by_key(replicasets),
        "pods": _by_key(pods),
        "jobs": _by_key(jobs),
        "workloads": _by_key(workloads),
        "events": _by_key(events),
        "inferenceservices": _by_key([_sample_isvc()]),
        "localqueues": {},
    }


@dataclass(slots=True)
class Sample:
    """A stand-in with GpuSample's fields (the telemetry's own class is used where the parser is needed)."""

    uuid: str
    gpu: int
    node: str | None
    model_name: str | None = "NVIDIA H100 80GB HBM3"
    mig_profile: str | None = None
    utilization: float | None = None
    engine_active: float | None = None
    fb_used_mib: float | None = None
    fb_free_mib: float | None = None
    power_watts: float | None = None
    temperature_c: float | None = None
    memory_temperature_c: float | None = None
    sm_clock_mhz: float | None = None
    last_xid: int | None = 0
    pod: str | None = None
    namespace: str | None = None
    sampled_at: float = 1_764_324_000.0


@dataclass
class Snapshot:
    samples: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list[float | None]] = field(default_factory=dict)
    completed_at: float | None = 1_764_324_000.0
    sources: int = 1
    errors: int = 0


def fleet_telemetry() -> Snapshot:
    """node-1 fully described (pods, an idle GPU, an XID, a hot GPU), node-3 half, node-2 not."""
    snap = Snapshot()
    for i in range(8):
        pod = None
        if i < 4:
            pod = "llama-70b-3d-aaa"
        elif i < 8 and i >= 4:
            pod = "llama-70b-3d-bbb"
        sample = Sample(
            uuid=f"GPU-n1-{i}",
            gpu=i,
            node="node-1",
            utilization=2.0 if i == 1 else 50.0 + i,
            fb_used_mib=1000.0,
            fb_free_mib=80000.0,
            power_watts=300.0,
            temperature_c=88.0 if i == 3 else 60.0,
            last_xid=79 if i == 2 else 0,
            pod=pod,
            namespace="team-a",
        )
        snap.samples[sample.uuid] = sample
        snap.history[sample.uuid] = [10.0, None, 30.0]
    for i in range(2):
        sample = Sample(
            uuid=f"GPU-n3-{i}",
            gpu=i,
            node="node-3",
            model_name="NVIDIA A100-SXM4-80GB",
            utilization=None if i else 75.0,
            pod=f"embedder-7d9-{i + 1}",
            namespace="team-c",
        )
        snap.samples[sample.uuid] = sample
    return snap


@pytest.fixture(scope="module")
def model():
    return build_fleet_model(fleet_cluster(), fleet_telemetry(), now=1_764_324_000.0)


# -- tenants -------------------------------------------------------------------------------------


def test_kueue_tenant_quota_per_gpu_model_with_borrowing_and_pending(model):
    tenant = model.tenant("team-a")
    assert tenant.quota_mode == QuotaMode.KUEUE
    assert tenant.namespaces == ["team-a", "team-a-dev"]
    assert tenant.cluster_queue == "team-a"
    assert tenant.cohort == "research"
    quotas = {q.gpu_model: q for q in tenant.quotas}
    h100, a100 = quotas[H100], quotas[A100]
    assert (h100.flavor, h100.nominal, h100.borrowing_limit, h100.lending_limit) == (
        "h100",
        8,
        4,
        None,
    )
    assert (h100.used, h100.borrowed, h100.pending) == (10, 2, 2)
    assert (a100.nominal, a100.lending_limit, a100.used, a100.pending) == (4, 2, 0, 8)
    assert (tenant.gpu_quota, tenant.gpu_used, tenant.gpu_borrowed, tenant.gpu_pending) == (
        12,
        10,
        2,
        10,
    )
    # llama-70b, mistral, whisper, train-1, finetune
    assert tenant.workloads == 5
    assert tenant.workloads_pending == 2
    # GPUs of team-a pods: 50..57 except GPU 1 at 2 %
    utils = [50.0 + i for i in range(8) if i != 1] + [2.0]
    assert tenant.utilization == pytest.approx(sum(utils) / len(utils))


def test_upstream_kueue_sample_queue_gives_an_any_model_quota(model):
    tenant = model.tenant("team-b")
    assert tenant.quota_mode == QuotaMode.KUEUE
    assert tenant.cluster_queue == "tas-cluster-queue"
    assert tenant.cohort == "shared"  # v1beta1 spelling
    assert len(tenant.quotas) == 1
    quota = tenant.quotas[0]
    assert (quota.gpu_model, quota.flavor, quota.nominal, quota.used) == ("*", "tas-flavor", 16, 2)
    assert quota.borrowing_limit is None
    assert tenant.utilization is None  # no telemetry for its pods


def test_resourcequota_tenant_uses_hard_and_used_and_counts_refused_gpus(model):
    tenant = model.tenant("team-c")
    assert tenant.quota_mode == QuotaMode.RESOURCE_QUOTA
    assert tenant.cluster_queue is None
    [quota] = tenant.quotas
    assert (quota.gpu_model, quota.flavor, quota.nominal, quota.used) == ("*", None, 4, 4)
    # embedder wants 3 x 1 GPU, holds 2: one GPU refused by the quota
    assert quota.pending == 1 and tenant.gpu_pending == 1
    assert tenant.utilization == pytest.approx(75.0)


def test_tenants_are_listed_by_name_and_unknown_is_none(model):
    assert [t.name for t in model.tenants.items] == ["team-a", "team-b", "team-c"]
    assert model.tenant("nope") is None


# -- workloads -----------------------------------------------------------------------------------


def _workloads(model) -> dict[str, Any]:
    return {f"{w.namespace}/{w.name}": w for w in model.workloads.items}


def test_workload_scope_excludes_system_and_kserve_predictor_deployments(model):
    names = set(_workloads(model))
    assert "kube-system/coredns" not in names
    assert "team-b/sklearn-iris-predictor" not in names
    assert {"team-a/llama-70b", "team-b/sklearn-iris", "team-a-dev/finetune"} <= names


def test_running_deployment_row(model):
    w = _workloads(model)["team-a/llama-70b"]
    assert w.kind == WorkloadKind.DEPLOYMENT and w.status == WorkloadStatus.RUNNING
    assert (w.tenant, w.model, w.stage, w.queue) == (
        "team-a",
        "llama-70b",
        "production",
        "team-queue",
    )
    assert (w.replicas, w.ready_replicas, w.gpus, w.gpus_requested) == (2, 2, 8, 8)
    assert (w.gpu_model, w.revision) == (H100, "3")
    assert w.created is not None and w.created.tzinfo is not None


def test_statuses_and_messages(model):
    rows = _workloads(model)
    assert rows["team-a/mistral"].status == WorkloadStatus.PAUSED
    whisper = rows["team-a/whisper"]
    assert whisper.status == WorkloadStatus.PENDING
    assert whisper.message == WHISPER_MESSAGE
    assert (whisper.gpus, whisper.gpus_requested) == (0, 2)
    embedder = rows["team-c/embedder"]
    assert embedder.status == WorkloadStatus.DEGRADED
    assert "exceeded quota: gpu-quota" in embedder.message
    broken = rows["team-b/broken"]
    assert broken.status == WorkloadStatus.DEGRADED
    assert broken.message.startswith("rollout failed:")
    assert broken.rollout is not None and broken.rollout.stuck and not broken.rollout.done
    assert broken.rollout.message == 'deployment "broken" exceeded its progress deadline'
    assert rows["team-a/mistral"].rollout is not None
    assert rows["team-a/train-1"].status == WorkloadStatus.SUCCEEDED
    assert rows["team-b/train-2"].status == WorkloadStatus.RUNNING
    assert rows["team-b/train-2"].gpus == 2
    finetune = rows["team-a-dev/finetune"]
    assert finetune.status == WorkloadStatus.PENDING
    assert finetune.message == "insufficient quota for nvidia.com/gpu in flavor a100"
    assert (finetune.replicas, finetune.gpus_requested, finetune.gpu_model) == (4, 8, A100)


def test_unschedulable_pod_makes_a_fresh_deployment_pending():
    cluster = fleet_cluster()
    broken = cluster["deployments"][("team-b", "broken")]
    broken["status"].pop("conditions")
    model = build_fleet_model(cluster, None)
    row = _workloads(model)["team-b/broken"]
    assert row.status == WorkloadStatus.PENDING
    assert "Insufficient nvidia.com/gpu" in row.message


def test_canary_inference_service_from_upstream_sample(model):
    isvc = _workloads(model)["team-b/sklearn-iris"]
    assert isvc.kind == WorkloadKind.INFERENCE_SERVICE
    assert isvc.status == WorkloadStatus.PROGRESSING
    assert isvc.canary_percent == 10
    assert isvc.revision == "sklearn-iris-predictor-00002"
    assert (isvc.replicas, isvc.ready_replicas, isvc.gpus) == (2, 2, 2)
    detail = model.workload("team-b", "InferenceService", "sklearn-iris")
    revisions = [(r.revision, r.traffic_percent, r.tag, r.current) for r in detail.revisions]
    assert revisions == [
        ("sklearn-iris-predictor-00002", 10, "latest", True),
        ("sklearn-iris-predictor-00001", 90, "prev", False),
    ]
    assert detail.traffic is not None and detail.traffic.observed
    split = [(r.revision, r.percent, r.tag, r.latest) for r in detail.traffic.revisions]
    assert split == [
        ("sklearn-iris-predictor-00002", 10, "latest", True),
        ("sklearn-iris-predictor-00001", 90, "prev", False),
    ]
    assert [r.replicas for r in detail.revisions] == [1, 1]
    pods = [(p.name, p.revision) for p in detail.pods]
    assert pods == [
        ("sklearn-iris-predictor-00001-x", "sklearn-iris-predictor-00001"),
        ("sklearn-iris-predictor-00002-y", "sklearn-iris-predictor-00002"),
    ]


def test_deployment_revisions_newest_first_with_change_causes(model):
    detail = model.workload("team-a", "deployment", "llama-70b")
    assert [r.revision for r in detail.revisions] == ["3", "2", "1", "0"]
    causes = [r.change_cause for r in detail.revisions]
    assert causes == ["bump to v3", None, "initial release v1", None]
    assert [r.current for r in detail.revisions] == [True, False, False, False]
    assert detail.revisions[0].image == "llm:3"
    assert (detail.revisions[0].replicas, detail.revisions[0].ready_replicas) == (2, 2)


def test_workload_detail_pods_events_conditions(model):
    detail = model.workload("team-a", "DEPLOYMENT", "llama-70b")
    assert [p.name for p in detail.pods] == ["llama-70b-3d-aaa", "llama-70b-3d-bbb"]
    pod = detail.pods[0]
    assert (pod.node, pod.phase, pod.ready, pod.restarts, pod.gpus, pod.revision) == (
        "node-1",
        "Running",
        True,
        1,
        4,
        "3",
    )
    # events of the Deployment, its ReplicaSets and its pods, newest first
    assert [e.reason for e in detail.events] == ["Pulled", "SuccessfulCreate", "ScalingReplicaSet"]
    assert detail.events[0].object == "Pod/llama-70b-3d-aaa"
    assert detail.images == ["registry.example/llm:1"]
    assert not detail.paused
    assert model.workload("team-a", "deployment", "mistral").paused
    embedder = model.workload("team-c", "deployment", "embedder")
    assert embedder.events[0].count == 7 and embedder.events[0].type == "Warning"
    broken = model.workload("team-b", "deployment", "broken")
    assert broken.conditions[0]["reason"] == "ProgressDeadlineExceeded"


def test_unknown_workload_or_kind_is_none(model):
    assert model.workload("team-a", "deployment", "nope") is None
    assert model.workload("team-a", "statefulset", "llama-70b") is None


# -- nodes and GPUs ------------------------------------------------------------------------------


def test_nodes_allocation_readiness_and_telemetry_aggregates(model):
    node1, node2, node3 = (model.node(n) for n in ("node-1", "node-2", "node-3"))
    assert (node1.gpu_model, node1.gpus_capacity, node1.gpus_allocatable) == (H100, 8, 8)
    assert node1.gpus_allocated == 8  # the Succeeded train-1 pod no longer holds GPUs
    assert node1.pods == 2
    assert node1.max_temperature_c == 88.0 and node1.xid_gpus == 1
    assert node1.power_watts == pytest.approx(2400.0)
    assert node1.memory_total_mib == pytest.approx(8 * 81000.0)
    assert node2.cordoned and node2.ready and node2.utilization is None
    assert not node3.ready
    assert model.node("cpu-1").gpus_capacity == 0
    assert model.node("nope") is None


def test_gpu_joined_to_pod_tenant_and_workload(model):
    gpus = {g.uuid: g for g in model.gpus.items}
    gpu = gpus["GPU-n1-0"]
    assert (gpu.node, gpu.index, gpu.model) == ("node-1", 0, H100)
    assert (gpu.pod, gpu.namespace, gpu.tenant) == ("llama-70b-3d-aaa", "team-a", "team-a")
    assert gpu.workload == "Deployment/llama-70b"
    assert gpu.allocated and not gpu.idle
    assert gpu.memory_total_mib == 81000.0
    assert gpu.history == [10.0, None, 30.0]
    assert gpu.sampled_at is not None and gpu.sampled_at.tzinfo is not None
    assert gpus["GPU-n1-1"].idle
    assert gpus["GPU-n3-1"].utilization is None and not gpus["GPU-n3-1"].idle


def test_gpus_without_telemetry_get_placeholders(model):
    node2 = [g for g in model.gpus.items if g.node == "node-2"]
    assert [g.uuid for g in node2] == [f"unknown:node-2:{i}" for i in range(8)]
    assert all(g.utilization is None and g.model == H100 for g in node2)
    # two isvc pods hold one GPU each on node-2
    assert sum(g.allocated for g in node2) == 2
    node3 = [g for g in model.gpus.items if g.node == "node-3"]
    assert [g.uuid for g in node3] == [
        "GPU-n3-0",
        "GPU-n3-1",
        "unknown:node-3:2",
        "unknown:node-3:3",
    ]
    assert sum(g.allocated for g in node3) == 4  # embedder 1 + 1 (telemetry), train-2 2 (placed)


def test_fleet_without_telemetry_lists_every_gpu():
    model = build_fleet_model(fleet_cluster(), None)
    assert len(model.gpus) == 8 + 8 + 4
    assert all(g.uuid.startswith("unknown:") and g.utilization is None for g in model.gpus.items)
    overview = model.overview(DataFreshness(synced=True))
    assert overview.totals.gpus == 20 and overview.totals.utilization is None
    assert overview.hottest == [] and overview.idlest == []


# -- overview ------------------------------------------------------------------------------------


def test_overview_totals_models_and_problems(model):
    overview = model.overview(DataFreshness(synced=True, telemetry_sources=2))
    totals = overview.totals
    assert (totals.nodes, totals.nodes_ready, totals.gpus, totals.tenants) == (4, 3, 20, 3)
    assert totals.gpus_allocated == 8 + 2 + 4 and totals.gpus_idle == 1
    assert totals.pods == 10  # the Succeeded pod is not counted
    models = {m.model: m for m in overview.gpu_models}
    h100 = models[H100]
    assert (h100.nodes, h100.total, h100.allocated, h100.idle, h100.in_use, h100.free) == (
        2,
        16,
        10,
        1,
        9,
        6,
    )
    assert overview.workloads_by_status["Pending"] == 2
    assert set(overview.workloads_by_status) == {s.value for s in WorkloadStatus}
    assert overview.tenants[0].name == "team-a"
    assert overview.hottest[0].uuid == "GPU-n1-3"
    assert overview.idlest[0].uuid == "GPU-n1-1"
    kinds = [(p.severity, p.kind, p.subject) for p in overview.problems]
    severities = [p.severity for p in overview.problems]
    order = [ProblemSeverity.CRITICAL, ProblemSeverity.WARNING, ProblemSeverity.INFO]
    assert severities == sorted(severities, key=order.index)
    assert (ProblemSeverity.CRITICAL, "node-not-ready", "node-3") in kinds
    assert (ProblemSeverity.CRITICAL, "xid", "node-1/gpu2") in kinds
    assert (ProblemSeverity.WARNING, "hot", "node-1/gpu3") in kinds
    assert (ProblemSeverity.WARNING, "pending", "team-a/whisper") in kinds
    # Past its progress deadline: a stuck rollout, flagged as such (no replica ready: critical).
    assert (ProblemSeverity.CRITICAL, "rollout", "team-b/broken") in kinds
    stuck = next(p for p in overview.problems if p.subject == "team-b/broken")
    assert stuck.message.startswith("rollout stuck: exceeded its progress deadline")
    assert overview.freshness.telemetry_sources == 2


def test_overview_json_matches_the_schema(model):
    fresh = DataFreshness(synced=True, cluster_age_seconds=1.5)
    body = orjson.loads(model.overview_json(fresh))
    assert body == model.overview(fresh).model_dump(mode="json")


def test_rules_change_idle_and_hot_thresholds():
    model = build_fleet_model(
        fleet_cluster(),
        fleet_telemetry(),
        rules=GpuRules(idle_utilization_percent=55.0, hot_temperature_c=95),
    )
    idle = {g.uuid for g in model.gpus.items if g.idle}
    assert idle == {"GPU-n1-0", "GPU-n1-1", "GPU-n1-2", "GPU-n1-3", "GPU-n1-4"}
    problems = model.overview(DataFreshness(synced=True)).problems
    assert not [p for p in problems if p.kind == "hot"]


# -- real DCGM samples through the exporter parser ----------------------------------------------


def test_real_dcgm_samples_join_the_model():
    readme = parse_dcgm((SAMPLES / "dcgm-exporter-readme-sample.prom").read_text(), node="node-1")
    server = parse_dcgm((SAMPLES / "dcgm-exporter-server-test-sample.prom").read_text())
    snap = Snapshot(samples={s.uuid: s for s in [*readme, *server]})
    cluster = fleet_cluster()
    cluster["nodes"][("", "testhost")] = _node("testhost", None, 1)
    model = build_fleet_model(cluster, snap)
    gpus = {g.uuid: g for g in model.gpus.items}
    readme_gpu = gpus["GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52"]
    assert readme_gpu.node == "node-1" and readme_gpu.index == 0
    assert readme_gpu.sm_clock_mhz == 139
    assert readme_gpu.memory_temperature_c is None  # the blank sentinel
    assert readme_gpu.pod is None and not readme_gpu.allocated
    server_gpu = gpus["GPU-00000000-0000-0000-0000-000000000000"]
    assert (server_gpu.node, server_gpu.model) == ("testhost", "NVIDIA T400 4GB")
    # node-1 GPU 0 is now described by the readme sample, not by a placeholder
    assert "unknown:node-1:0" not in gpus and "unknown:node-1:1" in gpus


# -- robustness ----------------------------------------------------------------------------------


def test_quantities():
    assert quantity_value("2") == 2 and quantity_value(2) == 2 and quantity_value("1k") == 1000
    assert (
        quantity_value("500m") == 0.5
        and quantity_value("1Gi") == 2**30
        and quantity_value("1e3") == 1000
    )
    assert (
        quantity_value("abc") is None
        and quantity_value(None) is None
        and quantity_value(True) is None
    )
    assert (
        quantity_value("2x") is None
        and quantity_value(float("nan")) is None
        and quantity_value([]) is None
    )
    assert count("500m") == 1 and count("-3") == 0 and count("junk", default=5) == 5
    assert timestamp("2026-11-28T10:00:00Z").isoformat() == "2026-11-28T10:00:00+00:00"
    assert timestamp("yesterday") is None and timestamp(12) is None


def _junk_cluster() -> dict[str, Any]:
    """Objects with missing, None and wrongly typed fields everywhere."""
    return {
        "namespaces": {
            ("", "a"): {"metadata": {"name": "a", "labels": {"opsconsole.io/tenant": "t"}}},
            ("", "b"): {"metadata": None},
            ("", "c"): "not an object",
        },
        "nodes": {
            ("", "n"): {
                "metadata": {"name": "n", "labels": None},
                "spec": None,
                "status": {"capacity": {"nvidia.com/gpu": "1k"}, "conditions": None},
            },
            ("", "m"): {
                "metadata": {"name": "m"},
                "status": {"capacity": {"nvidia.com/gpu": "lots"}, "conditions": [None, "x"]},
            },
        },
        "pods": {
            ("a", "p"): {"metadata": {"name": "p", "namespace": "a"}, "spec": None, "status": None},
            ("a", "q"): {
                "metadata": {"name": "q", "namespace": "a", "ownerReferences": [None, {"kind": 3}]},
                "spec": {
                    "nodeName": "n",
                    "containers": [None, {"resources": {"limits": {"nvidia.com/gpu": "2"}}}],
                    "schedulingGates": "x",
                },
                "status": {"phase": None, "containerStatuses": [{"restartCount": "x"}]},
            },
        },
        "deployments": {
            ("a", "d"): {"metadata": {"name": "d", "namespace": "a"}, "spec": None},
            ("a", "e"): {
                "metadata": {"name": "e", "namespace": "a", "annotations": None},
                "spec": {"replicas": "three", "paused": "yes", "template": None},
                "status": {"readyReplicas": "2", "conditions": "broken"},
            },
        },
        "replicasets": {
            ("a", "r"): {
                "metadata": {
                    "name": "r",
                    "namespace": "a",
                    "ownerReferences": [{"kind": "Deployment", "name": "e"}],
                    "annotations": {"deployment.kubernetes.io/revision": "x"},
                }
            }
        },
        "jobs": {
            ("a", "j"): {
                "metadata": {"name": "j", "namespace": "a"},
                "status": {"conditions": [{"type": "Failed"}]},
            }
        },
        "inferenceservices": {
            ("a", "i"): {
                "metadata": {"name": "i", "namespace": "a"},
                "spec": {"predictor": None},
                "status": {"components": None},
            },
            ("a", "k"): {
                "metadata": {"name": "k", "namespace": "a"},
                "spec": {"predictor": {"canaryTrafficPercent": "abc"}},
                "status": {"components": {"predictor": {"traffic": [None, {"percent": "x"}]}}},
            },
        },
        "clusterqueues": {
            ("", "cq"): {
                "metadata": {"name": "cq", "labels": {"opsconsole.io/tenant": "t"}},
                "spec": {
                    "resourceGroups": [
                        None,
                        {
                            "flavors": [
                                {"resources": [{"name": "nvidia.com/gpu", "nominalQuota": "x"}]}
                            ]
                        },
                    ]
                },
                "status": {"flavorsUsage": "x"},
            },
        },
        "resourceflavors": {("", "f"): {"metadata": {"name": "f"}, "spec": None}},
        "workloads": {
            ("a", "w"): {
                "metadata": {"name": "w", "namespace": "a"},
                "spec": {"podSets": [{"count": "x"}, None]},
            }
        },
        "resourcequotas": {
            ("a", "rq"): {"metadata": {"name": "rq", "namespace": "a"}, "spec": {"hard": None}}
        },
        "events": {
            ("a", "ev"): {"metadata": {"name": "ev"}, "involvedObject": None},
            ("a", "ev2"): {
                "involvedObject": {"kind": "Deployment", "name": "e"},
                "count": "x",
                "lastTimestamp": "never",
            },
        },
        "localqueues": None,
    }


def test_malformed_and_missing_fields_do_not_crash():
    junk_samples = Snapshot(
        samples={
            "u": Sample(uuid="u", gpu=0, node=None, utilization=None, last_xid=None),
            "v": Sample(
                uuid="v",
                gpu="x",
                node="n",
                utilization="abc",
                temperature_c=float("nan"),
                power_watts=True,
                pod=7,
            ),
        },
        history={"u": None, "v": ["x", 1, None, 2.5]},
    )
    model = build_fleet_model(_junk_cluster(), junk_samples)
    weird = next(g for g in model.gpus.items if g.uuid == "v")
    assert (weird.node, weird.index, weird.utilization, weird.temperature_c) == ("n", 0, None, None)
    assert weird.power_watts is None and weird.pod == "7"
    assert weird.history == [None, 1.0, None, 2.5]
    assert model.node("n").gpus_capacity == 1000
    assert model.node("m").gpus_capacity == 0
    assert model.node("n").gpus_allocated == 2
    assert {w.name for w in model.workloads.items} == {"d", "e", "j", "i", "k"}
    for row in model.workloads.items:
        detail = model.workload(row.namespace, row.kind.value, row.name)
        assert detail is not None and json.loads(detail.model_dump_json())["name"] == row.name
    assert model.tenant("t").quota_mode == QuotaMode.KUEUE
    body = orjson.loads(model.overview_json(DataFreshness(synced=False)))
    assert body["totals"]["nodes"] == 2
    # the GPU of an unknown node, node n's GPU 0 from telemetry, and capped placeholders
    assert len(model.gpus) == 1 + 256


def test_empty_inputs_and_wrong_container_types():
    assert len(build_fleet_model({}, None).workloads) == 0
    assert len(build_fleet_model({"pods": None, "nodes": []}, None).nodes) == 0


def test_build_does_not_mutate_its_inputs():
    cluster = fleet_cluster()
    before = copy.deepcopy(cluster)
    build_fleet_model(cluster, fleet_telemetry())
    assert cluster == before


# -- query helpers -------------------------------------------------------------------------------


def page(table: Any, **query: Any) -> Any:
    """A page as the API serves it (``Table.page_json``), with attribute access to its fields."""
    return json.loads(table.page_json(**query), object_hook=lambda d: SimpleNamespace(**d))


def test_table_filters_sort_and_paging(model):
    gpus = model.gpus
    first = page(gpus, filters={"node": "node-1"}, sort="-temperature_c", limit=3)
    assert first.total == 8 and first.items[0].temperature_c == 88.0
    assert first.next is not None and decode_cursor(first.next) == 3
    rest = page(
        gpus, filters={"node": "node-1"}, sort="-temperature_c", cursor=first.next, limit=10
    )
    assert rest.total == 8 and len(rest.items) == 5 and rest.next is None
    # None last in both directions
    for sort in ("utilization", "-utilization"):
        values = [g.utilization for g in page(gpus, sort=sort, limit=1000).items]
        known = [v for v in values if v is not None]
        assert values[: len(known)] == known and all(v is None for v in values[len(known) :])
        assert known == sorted(known, reverse=sort.startswith("-"))
    assert page(gpus, filters={"model": "nvidia h100 80gb hbm3"}).total == 16
    assert page(gpus, filters={"tenant": "team-a", "idle": "true"}).total == 1
    assert page(gpus, q="LLAMA-70B-3D-AAA").total == 4
    assert page(gpus, filters={"node": "node-9"}).total == 0


def test_repeated_and_interleaved_queries_answer_as_a_fresh_table_does(model):
    """A table keeps its latest answers: each query, asked again after others that differ from
    it only in ``q``, the sort's direction, a filter's value or the page, answers as the first
    time, and as a table that never answered anything."""
    queries = [
        {"filters": {"idle": "true"}, "sort": "utilization"},
        {"filters": {"idle": "true"}, "sort": "-utilization"},
        {"filters": {"idle": "false"}, "sort": "utilization"},
        {"filters": {"node": "node-1"}, "sort": "-temperature_c", "q": "h100"},
        {"filters": {"node": "node-1"}, "sort": "-temperature_c", "q": "llama"},
        {"filters": {"node": "node-1", "idle": None}, "sort": "-temperature_c"},
        {"q": "team-a"},
        {"sort": "node"},
        {},
    ]
    asked = [(q, offset) for offset in (0, 2, 0) for q in queries]
    answers = [model.gpus.page_json(**q, offset=offset, limit=3) for q, offset in asked]
    cluster, telemetry = fleet_cluster(), fleet_telemetry()
    for (query, offset), answer in zip(asked, answers, strict=True):
        fresh = build_fleet_model(cluster, telemetry, now=1_764_324_000.0).gpus
        assert answer == fresh.page_json(**query, offset=offset, limit=3), (query, offset)
    assert len(set(answers)) > len(queries)  # the queries do answer differently
    with pytest.raises(QueryError, match="unknown filter"):  # errors are not kept as answers
        model.gpus.page_json(filters={"nope": "x"})
    with pytest.raises(QueryError, match="unknown filter"):
        model.gpus.page_json(filters={"nope": "x"})


def test_table_natural_sort_and_errors(model):
    workloads = model.workloads
    statuses = page(workloads, filters={"status": "pending"}).items
    assert {w.name for w in statuses} == {"whisper", "finetune"}
    assert page(workloads, filters={"kind": "JOB"}).total == 3
    with pytest.raises(QueryError, match="unknown sort field 'nope'; one of: namespace"):
        page(workloads, sort="nope")
    with pytest.raises(QueryError, match="unknown status 'sleepy'"):
        page(workloads, filters={"status": "sleepy"})
    with pytest.raises(QueryError, match="invalid cursor"):
        page(workloads, cursor="!!!")
    assert "history" not in model.gpus.sort_fields and "quotas" not in model.tenants.sort_fields
    names = [n.name for n in page(model.nodes, sort="name").items]
    assert names == ["cpu-1", "node-1", "node-2", "node-3"]


def test_page_json_equals_the_schema_dump(model):
    for table, query in (
        (model.gpus, {"sort": "-utilization", "limit": 5}),
        (model.workloads, {"filters": {"tenant": "team-a"}}),
        (model.tenants, {}),
        (model.nodes, {"offset": 1, "limit": 2}),
    ):
        selection = table.select(**query)
        assert orjson.loads(table.page_json(**query)) == {
            "items": [table.items[i].model_dump(mode="json") for i in selection.positions],
            "total": selection.total,
            "next": selection.next,
        }
    tenants = Page[Tenant].model_validate_json(model.tenants.page_json())
    assert tenants.total == len(model.tenants) and isinstance(tenants.items[0], Tenant)


def test_cursor_round_trip():
    for offset in (0, 1, 100, 123456):
        assert decode_cursor(encode_cursor(offset)) == offset
    with pytest.raises(QueryError):
        decode_cursor(encode_cursor(5).replace("o", "x") + "zz")


def test_replica_failure_condition_on_the_replicaset_explains_missing_replicas():
    cluster = fleet_cluster()
    cluster["events"].pop(("team-c", "embedder-7d9.1"))
    rs = cluster["replicasets"][("team-c", "embedder-7d9")]
    rs["status"]["conditions"] = [
        {
            "type": "ReplicaFailure",
            "status": "True",
            "reason": "FailedCreate",
            "message": QUOTA_MESSAGE,
        }
    ]
    row = _workloads(build_fleet_model(cluster, None))["team-c/embedder"]
    assert (row.status, row.message) == (WorkloadStatus.DEGRADED, QUOTA_MESSAGE)


def test_nodes_and_gpus_default_to_natural_name_order():
    nodes = [_node(name, H100, 1) for name in ("node-10", "node-2", "Node-1")]
    model = build_fleet_model({"nodes": _by_key(nodes)}, None)
    assert [n.name for n in model.nodes.items] == ["Node-1", "node-2", "node-10"]
    assert [g.node for g in model.gpus.items] == ["Node-1", "node-2", "node-10"]
    by_name = page(model.nodes, sort="-name").items
    assert [n.name for n in by_name] == ["node-10", "node-2", "Node-1"]
