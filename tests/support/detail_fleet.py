"""A small, hand-written fleet that looks like a real platform, for the detail screens.

Unlike ``generated_fleet``'s regular rows, these objects tell stories an operator knows: three GPU
models; a tenant borrowing beyond its Kueue quota with a Job waiting for more; a model release
(``team-a/llama-70b``) with a revision history and change-causes, one pod crash-looping and one
the scheduler cannot place; a KServe InferenceService (``serving/chat``) in a 20% canary; a node
that stopped reporting; GPUs with unknown readings, an XID error, a hot one, an idle one and a gap
in their history; and names and messages that look like markup or terminal escapes.

Everything is a cluster object or a telemetry sample, turned into screens by the real fleet model;
every time is relative to ``NOW`` (the model's build time and the clock the test app is given).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backend.conventions import (
    GPU_PRODUCT_LABEL,
    ISVC_LABEL,
    MODEL_LABEL,
    QUEUE_LABEL,
    STAGE_LABEL,
)
from backend.k8s.annotations import CHANGE_CAUSE_ANNOTATION, REVISION_ANNOTATION
from backend.telemetry.dcgm import GpuSample
from tests.support import objects as k8s
from tests.support.fleets import H100, SAMPLED_AT, Fleet

NOW = SAMPLED_AT
A100 = "NVIDIA-A100-SXM4-40GB"
L4 = "NVIDIA-L4"
MEMORY_MIB = {H100: 81_559.0, L4: 22_500.0}
HOSTILE = "x[bold]y[/"  # a tenant (and namespace) name that is also Rich markup
HOSTILE_POD = "x[bold]y"  # path-safe: a "/" in a URL segment cannot be routed
LLAMA_CAUSE = "bump to llama 4.1 [canary]"  # brackets that must stay literal
NO_NODE_FITS = (
    "0/4 nodes are available: 2 Insufficient nvidia.com/gpu, "
    "2 node(s) didn't match Pod's node affinity/selector."
)
CANARY = "chat-predictor-00003"
STABLE = "chat-predictor-00002"
POD_SUFFIXES = {CANARY: "6d8f-p2x4q", STABLE: "5c7b-k9m2w"}
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
KNATIVE_REVISION_LABEL = "serving.knative.dev/revision"


def ago(**delta: float) -> str:
    """An RFC 3339 timestamp ``delta`` before ``NOW``."""
    when = datetime.fromtimestamp(NOW, UTC) - timedelta(**delta)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def detail_fleet() -> Fleet:
    """The whole fleet: cluster objects and a telemetry snapshot taken at ``NOW``."""
    fleet = Fleet(
        k8s.cluster(
            *_platform(),
            *_llama(),
            *queued_job("finetune-7", "team-a"),
            *_training(),
            *_chat(),
            *_hostile(),
        )
    )
    _sample_h100_node_01(fleet)
    _sample_h100_node_02(fleet)
    for index, revision in enumerate((CANARY, STABLE)):
        _sample(
            fleet,
            "l4-node-01",
            index,
            L4,
            20.0 - 2 * index,
            pod=chat_pod(revision),
            ns="serving",
            temperature=55.0,
            power=40.0,
            used_mib=9_000.0,
        )
    return fleet


# -- nodes, tenants and quotas ---------------------------------------------------------------------


def _platform() -> list[k8s.Obj]:
    return [
        k8s.node("h100-node-01", H100, 8),
        k8s.node("h100-node-02", H100, 8),
        k8s.node("a100-node-01", A100, 4, ready=False, cordoned=True),
        k8s.node("l4-node-01", L4, 2),
        k8s.flavor("h100", H100),
        k8s.flavor("a100", A100),
        k8s.namespace("team-a", "team-a"),
        k8s.namespace("team-a-dev", "team-a"),
        k8s.namespace("team-b", "team-b"),
        k8s.namespace("serving", "serving"),
        k8s.namespace(HOSTILE, HOSTILE),
        # team-a borrows 2 H100s from the cohort beyond its nominal 12, and waits for 4 more.
        k8s.cluster_queue(
            "cq-team-a",
            "team-a",
            [
                ("h100", {"nominalQuota": 12, "borrowingLimit": 4}, {"total": 14, "borrowed": 2}),
                ("a100", {"nominalQuota": 4, "lendingLimit": 2}, {"total": 4, "borrowed": 0}),
            ],
            cohort="research",
            pending=1,
        ),
        k8s.cluster_queue(
            "cq-team-b", "team-b", [("a100", {"nominalQuota": 8}, {"total": 3})], cohort="research"
        ),
        k8s.resource_quota("gpu", "serving", hard=2, used=2),
    ]


# -- team-a: a model release, a training Job, a Job waiting for quota ------------------------------


def _llama() -> list[k8s.Obj]:
    """``team-a/llama-70b``: revision 4 rolled out to 3 pods; one crash-loops, one fits nowhere."""
    labels = {MODEL_LABEL: "llama-3-70b", STAGE_LABEL: "production", QUEUE_LABEL: "team-a-queue"}
    current = _llama_template("4.1")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": k8s.meta(
            "llama-70b",
            "team-a",
            ago(days=12),
            labels=labels,
            annotations={REVISION_ANNOTATION: "4", CHANGE_CAUSE_ANNOTATION: LLAMA_CAUSE},
            generation=4,
        ),
        "spec": {"replicas": 3, "template": current},
        "status": {
            "observedGeneration": 4,
            "replicas": 3,
            "updatedReplicas": 3,
            "readyReplicas": 2,
            "availableReplicas": 2,
        },
    }
    rs = "llama-70b-7c9f"
    owner = ("ReplicaSet", rs)
    return [
        deployment,
        k8s.replica_set(
            rs,
            "team-a",
            ago(hours=2),
            "llama-70b",
            current,
            revision=4,
            change_cause=LLAMA_CAUSE,
            replicas=3,
            ready=2,
        ),
        k8s.replica_set(
            "llama-70b-6b8d",
            "team-a",
            ago(days=3),
            "llama-70b",
            _llama_template("4.0"),
            revision=3,
        ),
        k8s.replica_set(
            "llama-70b-5f4c",
            "team-a",
            ago(days=9),
            "llama-70b",
            _llama_template("3.9"),
            revision=2,
            change_cause="kubectl set image deploy/llama-70b llama=llama:3.9",
        ),
        k8s.pod(
            f"{rs}-abcde",
            "team-a",
            ago(hours=2),
            current,
            node="h100-node-01",
            owner=owner,
            status=k8s.running(),
        ),
        k8s.pod(
            f"{rs}-fghij",
            "team-a",
            ago(hours=2),
            current,
            node="h100-node-02",
            owner=owner,
            status=k8s.running(restarts=1),
        ),
        k8s.pod(
            f"{rs}-klmno",
            "team-a",
            ago(minutes=30),
            current,
            owner=owner,
            status=k8s.unschedulable(NO_NODE_FITS),
        ),
        k8s.event(
            "team-a",
            ("Pod", f"{rs}-fghij"),
            "BackOff",
            f"Back-off restarting failed container main in pod {rs}-fghij_team-a",
            ago(minutes=2),
            warning=True,
            count=7,
        ),
        k8s.event(
            "team-a",
            ("Deployment", "llama-70b"),
            "ScalingReplicaSet",
            f"Scaled up replica set {rs} to 3",
            ago(hours=2),
        ),
    ]


def _llama_template(version: str) -> k8s.Obj:
    return k8s.template(4, H100, f"registry.local/llama:{version}", {"app": "llama-70b"})


def queued_job(name: str, ns: str) -> list[k8s.Obj]:
    """A Job of 4 H100s that Kueue keeps suspended: the tenant's quota has no room for it."""
    template = k8s.template(4, H100, "registry.local/train:2")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": k8s.meta(name, ns, ago(minutes=15), labels={QUEUE_LABEL: "team-a-queue"}),
        "spec": {"parallelism": 1, "suspend": True, "template": template},
        "status": {},
    }
    waiting = "couldn't assign flavors to pod set main: insufficient unused quota in flavor h100"
    workload = k8s.kueue_workload(f"job-{name}", ns, name, template, pods=1, waiting=waiting)
    return [job, workload]


