"""The sandbox's DCGM exporters: dcgm-exporter's text format, labels, anomalies, determinism."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend.conventions import GPU_PRODUCT_LABEL
from backend.sandbox import gpusim
from backend.sandbox.clock import Clock
from backend.sandbox.controllers.base import GpuAllocator
from backend.sandbox.dcgm import CONTENT_TYPE, DcgmExporters
from backend.sandbox.fleet_tenants import create_dcgm_exporter_pods
from backend.sandbox.store import NODE, POD, Store
from tests.support.sandbox import sandbox_ca

FROZEN = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
PRODUCTS = ["NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB", "NVIDIA-L40S"]


def _node(name: str, product: str, gpus: int = 8) -> dict:
    return {
        "metadata": {"name": name, "labels": {GPU_PRODUCT_LABEL: product}},
        "status": {"capacity": {"nvidia.com/gpu": str(gpus)}},
    }


@pytest.fixture
def fleet():
    clock = Clock(frozen=FROZEN)
    store = Store()
    allocator = GpuAllocator()
    nodes = []
    for i in range(12):
        node = store.create(NODE, _node(f"gpu-node-{i:02d}", PRODUCTS[i % 3]))
        allocator.set_capacity(node["metadata"]["name"], 8)
        nodes.append(node)
    store.create(NODE, {"metadata": {"name": "cpu-node-00"}, "status": {}})
    create_dcgm_exporter_pods(store, clock, store.list(NODE))
    for ns, name, kind in (("team-a", "train-0", "Job"), ("team-b", "llm-abc12-xyz", "ReplicaSet")):
        store.create(
            POD,
            {
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "ownerReferences": [{"kind": kind, "name": name.rsplit("-", 1)[0]}],
                },
                "spec": {"nodeName": "gpu-node-00"},
            },
        )
    allocator.assign("gpu-node-00", ("team-a", "train-0"), 4, "trainer")
    allocator.assign("gpu-node-00", ("team-b", "llm-abc12-xyz"), 2, "kserve-container")
    # Work on the node the simulation saturates: only GPUs that pods hold get pegged.
    saturated = gpusim.choose_specials(7, [n["metadata"]["name"] for n in nodes]).saturated_node
    allocator.assign(saturated, ("team-c", "batch-0"), 3, "worker")
    exporters = DcgmExporters(store, clock, seed=7, allocator=allocator)
    return store, clock, exporters


def _exporter(store: Store, node: str) -> dict:
    return next(p for p in store.list(POD, "gpu-operator") if p["spec"]["nodeName"] == node)


def _samples(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        out.setdefault(family.name, []).extend(family.samples)
    return out


def test_one_exporter_pod_per_gpu_node(fleet):
    store, _, _ = fleet
    pods = store.list(POD, "gpu-operator")
    assert len(pods) == 12
    pod = pods[0]
    assert pod["metadata"]["name"].startswith("nvidia-dcgm-exporter-")
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "dcgm-exporter"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    assert pod["spec"]["containers"][0]["ports"][0] == {
        "name": "metrics",
        "containerPort": 9400,
        "protocol": "TCP",
    }
    assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"]


def test_metrics_parse_with_the_prometheus_parser(fleet):
    store, _, exporters = fleet
    code, ctype, body = exporters.handle(_exporter(store, "gpu-node-00"), "9400", "metrics")
    assert (code, ctype) == (200, CONTENT_TYPE)
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name in (
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_MEMORY_TEMP",
        "DCGM_FI_DEV_SM_CLOCK",
        "DCGM_FI_DEV_XID_ERRORS",
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    ):
        assert families[name].type == "gauge"
        assert len(families[name].samples) == 8
    assert families["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"].type == "counter"
    labels = families["DCGM_FI_DEV_GPU_UTIL"].samples[0].labels
    assert labels["gpu"] == "0"
    assert labels["UUID"] == gpusim.gpu_uuid("gpu-node-00", 0)
    assert labels["UUID"].startswith("GPU-") and len(labels["UUID"]) == 40
    assert labels["pci_bus_id"] == "00000000:18:00.0"
    assert labels["device"] == "nvidia0"
    assert labels["modelName"] == "NVIDIA H100 80GB HBM3"
    assert labels["Hostname"] == "gpu-node-00"
    assert labels["DCGM_FI_DRIVER_VERSION"] == gpusim.DRIVER_VERSION


def test_allocated_gpus_carry_pod_labels(fleet):
    _store, _, exporters = fleet
    text = exporters.render_node("gpu-node-00")
    util = {s.labels["gpu"]: s.labels for s in _samples(text)["DCGM_FI_DEV_GPU_UTIL"]}
    for gpu in "0123":
        assert util[gpu]["pod"] == "train-0"
        assert util[gpu]["namespace"] == "team-a"
        assert util[gpu]["container"] == "trainer"
    assert util["4"]["pod"] == "llm-abc12-xyz" and util["5"]["namespace"] == "team-b"
    assert "pod" not in util["7"]


def test_memory_totals_and_power_limits_are_realistic(fleet):
    _store, _, exporters = fleet
    for node, model in (("gpu-node-00", gpusim.H100), ("gpu-node-01", gpusim.A100)):
        s = _samples(exporters.render_node(node))
        for used, free in zip(s["DCGM_FI_DEV_FB_USED"], s["DCGM_FI_DEV_FB_FREE"], strict=True):
            assert 0 < used.value + free.value <= model.memory_mib
        for power in s["DCGM_FI_DEV_POWER_USAGE"]:
            assert 0 < power.value <= model.power_limit_w
        assert {p.value for p in s["DCGM_FI_DEV_POWER_MGMT_LIMIT"]} == {model.power_limit_w}


def test_l40s_memory_temperature_is_the_blank_sentinel(fleet):
    _, _, exporters = fleet
    s = _samples(exporters.render_node("gpu-node-02"))
    assert s["DCGM_FI_DEV_GPU_UTIL"][0].labels["modelName"] == "NVIDIA L40S"
    assert {m.value for m in s["DCGM_FI_DEV_MEMORY_TEMP"]} == {gpusim.DCGM_INT64_BLANK}
    h100 = _samples(exporters.render_node("gpu-node-00"))
    assert all(20 < m.value < 110 for m in h100["DCGM_FI_DEV_MEMORY_TEMP"])


def test_fleet_has_a_saturated_node_an_xid_and_a_hot_gpu(fleet):
    store, _, exporters = fleet
    held, free, xids, temps = {}, [], [], []
    for node in store.list(NODE):
        name = node["metadata"]["name"]
        s = _samples(exporters.render_node(name))
        if not s:
            continue
        utils = s["DCGM_FI_DEV_GPU_UTIL"]
        held[name] = [x.value for x in utils if x.labels.get("pod")]
        free += [x.value for x in utils if not x.labels.get("pod")]
        xids += [x.value for x in s["DCGM_FI_DEV_XID_ERRORS"] if x.value]
        temps += [x.value for x in s["DCGM_FI_DEV_GPU_TEMP"]]
    assert any(values and min(values) >= 97 for values in held.values())  # the saturated node
    assert free and set(free) == {0}  # a GPU no pod holds does nothing, there too
    assert xids and set(xids) <= {79, 48}
    assert max(temps) >= 88
    assert exporters.render_node("cpu-node-00") == ""


def test_values_are_deterministic_for_a_frozen_clock_and_move_with_time(fleet):
    store, clock, exporters = fleet
    first = exporters.render_node("gpu-node-00")
    again = DcgmExporters(store, clock, seed=7, allocator=exporters.allocator)
    assert again.render_node("gpu-node-00") == first
    energy_then = _samples(first)["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]
    clock.frozen = FROZEN + timedelta(hours=6, seconds=13)
    later = exporters.render_node("gpu-node-00")
    assert later != first
    energy_now = _samples(later)["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]
    assert all(b.value > a.value for a, b in zip(energy_then, energy_now, strict=True))


def test_inference_follows_a_daily_curve():
    night = gpusim.daily_load(FROZEN.replace(hour=3).timestamp(), 0.0)
    afternoon = gpusim.daily_load(FROZEN.replace(hour=15).timestamp(), 0.0)
    assert afternoon > night + 0.5


def test_other_paths_and_ports_are_refused(fleet):
    store, _, exporters = fleet
    pod = _exporter(store, "gpu-node-03")
    assert exporters.handle(pod, "9400", "healthz")[0] == 404
    assert exporters.handle(pod, "8080", "metrics")[0] == 503


async def test_metrics_reach_the_backend_through_the_pod_proxy():
    """As the backend scrapes: the API server's pod proxy, with the official client."""
    import asyncio

    from kubernetes import client as k8s

    from backend.sandbox.server import Sandbox

    sandbox = Sandbox(fleet="empty", seed=7, frozen_time=FROZEN, settle_seconds=0.0)
    for i, product in enumerate(PRODUCTS):
        sandbox.store.create(NODE, _node(f"gpu-node-{i:02d}", product))
    create_dcgm_exporter_pods(sandbox.store, sandbox.clock, sandbox.store.list(NODE))
    async with sandbox:
        config = k8s.Configuration(host=sandbox.url)
        config.api_key = {"authorization": "Bearer sandbox-admin"}
        config.ssl_ca_cert = sandbox_ca()
        api = k8s.CoreV1Api(k8s.ApiClient(config))
        pods = await asyncio.to_thread(
            api.list_namespaced_pod, "gpu-operator", label_selector="app=nvidia-dcgm-exporter"
        )
        assert len(pods.items) == 3
        pod = next(p for p in pods.items if p.spec.node_name == "gpu-node-02")
        text = await asyncio.to_thread(
            api.connect_get_namespaced_pod_proxy_with_path,
            f"{pod.metadata.name}:9400",
            "gpu-operator",
            "metrics",
        )
    samples = _samples(text)
    assert len(samples["DCGM_FI_DEV_GPU_UTIL"]) == 8
    assert samples["DCGM_FI_DEV_GPU_UTIL"][0].labels["Hostname"] == "gpu-node-02"
    assert samples["DCGM_FI_DEV_MEMORY_TEMP"][0].value == gpusim.DCGM_INT64_BLANK
