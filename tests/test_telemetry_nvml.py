"""NvmlCollector without a GPU: pynvml functions patched to return its real ctypes structs and
raise real NVMLError codes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pynvml
import pytest

from backend.telemetry.base import TelemetryUnavailable
from backend.telemetry.nvml import (
    NvmlCollector,
    mig_profile_from_name,
    pod_uid_from_cgroup,
    pod_uid_of_pid,
)

GIB = 1024**3
POD_UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    utilization: int = 42
    memory_used: int = 20 * GIB
    memory_free: int = 60 * GIB
    temperature: int = 61
    power_mw: int = 350_500
    sm_clock: int = 1980
    energy_mj: int = 987_654_321
    pids: list[int] = field(default_factory=list)
    unsupported: set[str] = field(default_factory=set)  # pynvml function names
    lost: bool = False
    lost_after_uuid: bool = False
    mig: list[tuple[int, str, int]] = field(default_factory=list)  # (GPU_I_ID, profile, MiB)


class FakeNvml:
    """Installs fakes for the pynvml functions NvmlCollector calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, gpus: list[FakeGpu]) -> None:
        self.gpus = gpus
        self.init_error: int | None = None
        self.count_error: int | None = None
        self.initialized = 0
        self.patch = monkeypatch
        fakes = {
            "nvmlInit": self.init,
            "nvmlShutdown": lambda: None,
            "nvmlDeviceGetCount": self.count,
            "nvmlDeviceGetHandleByIndex": self.handle,
            "nvmlDeviceGetUUID": lambda h: self.gpu(h, "nvmlDeviceGetUUID", uuid=True).uuid,
            "nvmlDeviceGetName": self.name,
            "nvmlDeviceGetMinorNumber": lambda h: self.gpu(h, "nvmlDeviceGetMinorNumber") and h,
            "nvmlDeviceGetPciInfo": lambda h: (
                self.gpu(h, "nvmlDeviceGetPciInfo")
                and pynvml.nvmlPciInfo_t(busId=f"00000000:{h:02X}:00.0".encode())
            ),
            "nvmlDeviceGetUtilizationRates": self.utilization,
            "nvmlDeviceGetMemoryInfo": self.memory,
            "nvmlDeviceGetTemperature": self.temperature,
            "nvmlDeviceGetPowerUsage": lambda h: self.gpu(h, "nvmlDeviceGetPowerUsage").power_mw,
            "nvmlDeviceGetClockInfo": self.clock,
            "nvmlDeviceGetTotalEnergyConsumption": lambda h: (
                self.gpu(h, "nvmlDeviceGetTotalEnergyConsumption").energy_mj
            ),
            "nvmlDeviceGetComputeRunningProcesses": self.processes,
            "nvmlDeviceGetMigMode": self.mig_mode,
            "nvmlDeviceGetMaxMigDeviceCount": lambda h: 7,
            "nvmlDeviceGetMigDeviceHandleByIndex": self.mig_handle,
            "nvmlDeviceGetGpuInstanceId": lambda h: h[2],
        }
        for name, fake in fakes.items():
            assert hasattr(pynvml, name), name  # only patch what the real module has
            monkeypatch.setattr(pynvml, name, fake)

    def init(self) -> None:
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)
        self.initialized += 1

    def count(self) -> int:
        if self.count_error is not None:
            raise pynvml.NVMLError(self.count_error)
        return len(self.gpus)

    def handle(self, index: int) -> int:
        if self.gpus[index].lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return index

    def gpu(self, handle: Any, function: str, *, uuid: bool = False) -> FakeGpu:
        gpu = self.gpus[handle[1] if isinstance(handle, tuple) else handle]
        if gpu.lost or (gpu.lost_after_uuid and not uuid):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        if function in gpu.unsupported:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu

    def name(self, handle: Any) -> str:
        gpu = self.gpu(handle, "nvmlDeviceGetName")
        if isinstance(handle, tuple):
            return f"{gpu.name} MIG {self.mig_entry(handle)[1]}"
        return gpu.name

    def utilization(self, handle: Any) -> pynvml.c_nvmlUtilization_t:
        if isinstance(handle, tuple):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        gpu = self.gpu(handle, "nvmlDeviceGetUtilizationRates")
        return pynvml.c_nvmlUtilization_t(gpu=gpu.utilization, memory=7)

    def memory(self, handle: Any) -> pynvml.c_nvmlMemory_t:
        gpu = self.gpu(handle, "nvmlDeviceGetMemoryInfo")
        if isinstance(handle, tuple):
            used = self.mig_entry(handle)[2] * 1024 * 1024
            return pynvml.c_nvmlMemory_t(total=used * 2, free=used, used=used)
        total = gpu.memory_used + gpu.memory_free
        return pynvml.c_nvmlMemory_t(total=total, free=gpu.memory_free, used=gpu.memory_used)

    def temperature(self, handle: Any, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return self.gpu(handle, "nvmlDeviceGetTemperature").temperature

    def clock(self, handle: Any, kind: int) -> int:
        assert kind == pynvml.NVML_CLOCK_SM
        return self.gpu(handle, "nvmlDeviceGetClockInfo").sm_clock

    def processes(self, handle: Any) -> list[Any]:
        gpu = self.gpu(handle, "nvmlDeviceGetComputeRunningProcesses")
        pids = gpu.pids if not isinstance(handle, tuple) else [self.mig_entry(handle)[0] + 1000]
        return [
            pynvml.nvmlStructToFriendlyObject(pynvml.c_nvmlProcessInfo_t(pid=pid, usedGpuMemory=1))
            for pid in pids
        ]

    def mig_mode(self, handle: Any) -> list[int]:
        gpu = self.gpu(handle, "nvmlDeviceGetMigMode")
        enabled = pynvml.NVML_DEVICE_MIG_ENABLE if gpu.mig else pynvml.NVML_DEVICE_MIG_DISABLE
        return [enabled, enabled]

    def mig_handle(self, handle: int, slot: int) -> tuple[str, int, int]:
        gpu = self.gpu(handle, "nvmlDeviceGetMigDeviceHandleByIndex")
        if slot >= len(gpu.mig):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return ("mig", handle, gpu.mig[slot][0])

    def mig_entry(self, handle: tuple[str, int, int]) -> tuple[int, str, int]:
        return next(m for m in self.gpus[handle[1]].mig if m[0] == handle[2])


def write_cgroup(proc: Path, pid: int, text: str) -> None:
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "cgroup").write_text(text)


