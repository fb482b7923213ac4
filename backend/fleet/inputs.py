"""What the fleet model is computed from, as structural types.

The model depends only on the *shape* of its inputs, not on the modules that produce them: the
cluster cache hands a mapping of kind plural -> {(namespace, name): slim object}, the telemetry
collector a snapshot of samples. Protocols (rather than imports of ``backend.telemetry``) keep the
model testable with plain objects and free of import cycles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

ClusterObjects = Mapping[str, Mapping[tuple[str, str], Mapping[str, Any]]]


class GpuSampleLike(Protocol):
    """One GPU's latest DCGM/NVML reading (``backend.telemetry.GpuSample``)."""

    uuid: str
    gpu: int
    node: str | None
    model_name: str | None
    mig_profile: str | None
    utilization: float | None
    engine_active: float | None
    fb_used_mib: float | None
    fb_free_mib: float | None
    power_watts: float | None
    temperature_c: float | None
    memory_temperature_c: float | None
    sm_clock_mhz: float | None
    last_xid: int | None
    pod: str | None
    namespace: str | None
    sampled_at: float


class TelemetryLike(Protocol):
    """A telemetry snapshot (``backend.telemetry.TelemetrySnapshot``)."""

    samples: Mapping[str, GpuSampleLike]
    history: Mapping[str, Sequence[float | None]]
    completed_at: float | None


class NoTelemetry:
    """The snapshot of a fleet without telemetry: GPUs are still listed from node capacity."""

    samples: Mapping[str, GpuSampleLike] = {}
    history: Mapping[str, Sequence[float | None]] = {}
    completed_at: float | None = None
    sources = 0
    errors = 0
