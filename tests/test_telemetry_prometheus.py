"""Telemetry from a real Prometheus server scraping the sandbox's DCGM exporters.

The sandbox's clock is frozen, so its exporters answer the same values on every scrape: the
backend reading Prometheus must then show exactly what the backend scraping the exporters shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import certifi
import httpx
import pytest
import yaml

from backend.main import RunningBackend
from backend.service import Backend
from backend.settings import Settings
from backend.telemetry.dcgm import parse_dcgm
from backend.telemetry.prometheus_api import PrometheusCollector
from tests.conftest import FROZEN_TIME, SEED
from tests.prom_fixture import PromServer, exporter_scrape_config, running_prometheus
from tests.support.sandbox import SandboxThread, sandbox_ca, tls_context
from tests.support.tokens import admin_headers

SAMPLES = Path("/work/shared/samples")
COMPARED = (
    "node",
    "index",
    "uuid",
    "model",
    "mig_profile",
    "utilization",
    "engine_active",
    "memory_used_mib",
    "memory_total_mib",
    "temperature_c",
    "memory_temperature_c",
    "power_watts",
    "sm_clock_mhz",
    "last_xid",
    "pod",
    "namespace",
    "tenant",
    "allocated",
    "idle",
)


# -- the cluster, its Prometheus, backends on both ------------------------------------------------
def kubeconfig_token(path: Path) -> str | None:
    config = yaml.safe_load(path.read_text())
    token: str | None = config["users"][0]["user"].get("token")
    return token


def exporter_pods(sandbox: SandboxThread, token: str | None) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(
        f"{sandbox.url}/api/v1/pods",
        params={"labelSelector": "app=nvidia-dcgm-exporter"},
        headers=headers,
        verify=tls_context(),
    )
    response.raise_for_status()
    pods: list[dict[str, Any]] = response.json()["items"]
    return pods


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxThread]:
    path = tmp_path_factory.mktemp("prom-sandbox") / "kubeconfig"
    running = SandboxThread(
        path, fleet="demo", seed=SEED, frozen_time=FROZEN_TIME, settle_seconds=0
    )
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def scrape_configs(sandbox: SandboxThread) -> list[dict[str, Any]]:
    token = kubeconfig_token(sandbox.kubeconfig_path)
    pods = exporter_pods(sandbox, token)
    assert pods, "the demo fleet has DCGM exporters"
    return [exporter_scrape_config(sandbox.url, token, pods, ca_file=sandbox_ca())]


@contextlib.contextmanager
def start_scraping(scrape_configs: list[dict[str, Any]], *flags: str) -> Iterator[PromServer]:
    """A Prometheus that has scraped every target at least once."""
    targets = sum(len(group["targets"]) for c in scrape_configs for group in c["static_configs"])
    with running_prometheus(scrape_configs, flags) as prom:
        prom.wait_for("up == 1", targets)
        yield prom


@pytest.fixture(scope="module")
def prom(scrape_configs: list[dict[str, Any]]) -> Iterator[PromServer]:
    with start_scraping(scrape_configs) as server:
        yield server


@pytest.fixture
def private_prom(scrape_configs: list[dict[str, Any]]) -> Iterator[PromServer]:
    """A Prometheus of the test's own, which it may stop."""
    with start_scraping(scrape_configs) as server:
        yield server


class Backends:
    """Backends started on the sandbox's loop, each served on loopback."""

    def __init__(self, sandbox: SandboxThread, workdir: Path) -> None:
        self.sandbox = sandbox
        self.workdir = workdir
        self.running: list[RunningBackend] = []

    def start(self, **settings: Any) -> str:
        name = f"backend-{len(self.running)}"
        values: dict[str, Any] = {
            "kubeconfig": self.sandbox.kubeconfig_path,
            "port": 0,
            "database_url": f"sqlite:///{self.workdir / name}.db",
            "scrape_interval": 1.0,
            "history_length": 6,
            "model_debounce": 0.05,
            **settings,
        }
        backend = RunningBackend(Settings(**values))
        url = self._on_loop(backend.__aenter__())
        self.running.append(backend)
        ADMIN[url] = admin_headers(values["database_url"])
        return url

    def _on_loop(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.sandbox.loop).result(timeout=60)

    def stop_all(self) -> None:
        for backend in self.running:
            self._on_loop(backend.__aexit__(None, None, None))


