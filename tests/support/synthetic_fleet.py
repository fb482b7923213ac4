"""A large synthetic fleet in memory: the slim objects of 1,000 nodes, 8,000 GPUs, 200 tenants,
~4,000 workloads and ~20,000 pods, with telemetry for every GPU, built without a sandbox.

The fleet model's benchmark (``bench/model_bench.py``) times builds and updates on it; the
incremental model's tests (``tests/test_fleet_incremental.py``) check updates against whole
builds on it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

MODELS = ("NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB", "NVIDIA-L40S")
TS = "2026-11-28T10:00:00Z"


# The kinds the fleet model reads, by their plural as the cluster cache keys them.
FLEET_KINDS = (
    "namespaces",
    "nodes",
    "pods",
    "events",
    "resourcequotas",
    "deployments",
    "replicasets",
    "jobs",
    "resourceflavors",
    "clusterqueues",
    "localqueues",
    "workloads",
    "inferenceservices",
)


@dataclass(slots=True)
class Sample:
    uuid: str
    gpu: int
    node: str | None
    model_name: str | None
    device: str | None = None
    pci_bus_id: str | None = None
    mig_profile: str | None = None
    mig_instance: str | None = None
    utilization: float | None = None
    engine_active: float | None = None
    fb_used_mib: float | None = None
    fb_free_mib: float | None = None
    power_watts: float | None = None
    temperature_c: float | None = None
    memory_temperature_c: float | None = None
    sm_clock_mhz: float | None = None
    last_xid: int | None = None
    energy_mj: float | None = None
    pod: str | None = None
    namespace: str | None = None
    container: str | None = None
    sampled_at: float = 0.0


@dataclass
class Snapshot:
    samples: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    completed_at: float | None = None
    sources: int = 0
    errors: int = 0


def _meta(name, ns="", **extra):
    meta = {"name": name, "uid": f"uid-{ns}-{name}", "creationTimestamp": TS}
    if ns:
        meta["namespace"] = ns
    meta.update(extra)
    return meta


def _pod_spec(model, gpus, node=None, gated=False):
    spec = {
        "nodeSelector": {"nvidia.com/gpu.product": model},
        "containers": [
            {
                "name": "main",
                "image": "registry.example/serve:1",
                "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
            }
        ],
    }
    if node:
        spec["nodeName"] = node
    if gated:
        spec["schedulingGates"] = [{"name": "kueue.x-k8s.io/admission"}]
    return spec


class FleetBuilder:
    """Synthetic slim objects shaped like the cluster cache's, placed on free GPUs."""

    def __init__(self, nodes: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.kinds: dict[str, dict] = {k: {} for k in FLEET_KINDS}
        self.free: list[list[int]] = []  # per node: free GPU indices
        self.node_names = [f"gpu-node-{i:04d}" for i in range(nodes)]
        self.allocation: dict[tuple[str, int], tuple[str, str]] = {}
        self.cursor = 0

    def add(self, kind, obj):
        meta = obj["metadata"]
        self.kinds[kind][(meta.get("namespace", ""), meta["name"])] = obj

    def build(self, tenants: int) -> dict:
        for i, name in enumerate(self.node_names):
            model = MODELS[i % len(MODELS)]
            labels = {"nvidia.com/gpu.product": model, "kubernetes.io/hostname": name}
            self.add(
                "nodes",
                {
                    "kind": "Node",
                    "metadata": _meta(name, labels=labels),
                    "spec": {},
                    "status": {
                        "capacity": {"nvidia.com/gpu": "8"},
                        "allocatable": {"nvidia.com/gpu": "8"},
                        "conditions": [{"type": "Ready", "status": "True"}],
                    },
                },
            )
            self.free.append(list(range(8)))
        for model in MODELS:
            flavor = model.lower()
            self.add(
                "resourceflavors",
                {
                    "metadata": _meta(flavor),
                    "spec": {"nodeLabels": {"nvidia.com/gpu.product": model}},
                },
            )
        for t in range(tenants):
            self._tenant(f"team-{t:03d}")
        return self.kinds

    def _place(self, model: str, gpus: int, pod_key: tuple[str, str]) -> str | None:
        for _ in range(len(self.node_names)):
            i = self.cursor % len(self.node_names)
            self.cursor += 1
            if MODELS[i % len(MODELS)] == model and len(self.free[i]) >= gpus:
                node = self.node_names[i]
                for _ in range(gpus):
                    self.allocation[(node, self.free[i].pop(0))] = pod_key
                return node
        return None

    def _tenant(self, tenant: str) -> None:
        ns = tenant
        self.add("namespaces", {"metadata": _meta(ns, labels={"opsconsole.io/tenant": tenant})})
        flavors = [
            {
                "name": m.lower(),
                "resources": [{"name": "nvidia.com/gpu", "nominalQuota": 16}],
            }
            for m in MODELS
        ]
        self.add(
            "clusterqueues",
            {
                "metadata": _meta(tenant, labels={"opsconsole.io/tenant": tenant}),
                "spec": {
                    "cohortName": "all",
                    "resourceGroups": [
                        {"coveredResources": ["nvidia.com/gpu"], "flavors": flavors}
                    ],
                },
                "status": {
                    "flavorsUsage": [
                        {"name": m.lower(), "resources": [{"name": "nvidia.com/gpu", "total": 12}]}
                        for m in MODELS
                    ]
                },
            },
        )
        for d in range(15):
            self._deployment(ns, tenant, f"model-{d:02d}", MODELS[d % 3])
        for s in range(3):
            self._isvc(ns, f"isvc-{s}", MODELS[s % 3])
        for j in range(2):
            self._job(ns, f"train-{j}", MODELS[j % 3])

    def _pod(self, ns, name, model, gpus, owner_kind, owner_name, labels=None):
        node = self._place(model, gpus, (ns, name))
        gated = node is None
        status = (
            {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "main", "ready": True, "restartCount": 0}],
            }
            if node
            else {"phase": "Pending"}
        )
        self.add(
            "pods",
            {
                "kind": "Pod",
                "metadata": _meta(
                    name,
                    ns,
                    labels=labels or {},
                    ownerReferences=[{"kind": owner_kind, "name": owner_name}],
                ),
                "spec": _pod_spec(model, gpus, node, gated),
                "status": status,
            },
        )
        self.add(
            "events",
            {
                "metadata": _meta(f"{name}.1", ns),
                "involvedObject": {"kind": "Pod", "name": name, "namespace": ns},
                "reason": "Scheduled" if node else "FailedScheduling",
                "message": "assigned" if node else "0/1000 nodes are available",
                "type": "Normal" if node else "Warning",
                "lastTimestamp": TS,
                "count": 1,
            },
        )

    def _deployment(self, ns, tenant, name, model):
        replicas = 5
        labels = {"opsconsole.io/model": name, "kueue.x-k8s.io/queue-name": tenant}
        self.add(
            "deployments",
            {
                "metadata": _meta(
                    name,
                    ns,
                    labels=labels,
                    annotations={"deployment.kubernetes.io/revision": "3"},
                    generation=3,
                ),
                "spec": {
                    "replicas": replicas,
                    "template": {"spec": _pod_spec(model, 1)},
                },
                "status": {
                    "replicas": replicas,
                    "readyReplicas": replicas,
                    "updatedReplicas": replicas,
                    "observedGeneration": 3,
                },
            },
        )
        for rev in (1, 2, 3):
            rs = f"{name}-{rev:05x}"
            self.add(
                "replicasets",
                {
                    "metadata": _meta(
                        rs,
                        ns,
                        ownerReferences=[{"kind": "Deployment", "name": name}],
                        annotations={
                            "deployment.kubernetes.io/revision": str(rev),
                            "kubernetes.io/change-cause": f"release {rev}",
                        },
                    ),
                    "spec": {"replicas": replicas if rev == 3 else 0},
                    "status": {"replicas": replicas if rev == 3 else 0},
                },
            )
        rs = f"{name}-{3:05x}"
        for p in range(replicas):
            self._pod(ns, f"{rs}-{p}", model, 1, "ReplicaSet", rs)

    def _isvc(self, ns, name, model):
        self.add(
            "inferenceservices",
            {
                "metadata": _meta(name, ns),
                "spec": {"predictor": {"canaryTrafficPercent": 10, "minReplicas": 2}},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "components": {
                        "predictor": {
                            "latestCreatedRevision": f"{name}-predictor-00002",
                            "previousRolledoutRevision": f"{name}-predictor-00001",
                            "traffic": [
                                {"revisionName": f"{name}-predictor-00002", "percent": 10},
                                {"revisionName": f"{name}-predictor-00001", "percent": 90},
                            ],
                        }
                    },
                },
            },
        )
        for p in range(2):
            labels = {"serving.kserve.io/inferenceservice": name}
            self._pod(ns, f"{name}-predictor-{p}", model, 1, "ReplicaSet", f"{name}-rs", labels)

    def _job(self, ns, name, model):
        self.add(
            "jobs",
            {
                "metadata": _meta(name, ns),
                "spec": {"parallelism": 4, "template": {"spec": _pod_spec(model, 2)}},
                "status": {"active": 4},
            },
        )
        self.add(
            "workloads",
            {
                "metadata": _meta(
                    f"job-{name}", ns, ownerReferences=[{"kind": "Job", "name": name}]
                ),
                "spec": {
                    "queueName": ns,
                    "podSets": [
                        {"name": "main", "count": 4, "template": {"spec": _pod_spec(model, 2)}}
                    ],
                },
                "status": {"admission": {"clusterQueue": ns}},
            },
        )
        for p in range(4):
            labels = {"batch.kubernetes.io/job-name": name}
            self._pod(ns, f"{name}-{p}", model, 2, "Job", name, labels)

    def telemetry(self, history_length: int) -> Snapshot:
        snap = Snapshot(completed_at=time.time(), sources=len(self.node_names))
        rng = self.rng
        for i, node in enumerate(self.node_names):
            for g in range(8):
                uuid = f"GPU-{i:04d}-{g}"
                pod = self.allocation.get((node, g))
                util = rng.uniform(0, 100)
                snap.samples[uuid] = Sample(
                    uuid=uuid,
                    gpu=g,
                    node=node,
                    model_name=MODELS[i % 3].replace("-", " "),
                    utilization=util,
                    fb_used_mib=rng.uniform(0, 80000),
                    fb_free_mib=1000.0,
                    power_watts=rng.uniform(80, 700),
                    temperature_c=rng.uniform(30, 90),
                    last_xid=79 if rng.random() < 0.001 else 0,
                    pod=pod[1] if pod else None,
                    namespace=pod[0] if pod else None,
                    container="main" if pod else None,
                    sampled_at=time.time(),
                )
                snap.history[uuid] = [rng.uniform(0, 100) for _ in range(history_length)]
        return snap
