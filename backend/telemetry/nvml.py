"""NvmlCollector: telemetry of this host's GPUs through NVML (nvidia-ml-py, module pynvml).

For a backend running on a GPU node (or a single workstation) without DCGM exporters. NVML
calls block, so every round runs in a worker thread. A field the GPU does not support is None;
a GPU that fell off the bus (GpuIsLost) is reported with every value None while the others are
read normally; no driver at all is a TelemetryUnavailable at start.

Processes on a GPU are host PIDs; ``/proc/<pid>/cgroup`` tells which Kubernetes pod each belongs
to (``.../kubepods/burstable/pod<uid>/...`` with the cgroupfs driver,
``.../kubepods-burstable-pod<uid with _>.slice/...`` with the systemd driver, cgroup v1 or v2).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pynvml

from backend.telemetry.base import RoundCollector, TelemetryUnavailable
from backend.telemetry.dcgm import GpuSample

# pod uid -> (namespace, name), or None if unknown; called from a worker thread, so it should
# only read (e.g. a dict built from the cluster cache).
PodResolver = Callable[[str], tuple[str, str] | None]

MIB = 1024 * 1024
_POD_UID_RE = re.compile(
    r"kubepods.*?pod([0-9a-f]{8}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{12})",
    re.IGNORECASE,
)
_NO_DRIVER = (
    pynvml.NVMLError_LibraryNotFound,
    pynvml.NVMLError_DriverNotLoaded,
)


def pod_uid_from_cgroup(text: str) -> str | None:
    """The pod uid in a ``/proc/<pid>/cgroup`` file, or None for a process outside Kubernetes."""
    for line in text.splitlines():
        match = _POD_UID_RE.search(line.split(":", 2)[-1])
        if match:
            return match.group(1).replace("_", "-").lower()
    return None


def pod_uid_of_pid(pid: int, proc_root: Path | str = "/proc") -> str | None:
    """The pod uid of a host process; None when it is gone, hidden or not in a pod."""
    try:
        return pod_uid_from_cgroup(Path(proc_root, str(pid), "cgroup").read_text())
    except OSError:
        return None


def mig_profile_from_name(name: str | None) -> str | None:
    """ "NVIDIA A100-SXM4-40GB MIG 1g.5gb" -> "1g.5gb" (the profile DCGM calls GPU_I_PROFILE)."""
    if name and " MIG " in name:
        return name.rsplit(" MIG ", 1)[1].strip() or None
    return None


class _Device:
    """Reads one device handle; unsupported fields give None, a lost GPU stops all reads."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.lost = False

    def read(self, function: Callable[..., Any], *args: Any) -> Any:
        if self.lost:
            return None
        try:
            return function(self.handle, *args)
        except pynvml.NVMLError_GpuIsLost:
            self.lost = True
        except pynvml.NVMLError:
            pass  # NotSupported, NoPermission, Unknown...: this field is unknown
        return None