# -- no driver ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code", [pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED]
)
async def test_no_driver_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    fake = FakeNvml(monkeypatch, [])
    fake.init_error = code
    collector = NvmlCollector(node="n")
    with pytest.raises(TelemetryUnavailable, match="NVML unavailable: no NVIDIA driver"):
        await collector.start()
    assert collector.version == 0


async def test_real_nvml_on_a_host_without_driver() -> None:
    """Unpatched: on a machine without an NVIDIA driver, start() says so clearly."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this host has an NVIDIA driver")
    with pytest.raises(TelemetryUnavailable, match="no NVIDIA driver"):
        await NvmlCollector().start()


# -- reading -----------------------------------------------------------------------------------


async def test_values_and_unit_conversions(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeNvml(monkeypatch, [FakeGpu("GPU-aaa"), FakeGpu("GPU-bbb", utilization=3)])
    collector = NvmlCollector(node="ws-1", history_length=2)
    await collector.scrape_once()
    snapshot = collector.snapshot()
    assert (collector.version, snapshot.sources, snapshot.errors) == (1, 1, 0)
    gpu = snapshot.samples["GPU-aaa"]
    assert (gpu.gpu, gpu.node, gpu.model_name) == (0, "ws-1", "NVIDIA H100 80GB HBM3")
    assert (gpu.device, gpu.pci_bus_id) == ("nvidia0", "00000000:00:00.0")
    assert gpu.utilization == 42.0
    assert (gpu.fb_used_mib, gpu.fb_free_mib) == (20 * 1024.0, 60 * 1024.0)  # bytes -> MiB
    assert gpu.power_watts == 350.5  # mW -> W
    assert (gpu.temperature_c, gpu.sm_clock_mhz, gpu.energy_mj) == (61.0, 1980.0, 987654321.0)
    assert (gpu.last_xid, gpu.engine_active, gpu.mig_profile) == (None, None, None)
    assert snapshot.samples["GPU-bbb"].gpu == 1
    await collector.scrape_once()
    await collector.scrape_once()
    assert collector.snapshot().history["GPU-bbb"] == (3.0, 3.0)


async def test_not_supported_fields_are_none(monkeypatch: pytest.MonkeyPatch) -> None:
    unsupported = {
        "nvmlDeviceGetPowerUsage",
        "nvmlDeviceGetTotalEnergyConsumption",
        "nvmlDeviceGetUtilizationRates",
        "nvmlDeviceGetPciInfo",
    }
    FakeNvml(monkeypatch, [FakeGpu("GPU-aaa", unsupported=unsupported)])
    collector = NvmlCollector(node="n")
    gpu = collector.read_gpus()[0]
    assert (gpu.power_watts, gpu.energy_mj, gpu.utilization, gpu.pci_bus_id) == (
        None,
        None,
        None,
        None,
    )
    assert (gpu.temperature_c, gpu.fb_used_mib) == (61.0, 20 * 1024.0)


async def test_a_lost_gpu_has_no_values_and_the_others_are_fine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gpus = [FakeGpu("GPU-ok"), FakeGpu("GPU-lost", lost_after_uuid=True), FakeGpu("GPU-gone")]
    fake = FakeNvml(monkeypatch, gpus)
    collector = NvmlCollector(node="n")
    await collector.scrape_once()
    first = collector.snapshot().samples
    assert first["GPU-ok"].utilization == 42.0
    lost = first["GPU-lost"]
    assert (lost.gpu, lost.utilization, lost.fb_used_mib, lost.power_watts) == (1, None, None, None)
    assert first["GPU-gone"].utilization == 42.0
    fake.gpus[2].lost = True  # now even its handle is gone: known by its last uuid
    await collector.scrape_once()
    second = collector.snapshot()
    gone = second.samples["GPU-gone"]
    assert (gone.gpu, gone.utilization, gone.model_name) == (2, None, None)
    assert second.history["GPU-gone"] == (42.0, None)
    assert second.samples["GPU-ok"].utilization == 42.0


async def test_device_list_failure_keeps_the_last_round_and_counts_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNvml(monkeypatch, [FakeGpu("GPU-aaa")])
    collector = NvmlCollector(node="n")
    await collector.scrape_once()
    fake.count_error = pynvml.NVML_ERROR_UNKNOWN
    await collector.scrape_once()
    snapshot = collector.snapshot()
    assert (collector.version, snapshot.errors) == (2, 1)
    assert snapshot.samples["GPU-aaa"].utilization == 42.0
    assert snapshot.history["GPU-aaa"] == (42.0, None)
    assert collector.last_error is not None and "Unknown" in collector.last_error


async def test_mig_instances(monkeypatch: pytest.MonkeyPatch) -> None:
    mig = [(1, "3g.40gb", 512), (9, "1g.10gb", 128)]
    FakeNvml(monkeypatch, [FakeGpu("GPU-mig", name="NVIDIA A100-SXM4-80GB", mig=mig)])
    samples = {gpu.uuid: gpu for gpu in NvmlCollector(node="n").read_gpus()}
    assert set(samples) == {"GPU-mig", "GPU-mig/1", "GPU-mig/9"}
    small = samples["GPU-mig/9"]
    assert (small.mig_profile, small.mig_instance, small.fb_used_mib) == ("1g.10gb", "9", 128.0)
    assert (small.utilization, small.power_watts, small.gpu) == (None, None, 0)
    assert samples["GPU-mig"].power_watts == 350.5  # device-wide values stay on the parent


async def test_processes_are_mapped_to_pods(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_cgroup(tmp_path, 100, "0::/system.slice/sshd.service\n")
    write_cgroup(
        tmp_path,
        200,
        "0::/kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-pod{POD_UID.replace('-', '_')}.slice/cri-containerd-ab12.scope\n",
    )
    FakeNvml(monkeypatch, [FakeGpu("GPU-a", pids=[100, 999, 200]), FakeGpu("GPU-b", pids=[100])])
    pods = {POD_UID: ("team-a", "llm-0")}
    collector = NvmlCollector(node="n", pod_resolver=pods.get, proc_root=tmp_path)
    gpus = {gpu.uuid: gpu for gpu in collector.read_gpus()}
    assert (gpus["GPU-a"].namespace, gpus["GPU-a"].pod) == ("team-a", "llm-0")
    assert gpus["GPU-b"].pod is None  # a host process, not a pod
    unresolved = NvmlCollector(node="n", proc_root=tmp_path).read_gpus()
    assert unresolved[0].pod is None  # no resolver: the uid alone names no pod


# -- cgroup files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cgroup",
    [
        # cgroup v1, cgroupfs driver
        f"12:memory:/kubepods/burstable/pod{POD_UID}/3f4e5d\n11:cpu,cpuacct:/kubepods/burstable/"
        f"pod{POD_UID}/3f4e5d\n",
        # cgroup v1, guaranteed QoS (no QoS folder)
        f"4:devices:/kubepods/pod{POD_UID}/0123abcd\n",
        # cgroup v1, systemd driver
        "5:pids:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
        f"{POD_UID.replace('-', '_')}.slice/docker-0123.scope\n",
        # cgroup v2, systemd driver
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
        f"{POD_UID.replace('-', '_')}.slice/cri-containerd-9f8e.scope\n",
        # cgroup v2, cgroupfs driver, upper-case hex
        f"0::/kubepods/besteffort/pod{POD_UID.upper()}/cri-containerd-9f8e\n",
    ],
)
def test_pod_uid_from_cgroup(cgroup: str) -> None:
    assert pod_uid_from_cgroup(cgroup) == POD_UID


@pytest.mark.parametrize(
    "cgroup",
    [
        "0::/user.slice/user-1000.slice/session-3.scope\n",
        "0::/system.slice/containerd.service\n",
        "0::/\n",
        "",
        f"0::/docker/pod{POD_UID}\n",  # a pod-like name outside kubepods
    ],
)
def test_processes_outside_kubernetes_have_no_pod(cgroup: str) -> None:
    assert pod_uid_from_cgroup(cgroup) is None


def test_pod_uid_of_a_vanished_process(tmp_path: Path) -> None:
    assert pod_uid_of_pid(4242, tmp_path) is None


def test_mig_profile_from_name() -> None:
    assert mig_profile_from_name("NVIDIA A100-SXM4-40GB MIG 1g.5gb") == "1g.5gb"
    assert mig_profile_from_name("NVIDIA H100 80GB HBM3") is None
    assert mig_profile_from_name(None) is None
