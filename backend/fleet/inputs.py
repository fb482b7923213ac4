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
    """One GPU's latest DCGM/NVML reading (``backend.telemetry.GpuSample``).

    Members are read-only properties: the model only reads them, so any object exposing these
    values (a dataclass field, a frozen field, a property) fits.
    """

    @property
    def uuid(self) -> str: ...
    @property
    def gpu(self) -> int: ...
    @property
    def node(self) -> str | None: ...
    @property
    def model_name(self) -> str | None: ...
    @property
    def mig_profile(self) -> str | None: ...
    @property
    def utilization(self) -> float | None: ...
    @property
    def engine_active(self) -> float | None: ...
    @property
    def fb_used_mib(self) -> float | None: ...
    @property
    def fb_free_mib(self) -> float | None: ...
    @property
    def power_watts(self) -> float | None: ...
    @property
    def temperature_c(self) -> float | None: ...
    @property
    def memory_temperature_c(self) -> float | None: ...
    @property
    def sm_clock_mhz(self) -> float | None: ...
    @property
    def last_xid(self) -> int | None: ...
    @property
    def pod(self) -> str | None: ...
    @property
    def namespace(self) -> str | None: ...
    @property
    def sampled_at(self) -> float: ...


class TelemetryLike(Protocol):
    """A telemetry snapshot (``backend.telemetry.TelemetrySnapshot``), read-only like it."""

    @property
    def samples(self) -> Mapping[str, GpuSampleLike]: ...
    @property
    def history(self) -> Mapping[str, Sequence[float | None]]: ...
    @property
    def completed_at(self) -> float | None: ...


class NoTelemetry:
    """The snapshot of a fleet without telemetry: GPUs are still listed from node capacity."""

    samples: Mapping[str, GpuSampleLike] = {}
    history: Mapping[str, Sequence[float | None]] = {}
    completed_at: float | None = None
    sources = 0
    errors = 0
