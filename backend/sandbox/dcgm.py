"""The sandbox's DCGM exporters: one per GPU node, answering ``/metrics`` like dcgm-exporter.

The API server proxies ``pods/<exporter>:9400/proxy/metrics`` to ``DcgmExporters.handle``; the
text is dcgm-exporter's (``# HELP``/``# TYPE`` per field, then one line per GPU with labels
``gpu, UUID, pci_bus_id, device, modelName, Hostname, DCGM_FI_DRIVER_VERSION`` and, for GPUs
the kubelet gave to a pod, ``container, namespace, pod``). Values come from ``gpusim``.
Rendering is string concatenation over per-node cached label prefixes: a node of 8 GPUs takes
well under a millisecond, so 1,000 exporters can be scraped every few seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from backend.conventions import GPU_PRODUCT_LABEL, GPU_RESOURCE
from backend.sandbox import gpusim
from backend.sandbox.clock import Clock
from backend.sandbox.store import NODE, POD, JsonObject, Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
EXPORTER_PORT = 9400
_MEM_CLOCK = {"h100": 2619, "a100": 1593, "l40s": 9001}

# (field, type, help, value) in dcgm-exporter's default-counters order.
Field = tuple[str, str, str, Callable[[gpusim.GpuSample, gpusim.GpuModel], str]]
FIELDS: tuple[Field, ...] = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", lambda s, m: str(s.sm_clock)),
    (
        "DCGM_FI_DEV_MEM_CLOCK",
        "gauge",
        "Memory clock frequency (in MHz).",
        lambda s, m: str(_MEM_CLOCK.get(m.flavor, 1593) if s.util else 405),
    ),
    (
        "DCGM_FI_DEV_MEMORY_TEMP",
        "gauge",
        "Memory temperature (in C).",
        lambda s, m: str(s.memory_temp),
    ),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", lambda s, m: str(s.gpu_temp)),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", lambda s, m: f"{s.power_w:.6f}"),
    (
        "DCGM_FI_DEV_POWER_MGMT_LIMIT",
        "gauge",
        "Power management limit (in W).",
        lambda s, m: f"{m.power_limit_w:.6f}",
    ),
    (
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "counter",
        "Total energy consumption since boot (in mJ).",
        lambda s, m: str(s.energy_mj),
    ),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", lambda s, m: str(s.util)),
    (
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "gauge",
        "Memory utilization (in %).",
        lambda s, m: str(int(s.util * 0.55)),
    ),
    (
        "DCGM_FI_DEV_XID_ERRORS",
        "gauge",
        "Value of the last XID error encountered.",
        lambda s, m: str(s.xid),
    ),
    (
        "DCGM_FI_DEV_FB_FREE",
        "gauge",
        "Framebuffer memory free (in MiB).",
        lambda s, m: str(s.fb_free),
    ),
    (
        "DCGM_FI_DEV_FB_USED",
        "gauge",
        "Framebuffer memory used (in MiB).",
        lambda s, m: str(s.fb_used),
    ),
    (
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "gauge",
        "Ratio of time the graphics engine is active.",
        lambda s, m: f"{s.gr_engine_active:.6f}",
    ),
)
_HEADERS = tuple(f"# HELP {name} {text}\n# TYPE {name} {kind}\n" for name, kind, text, _ in FIELDS)


def _label_value(text: str) -> str:
    """Escape a label value as the Prometheus text format requires."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass(frozen=True)
class NodeGpus:
    """What an exporter knows about its node without asking again: model and label prefixes."""

    product: str
    count: int
    model: gpusim.GpuModel
    prefixes: tuple[str, ...]  # 'gpu="0",UUID="...",...,DCGM_FI_DRIVER_VERSION="..."'


def node_gpus(node: JsonObject) -> NodeGpus | None:
    meta = node["metadata"]
    product = (meta.get("labels") or {}).get(GPU_PRODUCT_LABEL)
    if not product:
        return None
    status = node.get("status") or {}
    count = int(
        str((status.get("capacity") or status.get("allocatable") or {}).get(GPU_RESOURCE, 0))
    )
    model = gpusim.model_for_product(product)
    name = meta["name"]
    host = _label_value(name)
    prefixes = tuple(
        f'gpu="{i}",UUID="{gpusim.gpu_uuid(name, i)}",pci_bus_id="{gpusim.pci_bus_id(i)}",'
        f'device="nvidia{i}",modelName="{model.model_name}",Hostname="{host}",'
        f'DCGM_FI_DRIVER_VERSION="{gpusim.DRIVER_VERSION}"'
        for i in range(count)
    )
    return NodeGpus(product, count, model, prefixes)