class NvmlCollector(RoundCollector):
    """Reads the local GPUs every ``interval`` seconds; same snapshot API as TelemetryCollector."""

    def __init__(
        self,
        *,
        interval: float = 10.0,
        history_length: int = 60,
        node: str | None = None,
        pod_resolver: PodResolver | None = None,
        proc_root: Path | str = "/proc",
    ) -> None:
        super().__init__(interval=interval, history_length=history_length)
        self.node = node or socket.gethostname()
        self.pod_resolver = pod_resolver
        self.proc_root = proc_root
        self.last_error: str | None = None
        self._initialized = False
        self._uuids: dict[int, str] = {}  # index -> uuid, to name a GPU that got lost
        self._last: dict[str, GpuSample] = {}

    async def start(self) -> None:
        """Initialise NVML (TelemetryUnavailable without a driver), then start rounds."""
        await asyncio.to_thread(self._init)
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        if self._initialized:
            self._initialized = False
            with contextlib.suppress(pynvml.NVMLError):  # shutting down anyway
                await asyncio.to_thread(pynvml.nvmlShutdown)

    async def scrape_once(self) -> None:
        started = time.monotonic()
        if not self._initialized:
            await asyncio.to_thread(self._init)
        try:
            gpus = await asyncio.to_thread(self.read_gpus)
        except pynvml.NVMLError as exc:  # the device list itself failed: keep the last round
            self.last_error = f"NVML: {exc}"
            await self._publish(
                dict(self._last),
                set(),
                sources=1,
                failures={"nvml": self.last_error},
                started=started,
            )
            return
        self.last_error = None
        self._last = {gpu.uuid: gpu for gpu in gpus}
        await self._publish(
            dict(self._last), set(self._last), sources=1, failures={}, started=started
        )

    def read_gpus(self) -> list[GpuSample]:
        """Every local GPU (and MIG instance) now; blocking, call it in a thread."""
        now = time.time()
        gpus: list[GpuSample] = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            gpus.extend(self._read_gpu(index, now))
        return gpus

    def _init(self) -> None:
        if self._initialized:
            return
        try:
            pynvml.nvmlInit()
        except _NO_DRIVER as exc:
            raise TelemetryUnavailable(
                f"NVML unavailable: no NVIDIA driver on this host ({exc})"
            ) from exc
        except pynvml.NVMLError as exc:
            raise TelemetryUnavailable(f"NVML unavailable: {exc}") from exc
        self._initialized = True

    def _read_gpu(self, index: int, now: float) -> list[GpuSample]:
        try:
            device = _Device(pynvml.nvmlDeviceGetHandleByIndex(index))
        except pynvml.NVMLError:
            return [self._unreadable(index, now)]
        uuid = _text(device.read(pynvml.nvmlDeviceGetUUID))
        if uuid is None:
            return [self._unreadable(index, now)]
        self._uuids[index] = uuid
        gpu = self._identity(device, index, uuid, now)
        if device.lost:
            return [gpu]
        self._read_values(device, gpu)
        instances = self._read_mig_instances(device, gpu, now)
        if device.lost:  # lost half-way: report nothing we read from it
            return [_identity_only(gpu)]
        return [gpu, *instances]

    def _identity(self, device: _Device, index: int, uuid: str, now: float) -> GpuSample:
        minor = device.read(pynvml.nvmlDeviceGetMinorNumber)
        return GpuSample(
            uuid=uuid,
            gpu=index,
            node=self.node,
            model_name=_text(device.read(pynvml.nvmlDeviceGetName)),
            device=f"nvidia{minor}" if minor is not None else None,
            pci_bus_id=_text(getattr(device.read(pynvml.nvmlDeviceGetPciInfo), "busId", None)),
            mig_profile=None,
            mig_instance=None,
            sampled_at=now,
        )

    def _read_values(self, device: _Device, gpu: GpuSample) -> None:
        utilization = device.read(pynvml.nvmlDeviceGetUtilizationRates)
        gpu.utilization = _float(getattr(utilization, "gpu", None))
        self._read_memory(device, gpu)
        gpu.temperature_c = _float(
            device.read(pynvml.nvmlDeviceGetTemperature, pynvml.NVML_TEMPERATURE_GPU)
        )
        power_mw = device.read(pynvml.nvmlDeviceGetPowerUsage)
        gpu.power_watts = power_mw / 1000.0 if power_mw is not None else None
        gpu.sm_clock_mhz = _float(device.read(pynvml.nvmlDeviceGetClockInfo, pynvml.NVML_CLOCK_SM))
        gpu.energy_mj = _float(device.read(pynvml.nvmlDeviceGetTotalEnergyConsumption))
        self._read_pod(device, gpu)

    def _read_memory(self, device: _Device, gpu: GpuSample) -> None:
        memory = device.read(pynvml.nvmlDeviceGetMemoryInfo)
        if memory is not None:
            gpu.fb_used_mib = memory.used / MIB
            gpu.fb_free_mib = memory.free / MIB

    def _read_pod(self, device: _Device, gpu: GpuSample) -> None:
        """The first process on the GPU that belongs to a pod the resolver knows."""
        if self.pod_resolver is None:
            return  # a pod uid alone names no pod
        for process in device.read(pynvml.nvmlDeviceGetComputeRunningProcesses) or []:
            uid = pod_uid_of_pid(process.pid, self.proc_root)
            pod = self.pod_resolver(uid) if uid else None
            if pod is not None:
                gpu.namespace, gpu.pod = pod
                return

    def _read_mig_instances(self, device: _Device, gpu: GpuSample, now: float) -> list[GpuSample]:
        """MIG instances, keyed "<GPU uuid>/<GPU instance id>" like the DCGM exporter's.

        They carry their own memory and pod; device-wide values (power, temperature) stay on
        the parent GPU so that sums over a node do not count them twice.
        """
        mode = device.read(pynvml.nvmlDeviceGetMigMode)
        if not mode or mode[0] != pynvml.NVML_DEVICE_MIG_ENABLE:
            return []
        instances = []
        for slot in range(device.read(pynvml.nvmlDeviceGetMaxMigDeviceCount) or 0):
            handle = device.read(pynvml.nvmlDeviceGetMigDeviceHandleByIndex, slot)
            if handle is None:
                continue  # empty slot (NotFound)
            instance = _Device(handle)
            instance_id = instance.read(pynvml.nvmlDeviceGetGpuInstanceId)
            if instance_id is None:
                continue
            sample = GpuSample(
                uuid=f"{gpu.uuid}/{instance_id}",
                gpu=gpu.gpu,
                node=gpu.node,
                model_name=gpu.model_name,
                device=gpu.device,
                pci_bus_id=gpu.pci_bus_id,
                mig_profile=mig_profile_from_name(_text(instance.read(pynvml.nvmlDeviceGetName))),
                mig_instance=str(instance_id),
                sampled_at=now,
            )
            self._read_memory(instance, sample)
            self._read_pod(instance, sample)
            instances.append(sample)
        return instances

    def _unreadable(self, index: int, now: float) -> GpuSample:
        """A GPU NVML lists but cannot open: known by its last uuid, every value None."""
        uuid = self._uuids.get(index, f"{self.node}/{index}")
        return GpuSample(
            uuid=uuid,
            gpu=index,
            node=self.node,
            model_name=None,
            device=None,
            pci_bus_id=None,
            mig_profile=None,
            mig_instance=None,
            sampled_at=now,
        )


def _identity_only(gpu: GpuSample) -> GpuSample:
    return GpuSample(
        uuid=gpu.uuid,
        gpu=gpu.gpu,
        node=gpu.node,
        model_name=gpu.model_name,
        device=gpu.device,
        pci_bus_id=gpu.pci_bus_id,
        mig_profile=None,
        mig_instance=None,
        sampled_at=gpu.sampled_at,
    )


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value or None


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None
