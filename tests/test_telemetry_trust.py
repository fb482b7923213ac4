"""Trusted telemetry against the sandbox over real HTTP: exporters only in the GPU operator's
namespace, each speaking only for its own node's GPUs, reached through the kubeconfig's proxy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from backend.cluster.kubeconfig import ClusterAccess, load_cluster_access
from backend.settings import Settings
from backend.telemetry.base import TelemetrySnapshot
from backend.telemetry.discovery import ExporterDiscovery, tls_context
from backend.telemetry.prometheus_api import PrometheusCollector
from backend.telemetry.scrape import ScrapeTarget, TelemetryCollector
from tests.conftest import FROZEN_TIME, SEED
from tests.prom_fixture import running_prometheus
from tests.support.exporters import Exporters, running_exporters
from tests.support.proxy import running_proxy
from tests.support.sandbox import ADMIN_HEADERS, SandboxThread
from tests.support.sandbox import tls_context as sandbox_tls

EXPORTER_LABELS = {"app": "nvidia-dcgm-exporter"}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxThread]:
    path = tmp_path_factory.mktemp("trust-sandbox") / "kubeconfig"
    running = SandboxThread(
        path, fleet="demo", seed=SEED, frozen_time=FROZEN_TIME, settle_seconds=0
    )
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def exporters() -> Iterator[Exporters]:
    with running_exporters() as state:
        yield state


def api(sandbox: SandboxThread, method: str, path: str, **kwargs: Any) -> Any:
    """A request to the sandbox's API as its admin; the JSON answer (text for non-JSON)."""
    response = httpx.request(
        method, f"{sandbox.url}{path}", headers=ADMIN_HEADERS, verify=sandbox_tls(), **kwargs
    )
    response.raise_for_status()
    is_json = response.headers["content-type"].startswith("application/json")
    return response.json() if is_json else response.text


def labelled_exporters(sandbox: SandboxThread) -> list[dict[str, Any]]:
    """Every pod labelled as an exporter, in any namespace: what a label selector alone finds."""
    params = {"labelSelector": "app=nvidia-dcgm-exporter"}
    items: list[dict[str, Any]] = api(sandbox, "GET", "/api/v1/pods", params=params)["items"]
    return items


def discovery(pods: list[dict[str, Any]], namespaces: tuple[str, ...] | None = None):
    defaults = Settings()
    return ExporterDiscovery(
        pods=lambda: pods,
        selector=defaults.dcgm_selector,
        port=defaults.dcgm_port,
        namespaces=namespaces or tuple(defaults.dcgm_namespaces),
    )


def proxy_targets(access: ClusterAccess, pods: list[dict[str, Any]], **kw: Any) -> list:
    return discovery(pods, **kw).proxy_targets(access.server, access.api_client)


async def one_round(access: ClusterAccess, targets: Any) -> TelemetrySnapshot:
    collector = TelemetryCollector(targets, verify=tls_context(access.api_client))
    try:
        await collector.scrape_once()
    finally:
        await collector.stop()
    return collector.snapshot()


def nodes_of(snapshot: TelemetrySnapshot) -> dict[str, str | None]:
    return {uuid: gpu.node for uuid, gpu in snapshot.samples.items()}


def metrics_of(sandbox: SandboxThread, pod: dict[str, Any]) -> str:
    meta = pod["metadata"]
    path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}:9400/proxy/metrics"
    text: str = api(sandbox, "GET", path)
    return text