class DcgmExporters:
    """All exporters of the sandbox; ``handle`` is installed as ``store.proxy_handler``."""

    def __init__(self, store: Store, clock: Clock, seed: int, allocator) -> None:
        self.store = store
        self.clock = clock
        self.seed = seed
        self.allocator = allocator
        self._nodes: dict[str, tuple[str, NodeGpus | None]] = {}  # name -> (resourceVersion, info)
        self._specials: tuple[int, gpusim.Specials] | None = None
        self._profiles: dict[tuple[str, str], str] = {}

    def handle(self, pod: JsonObject, port: str, path: str) -> tuple[int, str, bytes]:
        """Answer a proxied request to an exporter pod, as the exporter's HTTP server does."""
        if not _is_exporter(pod) or str(port) not in ("", str(EXPORTER_PORT), "metrics"):
            ip = (pod.get("status") or {}).get("podIP", "")
            body = (
                f"error trying to reach service: dial tcp {ip}:{port}: connect: connection refused"
            )
            return 503, "text/plain; charset=utf-8", body.encode()
        if path.strip("/") != "metrics":
            return 404, "text/plain; charset=utf-8", b"404 page not found\n"
        node = (pod.get("spec") or {}).get("nodeName", "")
        return 200, CONTENT_TYPE, self.render_node(node).encode()

    def render_node(self, node_name: str) -> str:
        """The exporter's full ``/metrics`` text for one node ("" for a node without GPUs)."""
        info = self._node_info(node_name)
        if info is None:
            return ""
        t = self.clock.now().timestamp()
        specials = self._fleet_specials()
        owners = self.allocator.pods_on(node_name)
        samples = []
        suffixes = []
        for i in range(info.count):
            holder = owners.get(i)
            profile = self._profile(holder[0], holder[1]) if holder else gpusim.IDLE
            samples.append(
                gpusim.sample_gpu(self.seed, info.model, node_name, i, profile, t, specials)
            )
            if holder:
                ns, pod, container = (_label_value(x) for x in holder)
                suffixes.append(f',container="{container}",namespace="{ns}",pod="{pod}"}} ')
            else:
                suffixes.append("} ")
        out = []
        model = info.model
        for header, (name, _kind, _help, value) in zip(_HEADERS, FIELDS, strict=True):
            out.append(header)
            for i, sample in enumerate(samples):
                out.append(f"{name}{{{info.prefixes[i]}{suffixes[i]}{value(sample, model)}\n")
        return "".join(out)

    # -- caches ---------------------------------------------------------------------------------
    def _node_info(self, node_name: str) -> NodeGpus | None:
        node = self.store.find(NODE, "", node_name)
        if node is None:
            return None
        version = node["metadata"].get("resourceVersion", "")
        cached = self._nodes.get(node_name)
        if cached is not None and cached[0] == version:
            return cached[1]
        info = node_gpus(node)
        self._nodes[node_name] = (version, info)
        return info

    def _fleet_specials(self) -> gpusim.Specials:
        count = self.store.count(NODE)
        if self._specials is None or self._specials[0] != count:
            names = [
                n["metadata"]["name"]
                for n in self.store.list(NODE)
                if GPU_PRODUCT_LABEL in (n["metadata"].get("labels") or {})
            ]
            self._specials = (count, gpusim.choose_specials(self.seed, names))
        return self._specials[1]

    def _profile(self, namespace: str, pod_name: str) -> str:
        key = (namespace, pod_name)
        profile = self._profiles.get(key)
        if profile is None:
            pod = self.store.find(POD, namespace, pod_name)
            kind, owner = "Pod", pod_name
            for ref in ((pod or {}).get("metadata") or {}).get("ownerReferences") or ():
                kind, owner = ref.get("kind", kind), ref.get("name", owner)
            owner_key = f"{namespace}/{_workload_of(kind, owner)}"
            profile = gpusim.workload_profile(self.seed, kind, owner_key)
            if len(self._profiles) > 200_000:
                self._profiles.clear()
            self._profiles[key] = profile
        return profile


def _workload_of(kind: str, owner: str) -> str:
    """A ReplicaSet's workload is its Deployment: drop the pod-template-hash suffix."""
    if kind == "ReplicaSet" and "-" in owner:
        return owner.rsplit("-", 1)[0]
    return owner


def _is_exporter(pod: JsonObject) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return labels.get("app.kubernetes.io/name") == "dcgm-exporter" or (
        labels.get("app") == "nvidia-dcgm-exporter"
    )