def _training() -> list[k8s.Obj]:
    """``team-a/train-big``: three pods of 2 H100s, two on h100-node-01 and one on -02."""
    template = k8s.template(2, H100, "registry.local/train:2", {JOB_NAME_LABEL: "train-big"})
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": k8s.meta(
            "train-big", "team-a", ago(hours=6), labels={QUEUE_LABEL: "team-a-queue"}
        ),
        "spec": {"parallelism": 3, "template": template},
        "status": {"active": 3, "ready": 3},
    }
    nodes = ("h100-node-01", "h100-node-01", "h100-node-02")
    pods = [
        k8s.pod(
            f"train-big-{i}",
            "team-a",
            ago(hours=6),
            template,
            node=node,
            owner=("Job", "train-big"),
            status=k8s.running(),
        )
        for i, node in enumerate(nodes)
    ]
    return [job, *pods]


# -- serving: an InferenceService in a canary ------------------------------------------------------


def _chat() -> list[k8s.Obj]:
    """``serving/chat``: KServe routes 20% to revision 3 (the canary), 80% to revision 2."""
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": k8s.meta(
            "chat",
            "serving",
            ago(days=30),
            labels={MODEL_LABEL: "mistral-7b", STAGE_LABEL: "production"},
        ),
        "spec": {
            "predictor": {
                "canaryTrafficPercent": 20,
                "nodeSelector": {GPU_PRODUCT_LABEL: L4},
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "storageUri": "pvc://models/mistral-7b",
                    "resources": {"limits": {k8s.GPU: "1"}},
                },
            }
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "components": {
                "predictor": {
                    "latestCreatedRevision": CANARY,
                    "latestReadyRevision": CANARY,
                    "latestRolledoutRevision": STABLE,
                    "traffic": [
                        {
                            "revisionName": CANARY,
                            "percent": 20,
                            "tag": "latest",
                            "latestRevision": True,
                        },
                        {
                            "revisionName": STABLE,
                            "percent": 80,
                            "tag": "prev",
                            "latestRevision": False,
                        },
                    ],
                }
            },
        },
    }
    return [
        isvc,
        _predictor_pod(CANARY, ago(minutes=40)),
        _predictor_pod(STABLE, ago(days=4)),
    ]


