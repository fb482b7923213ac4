"""Fixture fleets as cluster objects plus a telemetry snapshot, turned into screens by the real
fleet model.

``generated_fleet`` makes a regular fleet of any size (the console's list tests and the TUI
benchmark): tenants ``team-a``, ``team-b``, … (``team-a1`` after ``team-z``), workloads
``model-00000``, … in the API's default order (namespace, kind, name), nodes ``gpu-node-0000``, ….
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from backend.conventions import MODEL_LABEL, STAGE_LABEL
from backend.telemetry.base import TelemetrySnapshot
from backend.telemetry.dcgm import GpuSample
from tests.support import objects as k8s

H100 = "NVIDIA-H100-80GB-HBM3"
CREATED = "2026-11-29T11:00:00Z"
SAMPLED_AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC).timestamp()
# The API's default order is (namespace, kind, name): kinds in that order keep rows in name order.
KINDS = ("Deployment", "InferenceService", "Job")


@dataclass
class Fleet:
    """Cluster objects (kind plural -> {(namespace, name): object}) and GPU telemetry."""

    cluster: k8s.Cluster
    samples: dict[str, GpuSample] = field(default_factory=dict)
    history: dict[str, list[float | None]] = field(default_factory=dict)

    def telemetry(self) -> TelemetrySnapshot:
        return TelemetrySnapshot(
            samples=dict(self.samples),
            history={uuid: list(values) for uuid, values in self.history.items()},
            completed_at=SAMPLED_AT,
            sources=1,
        )


def tenant_name(i: int) -> str:
    return f"team-{chr(ord('a') + i % 26)}{'' if i < 26 else i // 26}"


def deployment(name: str, ns: str, *, gpus: int, ready: int, labels: dict[str, str]) -> k8s.Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": k8s.meta(name, ns, CREATED, labels=labels, generation=1),
        "spec": {"replicas": 2, "template": k8s.template(gpus, H100, "registry.local/llm:1")},
        "status": {
            "observedGeneration": 1,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": ready,
            "availableReplicas": ready,
        },
    }


def inference_service(name: str, ns: str, *, gpus: int, labels: dict[str, str]) -> k8s.Obj:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": k8s.meta(name, ns, CREATED, labels=labels),
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "resources": {"limits": {k8s.GPU: str(gpus)}},
                }
            }
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def job(name: str, ns: str, *, gpus: int, labels: dict[str, str]) -> k8s.Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": k8s.meta(name, ns, CREATED, labels=labels),
        "spec": {"parallelism": 1, "template": k8s.template(gpus, H100, "registry.local/train:1")},
        "status": {"active": 1},
    }


def _workload(i: int, ns: str, kind: str) -> k8s.Obj:
    name = f"model-{i:05d}"
    labels = {STAGE_LABEL: "production" if i % 3 else "staging"}
    if i % 2:
        labels[MODEL_LABEL] = "llama-70b"
    gpus = 1 + i % 8
    if kind == "Deployment":
        return deployment(name, ns, gpus=gpus, ready=i % 3, labels=labels)
    if kind == "InferenceService":
        return inference_service(name, ns, gpus=gpus, labels=labels)
    return job(name, ns, gpus=gpus, labels=labels)


def generated_fleet(
    *, tenants: int = 6, workloads: int = 30, nodes: int = 4, gpus_per_node: int = 8
) -> Fleet:
    """A regular fleet: every tenant with a Kueue quota, workloads spread over the tenants in
    contiguous blocks, two of every three GPUs held by a tenant's pod, every GPU sampled."""
    names = [tenant_name(i) for i in range(tenants)]
    objs: list[k8s.Obj] = [k8s.flavor("h100", H100)]
    for i, name in enumerate(names):
        objs += [k8s.namespace(name, name), k8s.namespace(f"{name}-dev", name)]
        usage = {"total": i % 20, "borrowed": max(0, i % 20 - 16)}
        objs.append(k8s.cluster_queue(f"cq-{name}", name, [("h100", {"nominalQuota": 16}, usage)]))
    blocks = max(1, len(names)) * len(KINDS)
    for i in range(workloads if names else 0):
        block = i * blocks // workloads
        objs.append(_workload(i, names[block // len(KINDS)], KINDS[block % len(KINDS)]))
    fleet = Fleet(k8s.cluster(*objs))
    for n in range(nodes):
        node = f"gpu-node-{n:04d}"
        fleet.cluster.setdefault("nodes", {})[("", node)] = k8s.node(node, H100, gpus_per_node)
        for index in range(gpus_per_node):
            _sample_gpu(fleet, node, index, n * gpus_per_node + index, names)
    return fleet


def _sample_gpu(fleet: Fleet, node: str, index: int, i: int, tenants: list[str]) -> None:
    ns = tenants[i % len(tenants)] if tenants and i % 3 else None
    pod = f"pod-{i}" if ns else None
    if ns and pod:
        template = k8s.template(1, H100, "registry.local/llm:1")
        k8s.add(fleet.cluster, k8s.pod(pod, ns, CREATED, template, node=node, status=k8s.running()))
    uuid = f"GPU-{i:08x}-0000-0000-0000-000000000000"
    fleet.samples[uuid] = GpuSample(
        uuid=uuid,
        gpu=index,
        node=node,
        model_name=H100,
        device=f"nvidia{index}",
        pci_bus_id=None,
        mig_profile=None,
        mig_instance=None,
        utilization=None if i % 11 == 10 else float(i % 100),
        fb_used_mib=float(i % 81559),
        fb_free_mib=81559.0 - i % 81559,
        power_watts=100.0 + i % 600,
        temperature_c=30.0 + i % 60,
        last_xid=79 if i % 97 == 0 else 0,
        pod=pod,
        namespace=ns,
        sampled_at=SAMPLED_AT,
    )
    fleet.history[uuid] = [float((i + k) % 100) for k in range(10)]
