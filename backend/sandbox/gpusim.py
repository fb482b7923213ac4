"""Simulated GPU behaviour: what each GPU of the sandbox fleet reports at a given instant.

The numbers are a pure function of (seed, node, GPU index, the pod on it, time), so a frozen clock
gives stable telemetry (snapshot tests) while a running clock makes them move like a real fleet:
inference follows a daily load curve, training runs steadily hot, some workloads hold GPUs without
using them, one node is saturated, a few GPUs report XID errors, one runs hot. No random generator
is consulted per scrape: noise is a few sines with per-GPU phases, which is cheap and repeatable.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

DRIVER_VERSION = "550.90.07"
# DCGM's "blank" value for a field the GPU does not report (shown by real L40S exporters).
DCGM_INT64_BLANK = 9223372036854775794
# The bus ids of the eight GPUs of an HGX board, as nvidia-smi shows them.
# Nodes "booted" a few days before this instant (2025-11-24); energy counts from there.
_BOOT_EPOCH = 1_764_000_000.0
_PCI_BUSES = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)


@dataclass(frozen=True)
class GpuModel:
    """One GPU model: its node label, Kueue flavor, the exporter's modelName and its limits."""

    product: str  # node label nvidia.com/gpu.product (set by GPU feature discovery)
    flavor: str  # Kueue ResourceFlavor name
    model_name: str  # DCGM's modelName label
    memory_mib: int
    power_limit_w: float
    idle_power_w: float
    max_sm_clock: int
    idle_sm_clock: int
    reports_memory_temp: bool = True


H100 = GpuModel(
    "NVIDIA-H100-80GB-HBM3", "h100", "NVIDIA H100 80GB HBM3", 81559, 700.0, 72.0, 1980, 345
)
A100 = GpuModel(
    "NVIDIA-A100-SXM4-80GB", "a100", "NVIDIA A100-SXM4-80GB", 81920, 400.0, 58.0, 1410, 210
)
L40S = GpuModel(
    "NVIDIA-L40S", "l40s", "NVIDIA L40S", 46068, 350.0, 34.0, 2520, 210, reports_memory_temp=False
)
GPU_MODELS: dict[str, GpuModel] = {m.product: m for m in (H100, A100, L40S)}


def model_for_product(product: str) -> GpuModel:
    """The model for a node's product label; unknown products get H100-like limits."""
    known = GPU_MODELS.get(product)
    if known is not None:
        return known
    name = product.replace("-", " ")
    return GpuModel(product, product.lower(), name, 81559, 700.0, 70.0, 1980, 345)


def stable_hash(*parts: object) -> int:
    """A 64-bit hash that, unlike ``hash()``, is the same in every process."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def gpu_uuid(node: str, index: int) -> str:
    """A deterministic ``GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`` for a node's GPU."""
    h = hashlib.md5(f"{node}/{index}".encode()).hexdigest()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def pci_bus_id(index: int) -> str:
    return f"00000000:{_PCI_BUSES[index % len(_PCI_BUSES)]:02X}:00.0"


@dataclass(frozen=True)
class GpuSample:
    """One GPU's readings, in dcgm-exporter's units."""

    util: int  # %
    fb_used: int  # MiB
    fb_free: int  # MiB
    power_w: float
    gpu_temp: int  # C
    memory_temp: int  # C, or DCGM_INT64_BLANK
    sm_clock: int  # MHz
    xid: int  # last XID error, 0 = none
    energy_mj: int  # since boot, monotonic
    gr_engine_active: float  # 0..1


# Workload profiles: how a GPU held by a pod behaves.
IDLE = "idle"  # no pod on it
TRAINING = "training"
INFERENCE = "inference"
PARKED = "parked"  # allocated but (almost) unused


@dataclass(frozen=True)
class Specials:
    """The fleet's deliberate anomalies, chosen once per node list."""

    saturated_node: str | None
    xid_gpus: dict[tuple[str, int], int]  # (node, index) -> last XID
    hot_gpu: tuple[str, int] | None