@pytest.fixture
def backends(sandbox: SandboxThread, tmp_path: Path) -> Iterator[Backends]:
    started = Backends(sandbox, tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


ADMIN: dict[str, dict[str, str]] = {}  # backend URL -> an admin's Authorization header


def all_gpus(url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    with httpx.Client(base_url=url, timeout=10.0, headers=ADMIN[url]) as http:
        while True:
            page = http.get("/api/v1/gpus", params={"limit": 1000, "cursor": cursor}).json()
            items.extend(page["items"])
            cursor = page["next"]
            if cursor is None:
                return items


def freshness(url: str) -> dict[str, Any]:
    info: dict[str, Any] = httpx.get(f"{url}/api/v1/info", timeout=10.0, headers=ADMIN[url]).json()
    return dict(info["freshness"])


def wait_for_telemetry(url: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The GPUs, once the backend has synced and shows telemetry for every one of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = freshness(url)
        if fresh["synced"] and fresh["telemetry_age_seconds"] is not None:
            gpus = all_gpus(url)
            if gpus and all(gpu["sampled_at"] for gpu in gpus):
                return gpus
        time.sleep(0.2)
    raise TimeoutError(f"no telemetry from {url} within {timeout} s")


def eventually(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


# -- through the backend's HTTP API -----------------------------------------------------------
def test_prometheus_mode_shows_what_the_exporters_show(
    prom: PromServer, backends: Backends
) -> None:
    direct = backends.start(telemetry_mode="proxy")
    through_prometheus = backends.start(telemetry_mode="prometheus", prometheus_url=prom.url)
    scraped = {gpu["uuid"]: gpu for gpu in wait_for_telemetry(direct)}
    read = {gpu["uuid"]: gpu for gpu in wait_for_telemetry(through_prometheus)}
    assert read.keys() == scraped.keys()
    assert any(gpu["pod"] for gpu in read.values()), "some GPUs are held by pods"
    assert any(gpu["utilization"] for gpu in read.values())
    for uuid, gpu in read.items():
        assert {k: gpu[k] for k in COMPARED} == {k: scraped[uuid][k] for k in COMPARED}, uuid
    info = httpx.get(f"{through_prometheus}/api/v1/info", headers=ADMIN[through_prometheus]).json()
    assert info["telemetry_mode"] == "prometheus"
    assert info["freshness"]["telemetry_errors"] == 0


def test_prometheus_stopped_mid_run_reads_as_stale_with_its_age(
    private_prom: PromServer, backends: Backends
) -> None:
    url = backends.start(telemetry_mode="prometheus", prometheus_url=private_prom.url)
    before = {gpu["uuid"]: gpu for gpu in wait_for_telemetry(url)}
    stopped_at = datetime.now(UTC)
    private_prom.stop()

    def failure() -> dict[str, str] | None:  # while it shuts down, Prometheus answers 503
        failures = freshness(url)["telemetry_failures"]
        return failures[0] if failures and "unreachable" in failures[0]["error"] else None

    assert eventually(failure)["source"] == private_prom.url
    time.sleep(2.0)
    fresh = freshness(url)
    assert fresh["telemetry_age_seconds"] >= 2.0, "the age keeps counting"
    after = {gpu["uuid"]: gpu for gpu in all_gpus(url)}
    assert after.keys() == before.keys(), "the GPUs stay, with their last samples"
    for gpu in after.values():
        assert datetime.fromisoformat(gpu["sampled_at"]) < stopped_at
        assert gpu["utilization"] == before[gpu["uuid"]]["utilization"]
        assert gpu["history"][-1] is None, "a round that read nothing adds no value"

    private_prom.start()  # same storage: it picks up where it stopped
    assert eventually(lambda: freshness(url)["telemetry_errors"] == 0, timeout=30.0)
    assert freshness(url)["telemetry_age_seconds"] < 2.0


# -- the collector against Prometheus's answers --------------------------------------------------
async def one_round(collector: PrometheusCollector) -> None:
    try:
        await collector.scrape_once()
    finally:
        await collector.stop()


async def test_history_comes_from_query_range(prom: PromServer) -> None:
    history_length = 5
    while len(prom.query("DCGM_FI_DEV_GPU_UTIL[10s]")[0]["values"]) < history_length + 1:
        await asyncio.sleep(0.5)  # Prometheus has scraped long enough to fill the history
    collector = PrometheusCollector(prom.url, interval=1.0, history_length=history_length)
    await one_round(collector)
    snapshot = collector.snapshot()
    assert snapshot.samples and not snapshot.failures
    for uuid, sample in snapshot.samples.items():
        history = snapshot.history[uuid]
        assert len(history) == history_length, "one round, yet a full history"
        if sample.utilization is not None:  # frozen clock: the same value on every scrape
            assert list(history) == [sample.utilization] * history_length


async def test_a_query_error_body_is_the_rounds_error(
    scrape_configs: list[dict[str, Any]],
) -> None:
    # A real Prometheus refusing the query once it holds data: more samples than it may load.
    with running_prometheus(scrape_configs, ["--query.max-samples=1"]) as limited:
        collector = PrometheusCollector(limited.url, interval=1.0)
        try:
            for _ in range(50):  # until the first scrape landed and the query fails
                await collector.scrape_once()
                if collector.snapshot().failures:
                    break
                await asyncio.sleep(0.2)
        finally:
            await collector.stop()
    snapshot = collector.snapshot()
    assert snapshot.samples == {}
    (error,) = snapshot.failures.values()
    assert error.startswith("HTTP 422: execution: query processing would load too many samples")
    assert snapshot.errors == snapshot.sources == 1


class TokenProxy:
    """A bearer-token gate in front of Prometheus (as kube-rbac-proxy or a gateway would be)."""

    def __init__(self, upstream: str, token: str) -> None:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("Authorization") != f"Bearer {gate.token}":
                    self._send(401, b"Unauthorized\n", "text/plain")
                    return
                answer = httpx.get(upstream + self.path, timeout=5.0)
                self._send(answer.status_code, answer.content, "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.token = token
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def token_proxy(prom: PromServer) -> Iterator[TokenProxy]:
    proxy = TokenProxy(prom.url, "right-token")
    yield proxy
    proxy.close()


async def test_a_wrong_token_is_a_401_error(token_proxy: TokenProxy) -> None:
    wrong = PrometheusCollector(token_proxy.url, interval=1.0, token="wrong-token")
    await one_round(wrong)
    assert wrong.snapshot().failures == {token_proxy.url: "HTTP 401 Unauthorized"}
    assert wrong.snapshot().samples == {}
    right = PrometheusCollector(token_proxy.url, interval=1.0, token="right-token")
    await one_round(right)
    assert right.snapshot().samples and not right.snapshot().failures


async def test_the_token_file_is_read_each_round(token_proxy: TokenProxy, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("right-token\n")
    collector = PrometheusCollector(token_proxy.url, interval=1.0, token_file=token_file)
    try:
        await collector.scrape_once()
        assert collector.snapshot().samples and not collector.snapshot().failures
        token_proxy.token = "rotated-token"
        await collector.scrape_once()
        assert collector.snapshot().failures == {token_proxy.url: "HTTP 401 Unauthorized"}
        token_file.write_text("rotated-token\n")
        await collector.scrape_once()
        assert not collector.snapshot().failures
    finally:
        await collector.stop()


# -- upstream exporter output, as Prometheus stores it ------------------------------------------
class StaticExporters:
    """Fixed exporter texts by path, on loopback."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path not in texts:
                    self.send_error(404)
                    return
                body = texts[self.path].encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def static_job(name: str, address: str, path: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "job_name": name,
        "metrics_path": path,
        "static_configs": [{"targets": [address], "labels": labels}],
    }


# MIG instances whose pod labels come only with a later field (each field is a query of its own)
MIG = (
    'DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-806",GPU_I_PROFILE="1g.5gb",GPU_I_ID="7"} 100\n'
    'DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-806",GPU_I_PROFILE="1g.5gb",GPU_I_ID="7",'
    'pod="p",namespace="team-b",container="c"} 0.25\n'
    'DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-806",GPU_I_PROFILE="3g.20gb",GPU_I_ID="1"} 2000\n'
)


async def test_upstream_samples_read_through_prometheus_equal_a_direct_parse() -> None:
    readme = (SAMPLES / "dcgm-exporter-readme-sample.prom").read_text()
    held = readme.replace('namespace=""', 'namespace="team-a"').replace('pod=""', 'pod="llama-0"')
    exporters = StaticExporters(
        {"/readme": readme, "/held": held.replace("GPU-604", "GPU-705"), "/mig": MIG}
    )
    # The second target carries the exporter pod's own pod/namespace labels, as Kubernetes
    # service discovery adds them: Prometheus renames the scraped ones exported_pod/_namespace.
    exporter_pod = {"pod": "dcgm-exporter-x1", "namespace": "gpu-operator"}
    jobs = [
        static_job("readme", exporters.address, "/readme", {}),
        static_job("held", exporters.address, "/held", exporter_pod),
        static_job("mig", exporters.address, "/mig", {}),
    ]
    try:
        with start_scraping(jobs) as prom:
            stored = prom.query('DCGM_FI_DEV_SM_CLOCK{job="held"}')[0]["metric"]
            assert stored["exported_pod"] == "llama-0" and stored["pod"] == "dcgm-exporter-x1"
            collector = PrometheusCollector(prom.url, interval=1.0, history_length=1)
            await one_round(collector)
    finally:
        exporters.close()
    expected = [
        *parse_dcgm(readme),
        *parse_dcgm(held.replace("GPU-604", "GPU-705")),
        *parse_dcgm(MIG),
    ]
    read = collector.snapshot().samples
    assert sorted(read) == sorted(gpu.uuid for gpu in expected)
    for gpu in expected:
        gpu.sampled_at = read[gpu.uuid].sampled_at
        assert read[gpu.uuid] == gpu
    assert read[expected[0].uuid].memory_temperature_c is None, "the DCGM blank sentinel"
    assert (read[expected[1].uuid].pod, read[expected[1].uuid].namespace) == ("llama-0", "team-a")
    assert (read["GPU-806/7"].pod, read["GPU-806/7"].fb_used_mib) == ("p", 100.0)


async def test_a_target_down_in_prometheus_keeps_its_gpus_marked_failed() -> None:
    readme = (SAMPLES / "dcgm-exporter-readme-sample.prom").read_text()
    other = readme.replace("GPU-604", "GPU-705")
    exporters = StaticExporters({"/a": readme, "/b": other})
    jobs = [
        static_job("a", exporters.address, "/a", {}),
        static_job("b", exporters.address, "/b", {}),
    ]
    collector = PrometheusCollector("", interval=1.0)
    try:
        with start_scraping(jobs) as prom:
            collector.url = prom.url
            await collector.scrape_once()
            first = collector.snapshot()
            assert len(first.samples) == 2 and not first.failures
            exporters.texts.pop("/b")  # its exporter now answers 404: Prometheus marks it down
            prom.wait_for('up{job="b"} == 0', 1)
            await collector.scrape_once()
    finally:
        await collector.stop()
        exporters.close()
    snapshot = collector.snapshot()
    assert snapshot.samples.keys() == first.samples.keys(), "the down target's GPU stays"
    assert snapshot.failures == {f"b/{exporters.address}": "target down in Prometheus (up == 0)"}
    (down,) = [uuid for uuid in snapshot.samples if uuid.startswith("GPU-705")]
    assert snapshot.samples[down].sampled_at == first.samples[down].sampled_at, "its old sample"
    assert snapshot.history[down][-1] is None
    (up,) = [uuid for uuid in snapshot.samples if uuid.startswith("GPU-604")]
    assert snapshot.samples[up].sampled_at > first.samples[up].sampled_at


async def test_a_prometheus_that_does_not_answer_times_out() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    collector = PrometheusCollector(
        f"http://127.0.0.1:{silent.getsockname()[1]}", interval=1.0, timeout=0.3
    )
    try:
        await one_round(collector)
    finally:
        silent.close()
    assert list(collector.snapshot().failures.values()) == ["timed out after 0.3 s"]


def test_prometheus_mode_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxThread, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("t0ken\n")
    monkeypatch.setenv("OPSCONSOLE_TELEMETRY_MODE", "prometheus")
    monkeypatch.setenv("OPSCONSOLE_PROMETHEUS_URL", "https://prometheus.monitoring:9090/")
    monkeypatch.setenv("OPSCONSOLE_PROMETHEUS_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("OPSCONSOLE_PROMETHEUS_CA_FILE", certifi.where())
    backend = Backend(Settings(kubeconfig=sandbox.kubeconfig_path))
    collector = backend.telemetry
    assert isinstance(collector, PrometheusCollector)
    assert collector.url == "https://prometheus.monitoring:9090"
    assert collector.token_file == tmp_path / "token" and collector.verify == certifi.where()
