"""DCGM exporter text -> one GpuSample per GPU (or MIG instance).

Facts this relies on (NVIDIA/dcgm-exporter): every series carries ``gpu``, ``UUID``, ``device``,
``modelName``, ``pci_bus_id`` and the host as ``Hostname`` (older releases) or ``hostname``
(newer); MIG instances add ``GPU_I_PROFILE`` and ``GPU_I_ID``; with Kubernetes mapping on, ``pod``,
``namespace`` and ``container`` ("" when no pod holds the GPU). DCGM reports "no value" as
blank sentinels near the top of the field's type range (INT32 >= 0x7ffffff0, INT64 >=
0x7ffffffffffffff0, FP64 >= 2**47, e.g. 9223372036854775794 = INT64 "not supported").
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from backend.telemetry.prometheus import PromSample, base_name, parse_samples

INT32_BLANK = 0x7FFFFFF0
INT64_BLANK = 0x7FFFFFFFFFFFFFF0
FP64_BLANK = 140737488355328.0  # 2**47

# metric -> (GpuSample attribute, smallest blank sentinel of the DCGM field's type)
FIELDS: dict[str, tuple[str, float]] = {
    "DCGM_FI_DEV_GPU_UTIL": ("utilization", INT32_BLANK),
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": ("engine_active", FP64_BLANK),
    "DCGM_FI_DEV_FB_USED": ("fb_used_mib", INT32_BLANK),
    "DCGM_FI_DEV_FB_FREE": ("fb_free_mib", INT32_BLANK),
    "DCGM_FI_DEV_POWER_USAGE": ("power_watts", FP64_BLANK),
    "DCGM_FI_DEV_GPU_TEMP": ("temperature_c", INT32_BLANK),
    "DCGM_FI_DEV_MEMORY_TEMP": ("memory_temperature_c", INT32_BLANK),
    "DCGM_FI_DEV_SM_CLOCK": ("sm_clock_mhz", INT32_BLANK),
    "DCGM_FI_DEV_XID_ERRORS": ("last_xid", INT32_BLANK),
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": ("energy_mj", INT64_BLANK),
}


@dataclass(slots=True)
class GpuSample:
    """The latest telemetry of one GPU or MIG instance; None = unknown / not reported."""

    uuid: str  # MIG instances: "<GPU uuid>/<GPU_I_ID>"
    gpu: int
    node: str | None
    model_name: str | None
    device: str | None
    pci_bus_id: str | None
    mig_profile: str | None
    mig_instance: str | None
    utilization: float | None = None  # %
    engine_active: float | None = None  # 0-1
    fb_used_mib: float | None = None
    fb_free_mib: float | None = None
    power_watts: float | None = None
    temperature_c: float | None = None
    memory_temperature_c: float | None = None
    sm_clock_mhz: float | None = None
    last_xid: int | None = None
    energy_mj: float | None = None  # counter since driver load
    pod: str | None = None
    namespace: str | None = None
    container: str | None = None
    sampled_at: float = 0.0  # time.time()


def parse_dcgm(
    text: str, *, node: str | None = None, now: float | None = None, fast: bool = True
) -> list[GpuSample]:
    """GPUs described by a DCGM exporter's text, in order of first appearance.

    ``node`` is used for series without a ``Hostname``/``hostname`` label. Metrics this module
    does not know still make their GPU known (with unknown values). Raises
    ``backend.telemetry.prometheus.PromParseError`` (a ValueError) for text that is not the
    Prometheus text format.
    """
    return samples_to_gpus(parse_samples(text, fast=fast), node=node, now=now)


def samples_to_gpus(
    samples: Iterable[PromSample], *, node: str | None = None, now: float | None = None
) -> list[GpuSample]:
    """Group Prometheus samples by GPU and fill in the fields DCGM reports."""
    gpus = GpuTable(node=node, now=now)
    for name, labels, value in samples:
        gpus.add(name, labels, value)
    return gpus.samples()


class GpuTable:
    """GPUs gathered from samples one at a time (in order of first appearance): a source whose
    samples come in several batches (Prometheus's answers per field) adds each as it arrives,
    without building the samples first."""

    def __init__(self, *, node: str | None = None, now: float | None = None) -> None:
        self.node = node  # for series without a Hostname/hostname label
        self.sampled_at = time.time() if now is None else now
        self._gpus: dict[str, GpuSample] = {}

    def add(self, name: str, labels: Mapping[str, str], value: float) -> None:
        """One sample; a series that is not per GPU (exporter self-metrics, NVSwitch fields) is
        ignored."""
        key = gpu_key(labels, self.node)
        if key is None:
            return
        gpu = self._gpus.get(key)
        if gpu is None:
            gpu = self._gpus[key] = _new_gpu(key, labels, self.node, self.sampled_at)
        elif gpu.pod is None:
            _set_pod(gpu, labels)
        field = FIELDS.get(name) or FIELDS.get(base_name(name))
        if field is not None:
            attribute, blank = field
            setattr(gpu, attribute, _value(value, blank, integer=attribute == "last_xid"))

    def samples(self) -> list[GpuSample]:
        return list(self._gpus.values())


def gpu_key(labels: Mapping[str, str], node: str | None) -> str | None:
    """The GPU's identity: its UUID (plus "/GPU_I_ID" for a MIG instance).

    Without a UUID label, "<node>/<gpu index>" keeps GPUs of one host apart.
    """
    uuid = labels.get("UUID") or labels.get("uuid")
    if not uuid:
        index = labels.get("gpu")
        host = _host(labels, node)
        if not index or not host:
            return None
        uuid = f"{host}/{index}"
    instance = labels.get("GPU_I_ID")
    return f"{uuid}/{instance}" if instance else uuid


def is_blank(value: float, blank: float = INT32_BLANK) -> bool:
    """True for DCGM blank sentinels and values that are not finite numbers."""
    return math.isnan(value) or math.isinf(value) or value >= blank


def _new_gpu(key: str, labels: Mapping[str, str], node: str | None, now: float) -> GpuSample:
    gpu = GpuSample(
        uuid=key,
        gpu=_int(labels.get("gpu")),
        node=_host(labels, node),
        model_name=labels.get("modelName") or None,
        device=labels.get("device") or None,
        pci_bus_id=labels.get("pci_bus_id") or None,
        mig_profile=labels.get("GPU_I_PROFILE") or None,
        mig_instance=labels.get("GPU_I_ID") or None,
        sampled_at=now,
    )
    _set_pod(gpu, labels)
    return gpu


def _set_pod(gpu: GpuSample, labels: Mapping[str, str]) -> None:
    """Pod labels, as dcgm-exporter writes them (older releases: pod_name, pod_namespace...)."""
    pod = labels.get("pod") or labels.get("pod_name")
    if pod:
        gpu.pod = pod
        gpu.namespace = labels.get("namespace") or labels.get("pod_namespace") or None
        gpu.container = labels.get("container") or labels.get("container_name") or None


def _host(labels: Mapping[str, str], node: str | None) -> str | None:
    return labels.get("Hostname") or labels.get("hostname") or node


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _value(value: float, blank: float, *, integer: bool) -> float | int | None:
    if is_blank(value, blank):
        return None
    return int(value) if integer else value