def running(sandbox: SandboxThread, namespace: str, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        pod: dict[str, Any] = api(sandbox, "GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
        if (pod.get("status") or {}).get("phase") == "Running":
            return pod
        assert time.monotonic() < deadline, f"pod {namespace}/{name} never ran"
        time.sleep(0.05)


async def test_a_tenants_pod_labelled_as_an_exporter_is_not_scraped(
    sandbox: SandboxThread,
) -> None:
    access = load_cluster_access(sandbox.kubeconfig_path)
    real = labelled_exporters(sandbox)
    assert {p["metadata"]["namespace"] for p in real} == {"gpu-operator"}
    tenant_ns = next(
        ns["metadata"]["name"]
        for ns in api(sandbox, "GET", "/api/v1/namespaces")["items"]
        if "opsconsole.io/tenant" in (ns["metadata"].get("labels") or {})
    )
    node = real[0]["spec"]["nodeName"]
    spoof = {
        "metadata": {"name": "nvidia-dcgm-exporter-spoof", "labels": EXPORTER_LABELS},
        "spec": {"nodeName": node, "containers": [{"name": "exporter", "image": "x:1"}]},
    }
    api(sandbox, "POST", f"/api/v1/namespaces/{tenant_ns}/pods", json=spoof)
    try:
        running(sandbox, tenant_ns, "nvidia-dcgm-exporter-spoof")
        pods = labelled_exporters(sandbox)
        assert len(pods) == len(real) + 1, "the label alone selects the tenant's pod"
        # The default namespaces are the GPU operator's: the tenant's pod is no target.
        targets = proxy_targets(access, pods)
        assert len(targets) == len(real)
        assert all("/namespaces/gpu-operator/" in t.url for t in targets)
        snapshot = await one_round(access, lambda: targets)
        assert (snapshot.sources, snapshot.failures) == (len(real), {})
        assert node in set(nodes_of(snapshot).values())
        # Allowing every namespace would have scraped it.
        anywhere = proxy_targets(access, pods, namespaces=("*",))
        assert any(f"/namespaces/{tenant_ns}/" in t.url for t in anywhere)
    finally:
        api(sandbox, "DELETE", f"/api/v1/namespaces/{tenant_ns}/pods/nvidia-dcgm-exporter-spoof")


def two_nodes(pods: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two exporter pods on different nodes: the spoofer's node (a) and the victim's (b)."""
    by_node = {p["spec"]["nodeName"]: p for p in pods}
    a, b = sorted(by_node)[:2]
    return by_node[a], by_node[b]


def fake_on(node: str, exporters: Exporters, path: str) -> ScrapeTarget:
    """An exporter of the GPU operator on ``node`` (as discovery would name it) whose answers
    the test writes."""
    target = exporters.target(path, node=node)
    target.pod = "nvidia-dcgm-exporter-fake"
    return target


async def test_an_exporter_reporting_another_nodes_gpus_is_refused(
    sandbox: SandboxThread, exporters: Exporters
) -> None:
    access = load_cluster_access(sandbox.kubeconfig_path)
    pods = labelled_exporters(sandbox)
    a_pod, b_pod = two_nodes(pods)
    a, b = a_pod["spec"]["nodeName"], b_pod["spec"]["nodeName"]
    b_text = metrics_of(sandbox, b_pod)
    # B's GPUs as B's exporter reports them, and the same UUIDs claimed for node A.
    exporters.responses["/b-as-is"] = (200, b_text)
    exporters.responses["/b-as-a"] = (200, b_text.replace(f'Hostname="{b}"', f'Hostname="{a}"'))
    real = proxy_targets(access, pods)
    targets: list[ScrapeTarget] = list(real)
    collector = TelemetryCollector(lambda: targets, verify=tls_context(access.api_client))
    try:
        await collector.scrape_once()
        honest = collector.snapshot()
        b_gpus = {uuid for uuid, node in nodes_of(honest).items() if node == b}
        assert b_gpus and not honest.failures
        # Spoofers on node A, scraped before B's own exporter.
        fakes = [fake_on(a, exporters, "/b-as-is"), fake_on(a, exporters, "/b-as-a")]
        targets[:0] = fakes
        await collector.scrape_once()
    finally:
        await collector.stop()
    snapshot = collector.snapshot()
    assert nodes_of(snapshot) == nodes_of(honest), "no GPU of B moved to A"
    for uuid in b_gpus:
        assert snapshot.samples[uuid].sampled_at > honest.samples[uuid].sampled_at, "B's own"
    assert snapshot.failures.keys() == {t.url for t in fakes}
    as_is, as_a = (snapshot.failures[t.url] for t in fakes)
    assert as_is.startswith(f"refused {len(b_gpus)} of {len(b_gpus)} GPUs not of node {a}:")
    assert f'has host "{b}"' in as_is
    assert f"belongs to node {b}" in as_a
    assert snapshot.sources == len(real) + 2


async def test_a_gpu_claimed_by_two_nodes_from_the_start_is_nobodys(
    sandbox: SandboxThread, exporters: Exporters
) -> None:
    access = load_cluster_access(sandbox.kubeconfig_path)
    pods = labelled_exporters(sandbox)
    a_pod, b_pod = two_nodes(pods)
    a, b = a_pod["spec"]["nodeName"], b_pod["spec"]["nodeName"]
    b_text = metrics_of(sandbox, b_pod)
    exporters.responses["/b-as-a"] = (200, b_text.replace(f'Hostname="{b}"', f'Hostname="{a}"'))
    fake = fake_on(a, exporters, "/b-as-a")
    real = proxy_targets(access, pods)
    honest = nodes_of(await one_round(access, lambda: real))
    snapshot = await one_round(access, lambda: [fake, *real])
    # Neither claim can be told from a spoof: B's GPUs have no telemetry, and both say why.
    assert nodes_of(snapshot) == {uuid: node for uuid, node in honest.items() if node != b}
    b_url = next(t.url for t in real if t.node == b)
    assert snapshot.failures.keys() == {fake.url, b_url}
    assert f"also reported for node {a}" in snapshot.failures[b_url]


async def test_fixed_urls_reporting_one_gpu_for_two_hosts_are_refused(
    exporters: Exporters,
) -> None:
    # No pod, no node: each sample's host label stands for its node; only the UUID rule applies.
    line = 'DCGM_FI_DEV_GPU_UTIL{{gpu="0",UUID="GPU-1",Hostname="{host}"}} 5\n'
    exporters.responses["/x"] = (200, line.format(host="node-x"))
    exporters.responses["/y"] = (200, line.format(host="node-y"))
    exporters.responses["/x-again"] = (200, line.format(host="node-x"))
    targets = [exporters.target("/x"), exporters.target("/x-again")]
    collector = TelemetryCollector(lambda: targets)
    try:
        await collector.scrape_once()
        assert nodes_of(collector.snapshot()) == {"GPU-1": "node-x"}
        assert not collector.snapshot().failures
        targets.append(exporters.target("/y"))
        await collector.scrape_once()
    finally:
        await collector.stop()
    snapshot = collector.snapshot()
    assert nodes_of(snapshot) == {"GPU-1": "node-x"}
    assert snapshot.failures == {
        f"{exporters.url}/y": "refused 1 of 1 GPUs not of its host: GPU-1 belongs to node node-x"
    }


def with_proxy_url(kubeconfig: Path, proxy_url: str, into: Path) -> Path:
    config = yaml.safe_load(kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["proxy-url"] = proxy_url
    into.write_text(yaml.safe_dump(config))
    return into


async def test_scrapes_go_through_the_kubeconfigs_proxy_url(
    sandbox: SandboxThread, tmp_path: Path
) -> None:
    pods = labelled_exporters(sandbox)
    sandbox_address = sandbox.url.removeprefix("https://").rstrip("/")
    with running_proxy() as proxy:
        kubeconfig = with_proxy_url(sandbox.kubeconfig_path, proxy.url, tmp_path / "kubeconfig")
        access = load_cluster_access(kubeconfig)
        targets = proxy_targets(access, pods)
        assert {t.proxy for t in targets} == {proxy.url}
        snapshot = await one_round(access, lambda: targets)
    assert (snapshot.sources, snapshot.failures) == (len(pods), {})
    assert len(snapshot.samples) > 0
    assert proxy.tunnels and set(proxy.tunnels) == {sandbox_address}
    # The sandbox is still up, but the proxy is gone: every scrape fails at the proxy.
    snapshot = await one_round(access, lambda: proxy_targets(access, pods))
    assert snapshot.errors == len(pods)
    port = proxy.url.rsplit(":", 1)[1]
    assert all(port in why for why in snapshot.failures.values())
    # kubectl also takes SOCKS proxies (so does the client, with PySocks installed); the scrape
    # says it cannot rather than fail obscurely.
    socks = [replace(t, proxy="socks5://127.0.0.1:1080") for t in proxy_targets(access, pods)]
    snapshot = await one_round(access, lambda: socks)
    assert set(snapshot.failures.values()) == {"proxy socks5:// is not supported, only http(s)://"}


def gpu_lines(host: str, uuids: list[str]) -> str:
    return "".join(
        f'DCGM_FI_DEV_GPU_UTIL{{gpu="{i}",UUID="{uuid}",Hostname="{host}"}} 42\n'
        for i, uuid in enumerate(uuids)
    )


def static_job(name: str, address: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "job_name": name,
        "metrics_path": f"/{name}",
        "static_configs": [{"targets": [address], "labels": labels}],
    }


async def test_prometheus_targets_are_held_to_their_namespace_and_node(
    exporters: Exporters,
) -> None:
    b_gpus = ["GPU-b0", "GPU-b1"]
    exporters.responses["/honest"] = (200, gpu_lines("node-b", b_gpus))
    exporters.responses["/tenant"] = (200, gpu_lines("node-b", ["GPU-t0"]))
    exporters.responses["/other-node"] = (200, gpu_lines("node-b", b_gpus))
    address = exporters.url.removeprefix("http://")
    operator = {"namespace": "gpu-operator"}
    jobs = [
        static_job("honest", address, {**operator, "node": "node-b", "pod": "exporter-b"}),
        static_job("tenant", address, {"namespace": "team-a", "pod": "nvidia-dcgm-exporter"}),
        static_job("other-node", address, {**operator, "node": "node-a", "pod": "exporter-a"}),
    ]
    with running_prometheus(jobs) as prom:
        prom.wait_for("up == 1", len(jobs))
        collector = PrometheusCollector(prom.url, namespaces=Settings().dcgm_namespaces)
        try:
            await collector.scrape_once()
        finally:
            await collector.stop()
    snapshot = collector.snapshot()
    assert nodes_of(snapshot) == dict.fromkeys(b_gpus, "node-b")
    assert snapshot.failures == {
        f"tenant/{address}": "namespace team-a is not an exporter's",
        f"other-node/{address}": 'refused 2 of 2 GPUs not of node node-a: GPU-b0 has host "node-b"',
    }