def chat_pod(revision: str) -> str:
    """The name of the one pod of ``chat``'s revision ``revision``."""
    return f"{revision}-deployment-{POD_SUFFIXES[revision]}"


def _predictor_pod(revision: str, created: str) -> k8s.Obj:
    labels = {ISVC_LABEL: "chat", KNATIVE_REVISION_LABEL: revision}
    template = k8s.template(1, L4, "kserve/huggingfaceserver:v0.15", labels)
    return k8s.pod(
        chat_pod(revision), "serving", created, template, node="l4-node-01", status=k8s.running()
    )


# -- team-b: a release whose names and messages are hostile -------------------------------------


def _hostile() -> list[k8s.Obj]:
    """``team-b/x[bold]y``: its rollout timed out with a message holding a terminal escape."""
    template = k8s.template(3, A100, "registry.local/ranker:2", {"app": "ranker"})
    rs = f"{HOSTILE_POD}-5d9c"
    stuck = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": f'ReplicaSet "{rs}" has timed out progressing. \x1b[31mred?',
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": k8s.meta(
            HOSTILE_POD, "team-b", ago(days=2), annotations={REVISION_ANNOTATION: "1"}
        ),
        "spec": {"replicas": 1, "template": template},
        "status": {"replicas": 1, "readyReplicas": 1, "conditions": [stuck]},
    }
    return [
        deployment,
        k8s.replica_set(
            rs, "team-b", ago(days=2), HOSTILE_POD, template, revision=1, replicas=1, ready=1
        ),
        k8s.pod(
            f"{rs}-qrstu",
            "team-b",
            ago(days=2),
            template,
            node="a100-node-01",
            owner=("ReplicaSet", rs),
            status=k8s.running(),
        ),
    ]


