"""Nodes and GPUs: the cluster's view (capacity, allocation, readiness) joined with telemetry.

A GPU is listed once per telemetry sample (a physical GPU or a MIG instance), joined to its node
by the exporter's host name and to its pod and tenant by DCGM's pod/namespace labels. GPUs a node
reports in ``nvidia.com/gpu`` capacity but no exporter describes are listed too, with a stable
placeholder uuid ("unknown:<node>:<index>") and null metrics, so a fleet without telemetry still
shows every GPU it has. Which of those placeholder GPUs a pod holds cannot be known without the
device plugin's mapping, so the node's allocated count is spread over its lowest indices: the
counts are right, the pod is left null.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from backend.conventions import GPU_PRODUCT_LABEL, GPU_RESOURCE
from backend.fleet.index import ClusterIndex, Obj
from backend.fleet.inputs import GpuSampleLike, TelemetryLike
from backend.fleet.objects import condition, count, dig, labels, mapping, natural_key, text
from backend.schemas import Gpu, Node

UNKNOWN_MODEL = "unknown"
MAX_PLACEHOLDERS = 256  # per node: a malformed capacity ("1e9") must not exhaust memory


@dataclass(frozen=True, slots=True)
class GpuRules:
    """Thresholds from the settings (idle below this utilization, hot from this temperature)."""

    idle_utilization_percent: float = 5.0
    hot_temperature_c: float = 85.0


def node_order(names: Iterable[str]) -> list[str]:
    """Node names in natural order (the order of the node and GPU lists)."""
    return sorted(names, key=natural_key)


def node_and_gpus(
    name: str,
    index: ClusterIndex,
    samples: list,
    pod_workloads: Mapping[tuple[str, str], str],
    history: Mapping[str, Sequence[float | None]],
    rules: GpuRules,
) -> tuple[Node | None, list[Gpu]]:
    """One node's row (None for a host that telemetry names but the cluster does not) and its
    GPUs, from its samples (``group_samples``) and the index."""
    node_obj = index.nodes.get(name)
    node_gpus = _gpus_of_node(name, node_obj, samples, index, pod_workloads, history, rules)
    node = _node_row(name, node_obj, node_gpus, index) if node_obj is not None else None
    return node, node_gpus


def group_samples(index: ClusterIndex, telemetry: TelemetryLike) -> dict[str, list]:
    """Samples grouped by cluster node name (the exporter's host name, or a hostname label)."""
    out: dict[str, list[GpuSampleLike]] = defaultdict(list)
    samples = getattr(telemetry, "samples", None)
    for sample in samples.values() if isinstance(samples, Mapping) else ():
        host = text(getattr(sample, "node", None)) or ""
        node = index.node_of_host(host)
        out[node or "unknown"].append(sample)
    return out


def _node_row(name: str, obj: Obj, gpus: list[Gpu], index: ClusterIndex) -> Node:
    status = mapping(obj.get("status"))
    live_pods, allocated = index.node_usage.get(name, (0, 0))
    ready = condition(obj, "Ready")
    utils = [g.utilization for g in gpus if g.utilization is not None]
    used = [g.memory_used_mib for g in gpus if g.memory_used_mib is not None]
    totals = [g.memory_total_mib for g in gpus if g.memory_total_mib is not None]
    powers = [g.power_watts for g in gpus if g.power_watts is not None]
    temps = [g.temperature_c for g in gpus if g.temperature_c is not None]
    return Node(
        name=name,
        gpu_model=text(labels(obj).get(GPU_PRODUCT_LABEL)),
        gpus_capacity=count(mapping(status.get("capacity")).get(GPU_RESOURCE)),
        gpus_allocatable=count(mapping(status.get("allocatable")).get(GPU_RESOURCE)),
        gpus_allocated=allocated,
        ready=ready is None or str(ready.get("status")) == "True",
        cordoned=dig(obj, "spec", "unschedulable") is True,
        utilization=sum(utils) / len(utils) if utils else None,
        memory_used_mib=sum(used) if used else None,
        memory_total_mib=sum(totals) if totals else None,
        power_watts=sum(powers) if powers else None,
        max_temperature_c=max(temps) if temps else None,
        xid_gpus=sum(1 for g in gpus if g.last_xid),
        pods=live_pods,
    )


def _gpus_of_node(
    name: str,
    node_obj: Obj | None,
    samples: list,
    index: ClusterIndex,
    pod_workloads: Mapping[tuple[str, str], str],
    history: Mapping[str, Sequence[float | None]],
    rules: GpuRules,
) -> list[Gpu]:
    node_model = text(labels(node_obj).get(GPU_PRODUCT_LABEL)) if node_obj else None
    gpus = [_sample_gpu(name, node_model, s, index, pod_workloads, history, rules) for s in samples]
    if node_obj is not None:
        gpus.extend(_placeholder_gpus(name, node_obj, node_model, gpus, index))
    gpus.sort(key=lambda g: (g.index, g.uuid))
    return gpus


def _sample_gpu(
    node: str,
    node_model: str | None,
    sample,
    index: ClusterIndex,
    pod_workloads: Mapping[tuple[str, str], str],
    history: Mapping[str, Sequence[float | None]],
    rules: GpuRules,
) -> Gpu:
    uuid = text(getattr(sample, "uuid", None)) or f"unknown:{node}:{getattr(sample, 'gpu', 0)}"
    pod = text(getattr(sample, "pod", None)) or None
    namespace = text(getattr(sample, "namespace", None)) or None
    utilization = _number(sample, "utilization")
    used, free = _number(sample, "fb_used_mib"), _number(sample, "fb_free_mib")
    allocated = pod is not None
    idle = allocated and utilization is not None and utilization < rules.idle_utilization_percent
    sampled_at = getattr(sample, "sampled_at", None)
    return Gpu(
        node=node,
        index=_int(getattr(sample, "gpu", 0)),
        uuid=uuid,
        model=node_model or text(getattr(sample, "model_name", None)) or UNKNOWN_MODEL,
        mig_profile=text(getattr(sample, "mig_profile", None)),
        utilization=utilization,
        engine_active=_number(sample, "engine_active"),
        memory_used_mib=used,
        memory_total_mib=used + free if used is not None and free is not None else None,
        temperature_c=_number(sample, "temperature_c"),
        memory_temperature_c=_number(sample, "memory_temperature_c"),
        power_watts=_number(sample, "power_watts"),
        sm_clock_mhz=_number(sample, "sm_clock_mhz"),
        last_xid=_xid(sample),
        pod=pod,
        namespace=namespace,
        tenant=index.tenant_of(namespace),
        workload=pod_workloads.get((namespace or "", pod or "")) if pod else None,
        allocated=allocated,
        idle=idle,
        sampled_at=_utc(sampled_at),
        history=_history(history.get(uuid)),
    )


def _placeholder_gpus(
    name: str, node_obj: Obj, model: str | None, known: list[Gpu], index: ClusterIndex
) -> list[Gpu]:
    """GPUs the node has (capacity) but telemetry does not describe; metrics unknown."""
    status = mapping(node_obj.get("status"))
    capacity = count(mapping(status.get("capacity")).get(GPU_RESOURCE))
    seen = {g.index for g in known}
    missing = [i for i in range(min(capacity, MAX_PLACEHOLDERS)) if i not in seen]
    allocated = index.node_usage.get(name, (0, 0))[1]
    unplaced = max(0, allocated - sum(1 for g in known if g.allocated))
    return [
        Gpu(
            node=name,
            index=i,
            uuid=f"unknown:{name}:{i}",
            model=model or UNKNOWN_MODEL,
            allocated=position < unplaced,
        )
        for position, i in enumerate(missing)
    ]


def _number(sample: object, name: str) -> float | None:
    """A telemetry reading as a finite float, or None (unknown) for anything else."""
    value = getattr(sample, name, None)
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    return None


def _xid(sample: object) -> int | None:
    value = _number(sample, "last_xid")
    return None if value is None else int(value)


def _history(values: object) -> list[float | None]:
    if not isinstance(values, Sequence) or isinstance(values, str):
        return []
    return [v if type(v) is float else _finite(v) for v in values]


def _finite(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _utc(value) -> datetime | None:
    if not isinstance(value, int | float) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None