def choose_specials(seed: int, nodes: list[str]) -> Specials:
    """Pick a saturated node, XID GPUs (one per ~250 nodes, at least one) and a hot GPU."""
    if not nodes:
        return Specials(None, {}, None)
    ordered = sorted(nodes, key=lambda n: stable_hash(seed, "special", n))
    saturated = ordered[0]
    xid_count = max(1, len(nodes) // 250)
    xids: dict[tuple[str, int], int] = {}
    for i, node in enumerate(ordered[1 : 1 + xid_count] or ordered[:1]):
        xids[(node, stable_hash(seed, "xid", node) % 8)] = 79 if i % 2 == 0 else 48
    hot_node = ordered[1 + xid_count] if len(ordered) > 1 + xid_count else ordered[-1]
    return Specials(saturated, xids, (hot_node, stable_hash(seed, "hot", hot_node) % 8))


def workload_profile(seed: int, owner_kind: str, owner_key: str) -> str:
    """Training for Jobs, inference otherwise; about one workload in seven sits idle."""
    if stable_hash(seed, "parked", owner_key) % 7 == 0:
        return PARKED
    return TRAINING if owner_kind == "Job" else INFERENCE


def daily_load(t: float, phase: float) -> float:
    """Inference demand over a day (0..1): low at night, peaking mid-afternoon UTC."""
    hour = (t / 3600.0 + phase) % 24.0
    return 0.55 + 0.4 * math.sin((hour - 9.0) / 24.0 * 2.0 * math.pi)


def _wiggle(t: float, phase: float) -> float:
    """Deterministic noise in about -1..1 that changes over seconds to minutes."""
    return 0.6 * math.sin(t / 17.0 + phase) + 0.4 * math.sin(t / 5.3 + 2.1 * phase)


def sample_gpu(
    seed: int,
    model: GpuModel,
    node: str,
    index: int,
    profile: str,
    t: float,
    specials: Specials,
) -> GpuSample:
    """One GPU's readings at epoch second ``t``."""
    key = stable_hash(seed, node, index)
    phase = (key % 6283) / 1000.0
    noise = _wiggle(t, phase)
    if node == specials.saturated_node and profile != IDLE:
        util = 99.0 + noise  # every workload on it is pegged; its free GPUs stay idle
    elif profile == TRAINING:
        util = 93.0 + 5.0 * noise
    elif profile == INFERENCE:
        # Serving rarely saturates a GPU: busy hours reach 50-80 %, nights 10-20 %.
        scale = 0.65 + 0.45 * ((key >> 16) % 100) / 100.0
        util = 100.0 * scale * (0.05 + 0.7 * daily_load(t, (key % 100) / 100.0)) + 5.0 * noise
    elif profile == PARKED:
        util = 1.0 + noise
    else:
        util = 0.0
    util = min(100.0, max(0.0, util))
    load = util / 100.0
    busy = profile != IDLE
    if busy:
        share = 0.97 if profile == TRAINING else 0.55 + 0.35 * ((key >> 8) % 100) / 100.0
        fb_used = int(model.memory_mib * share)
    else:
        fb_used = 0
    reserved = 530 if model.memory_mib > 50000 else 410
    fb_free = model.memory_mib - reserved - fb_used
    span = model.power_limit_w - model.idle_power_w
    power = model.idle_power_w + span * load * 0.93 + 3.0 * noise
    power = min(model.power_limit_w, max(model.idle_power_w * 0.9, power))
    temp = 31.0 + 45.0 * load + 2.0 * noise
    if (node, index) == specials.hot_gpu:
        temp = 90.0 + noise
    memory_temp = int(temp + 4.0) if model.reports_memory_temp else DCGM_INT64_BLANK
    sm_clock = model.idle_sm_clock if util < 1.0 else model.max_sm_clock
    if temp > 85.0:
        sm_clock = int(model.max_sm_clock * 0.8)  # thermal slowdown
    booted = _BOOT_EPOCH - 86_400.0 * (3 + key % 40)
    mean_power = model.idle_power_w + span * 0.45
    energy = int(mean_power * max(0.0, t - booted) * 1000.0)
    return GpuSample(
        util=round(util),
        fb_used=fb_used,
        fb_free=fb_free,
        power_w=round(power, 3),
        gpu_temp=round(temp),
        memory_temp=memory_temp,
        sm_clock=sm_clock,
        xid=specials.xid_gpus.get((node, index), 0),
        energy_mj=energy,
        gr_engine_active=round(min(1.0, load * 0.94), 6),
    )