# -- telemetry -------------------------------------------------------------------------------------


def _sample_h100_node_01(fleet: Fleet) -> None:
    """Busy: llama-70b on GPUs 0-3 (GPU 3 at 91°C), train-big on 4-7."""
    holders = ["llama-70b-7c9f-abcde"] * 4 + ["train-big-0"] * 2 + ["train-big-1"] * 2
    for index, pod in enumerate(holders):
        _sample(
            fleet,
            "h100-node-01",
            index,
            H100,
            95.0 - index,
            pod=pod,
            ns="team-a",
            temperature=91.0 if index == 3 else 70.0 + index,
            power=650.0 - index,
            used_mib=60_000.0,
            history=_history(90.0 - index),
        )


def _sample_h100_node_02(fleet: Fleet) -> None:
    """GPU 1 missed three scrapes, GPU 2 fell off the bus (XID 79), GPU 4 idles, GPU 5 reports
    nothing, GPUs 6 and 7 are free."""
    holders = ["llama-70b-7c9f-fghij"] * 4 + ["train-big-2"] * 2 + [None] * 2
    for index, pod in enumerate(holders):
        if index == 5:
            _unknown_sample(fleet, "h100-node-02", index, pod)
            continue
        utilization = 2.0 if index == 4 else 60.0
        _sample(
            fleet,
            "h100-node-02",
            index,
            H100,
            utilization,
            pod=pod,
            ns="team-a" if pod else None,
            xid=79 if index == 2 else 0,
            history=_history(utilization, gap=index == 1),
        )


def _sample(
    fleet: Fleet,
    node: str,
    index: int,
    model: str,
    utilization: float,
    *,
    pod: str | None,
    ns: str | None,
    temperature: float = 60.0,
    power: float = 300.0,
    used_mib: float = 20_000.0,
    xid: int = 0,
    history: list[float | None] | None = None,
) -> None:
    uuid = f"GPU-{node}-{index:04d}"
    total_mib = MEMORY_MIB[model]
    fleet.samples[uuid] = GpuSample(
        uuid=uuid,
        gpu=index,
        node=node,
        model_name=model,
        device=f"nvidia{index}",
        pci_bus_id=None,
        mig_profile=None,
        mig_instance=None,
        utilization=utilization,
        engine_active=utilization / 100.0,
        fb_used_mib=used_mib,
        fb_free_mib=total_mib - used_mib,
        power_watts=power,
        temperature_c=temperature,
        last_xid=xid,
        pod=pod,
        namespace=ns,
        sampled_at=NOW,
    )
    fleet.history[uuid] = history if history is not None else _history(utilization)


def _unknown_sample(fleet: Fleet, node: str, index: int, pod: str | None) -> None:
    """A GPU the exporter lists, with its holder, but without a single reading."""
    uuid = f"GPU-{node}-{index:04d}"
    fleet.samples[uuid] = GpuSample(
        uuid=uuid,
        gpu=index,
        node=node,
        model_name=H100,
        device=f"nvidia{index}",
        pci_bus_id=None,
        mig_profile=None,
        mig_instance=None,
        pod=pod,
        namespace="team-a" if pod else None,
        sampled_at=NOW,
    )


def _history(base: float, gap: bool = False) -> list[float | None]:
    """Forty samples wobbling around ``base``; with ``gap``, three missed scrapes near the end."""
    values: list[float | None] = [
        max(0.0, min(100.0, base + ((k * 37) % 21) - 10)) for k in range(40)
    ]
    if gap:
        values[30:33] = [None, None, None]
    return values
