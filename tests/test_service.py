"""The backend service over real HTTP: probes, metrics, info, error shapes, `opsconsole serve`."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client

from backend.cluster.cache import CacheOptions
from backend.cluster.kubeconfig import ClusterAccess, load_cluster_access
from backend.main import RunningBackend, main, settings_from_args
from backend.sandbox.server import Sandbox
from backend.service import Backend
from backend.settings import Settings
from backend.telemetry.discovery import exporter_pods, selector_predicate
from backend.telemetry.scrape import TelemetryCollector
from tests.support.tokens import admin_headers

DEADLINE = 15.0
REPO = Path(__file__).resolve().parents[1]


async def eventually(predicate: Callable[[], object], what: str, deadline: float = DEADLINE):
    """Poll an async-or-sync predicate until truthy; the deadline only bounds a failure."""
    end = time.monotonic() + deadline
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _admin(backend: Backend) -> dict[str, str]:
    return admin_headers(backend.settings.database_url)


def settings_for(kubeconfig: Path, tmp_path: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "kubeconfig": kubeconfig,
        "port": 0,
        "database_url": f"sqlite:///{tmp_path / 'db' / 'opsconsole.db'}",
        "telemetry_mode": "off",
        "model_debounce": 0.05,
    }
    values.update(extra)
    return Settings(**values)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(fleet="empty", controllers=False) as sb:
        yield sb


@pytest.fixture
async def served(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[tuple[str, Backend]]:
    kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    running = RunningBackend(settings_for(kubeconfig, tmp_path))
    async with running as url:
        assert running.backend is not None
        assert await running.backend.cache.wait_synced(DEADLINE)
        yield url, running.backend


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_readyz_waits_for_the_first_sync(tmp_path: Path) -> None:
    # The backend starts before its cluster is reachable: alive, but not ready, and says why.
    port = free_port()
    kubeconfig = tmp_path / "kubeconfig"
    sandbox = Sandbox(fleet="empty", controllers=False, port=port)
    config = sandbox.kubeconfig()
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    kubeconfig.write_text(yaml.safe_dump(config))
    settings = settings_for(kubeconfig, tmp_path)
    backend = Backend(settings, cache_options=CacheOptions(backoff_initial=0.05, backoff_max=0.2))
    async with (
        RunningBackend(settings, backend) as url,
        httpx.AsyncClient(base_url=url, headers=admin_headers(settings.database_url)) as http,
    ):
        assert (await http.get("/healthz")).status_code == 200
        answer = await http.get("/readyz")
        assert answer.status_code == 503
        assert "not synced" in answer.json()["detail"]
        assert "pods" in answer.json()["detail"]
        info = (await http.get("/api/v1/info")).json()
        assert info["freshness"]["synced"] is False
        assert not gc.isenabled(), "the collector waits for the first model"
        await sandbox.start()
        try:
            await eventually(
                lambda: _status(http, "/readyz", 200), "ready once the cluster answers"
            )
            assert gc.isenabled()
        finally:
            await sandbox.stop()
        assert (await http.get("/healthz")).status_code == 200


async def _status(http: httpx.AsyncClient, path: str, code: int) -> bool:
    return (await http.get(path)).status_code == code


async def test_info_describes_the_cluster(served: tuple[str, Backend], sandbox: Sandbox) -> None:
    url, backend = served
    async with httpx.AsyncClient(base_url=url, headers=_admin(backend)) as http:
        await eventually(lambda: backend.cache.cluster_version, "the cluster version")
        info = (await http.get("/api/v1/info")).json()
    assert info["cluster_server"] == sandbox.url
    assert info["cluster_context"] == "opsconsole-sandbox"
    assert info["cluster_version"] == "v1.31.4"
    assert info["telemetry_mode"] == "off"
    assert info["freshness"]["synced"] is True
    assert info["freshness"]["cluster_age_seconds"] is not None
    assert info["freshness"]["telemetry_age_seconds"] is None


async def test_openapi_and_error_shapes(
    served: tuple[str, Backend], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, backend = served
    async with httpx.AsyncClient(base_url=url, headers=_admin(backend)) as http:
        schema = (await http.get("/openapi.json")).json()
        assert schema["info"]["title"] == "opsconsole backend"
        assert "/api/v1/info" in schema["paths"]

        missing = await http.get("/api/v1/no-such-thing")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "Not Found"}

        invalid = await http.get("/api/v1/gpus", params={"limit": "lots"})
        assert invalid.status_code == 422
        detail = invalid.json()["detail"]
        assert isinstance(detail, str)
        assert "limit" in detail and "lots" in detail

        def broken() -> None:
            raise RuntimeError("secret internals")

        monkeypatch.setattr(backend, "info", broken)
        failed = await http.get("/api/v1/info")
        assert failed.status_code == 500
        assert failed.json() == {"detail": "internal server error"}
        assert "secret internals" not in failed.text


async def test_metrics(served: tuple[str, Backend]) -> None:
    url, backend = served
    async with httpx.AsyncClient(base_url=url, headers=_admin(backend)) as http:
        await http.get("/api/v1/info")
        await http.get("/api/v1/tenants/some-team")
        await http.get("/api/v1/no-such-thing-anywhere")
        text = (await http.get("/metrics")).text
    assert 'route="/api/v1/info"' in text
    assert 'route="/api/v1/tenants/{name}"' in text  # the template, never the cluster's names
    assert "some-team" not in text
    assert 'route="unmatched"' in text and "no-such-thing-anywhere" not in text
    assert "opsconsole_http_request_duration_seconds_bucket" in text
    assert "opsconsole_cluster_synced 1.0" in text
    assert "opsconsole_watch_restarts_total 0.0" in text
    assert "opsconsole_cluster_cache_age_seconds" in text
    assert "opsconsole_telemetry_age_seconds -1.0" in text
    assert "opsconsole_model_build_duration_seconds" in text
    assert 'opsconsole_cluster_objects{kind="namespaces"}' in text
    assert "process_resident_memory_bytes" in text


async def test_cluster_changes_reach_the_rest_api(
    served: tuple[str, Backend], sandbox: Sandbox, tmp_path: Path
) -> None:
    url, backend = served
    access = load_cluster_access(sandbox.write_kubeconfig(tmp_path / "kc2"))
    namespace = {"metadata": {"name": "team-x", "labels": {"opsconsole.io/tenant": "team-x"}}}
    async with httpx.AsyncClient(base_url=url, headers=_admin(backend)) as http:
        assert (await http.get("/api/v1/tenants/team-x")).status_code == 404
        builds = backend.model_stats.builds
        await asyncio.to_thread(
            client.CoreV1Api(access.api_client).create_namespace,
            client.V1Namespace.model_validate(namespace),
        )
        await eventually(
            lambda: _status(http, "/api/v1/tenants/team-x", 200), "the new tenant in the API"
        )
    assert backend.model_stats.builds > builds


async def test_a_change_answers_once_the_model_shows_what_it_wrote(
    served: tuple[str, Backend],
) -> None:
    """The change path hands its written objects to the cache, then waits for
    ``model_caught_up``: the first read after that shows them, with no polling."""
    url, backend = served
    assert backend.changes is not None and backend.changes.settled == backend.model_caught_up
    labels = {"opsconsole.io/tenant": "team-y"}
    written = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team-y", "labels": labels, "resourceVersion": "999999"},
    }
    async with httpx.AsyncClient(base_url=url, headers=_admin(backend)) as http:
        assert (await http.get("/api/v1/tenants/team-y")).status_code == 404
        backend.cache.upsert(written)  # as the change path does with the API server's answer
        await backend.model_caught_up()
        assert (await http.get("/api/v1/tenants/team-y")).status_code == 200


async def test_telemetry_through_the_pod_proxy(tmp_path: Path) -> None:
    async with Sandbox(fleet="demo", settle_seconds=0) as sandbox:
        kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
        settings = settings_for(kubeconfig, tmp_path, telemetry_mode="proxy", scrape_interval=0.5)
        async with (
            RunningBackend(settings) as url,
            httpx.AsyncClient(base_url=url, headers=admin_headers(settings.database_url)) as http,
        ):

            async def scraped() -> bool:
                info = (await http.get("/api/v1/info")).json()["freshness"]
                return info["telemetry_sources"] > 0 and info["telemetry_age_seconds"] is not None

            await eventually(scraped, "a telemetry round through the pod proxy")
            info = (await http.get("/api/v1/info")).json()["freshness"]
            assert info["telemetry_errors"] == 0
            gpus = await eventually(
                lambda: _gpus_with_utilization(http), "GPUs with telemetry in the API"
            )
            assert gpus > 0


async def _gpus_with_utilization(http: httpx.AsyncClient) -> int:
    page = (await http.get("/api/v1/gpus", params={"limit": 1000})).json()
    return sum(1 for gpu in page["items"] if gpu["utilization"] is not None)


def test_exporter_selection() -> None:
    selectors = [selector_predicate("app=nvidia-dcgm-exporter"), selector_predicate("a=b, c=d")]

    def pod(name: str, labels: dict, phase: str = "Running", ns: str = "gpu-operator") -> dict:
        return {
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "status": {"phase": phase},
        }

    exporter = {"app": "nvidia-dcgm-exporter"}
    pods = [
        pod("x", exporter),
        pod("pending", exporter, phase="Pending"),
        pod("y", {"a": "b", "c": "d"}),
        pod("z", {"a": "b"}),
        pod("tenants-own", exporter, ns="team-a"),
        pod("monitoring", exporter, ns="monitoring"),
    ]
    namespaces = ("gpu-operator", "monitoring")
    names = [p["metadata"]["name"] for p in exporter_pods(iter(pods), selectors, namespaces)]
    assert names == ["x", "y", "monitoring"]
    anywhere = [p["metadata"]["name"] for p in exporter_pods(iter(pods), selectors, ("*",))]
    assert anywhere == ["x", "y", "tenants-own", "monitoring"]


def test_serve_without_a_cluster_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    from opsconsole.cli import build_parser

    assert main(build_parser().parse_args(["serve"])) == 2
    err = capsys.readouterr().err
    assert "no Kubernetes cluster configured" in err
    assert "Traceback" not in err


def test_serve_imports_only_what_the_lists_need_before_starting_them() -> None:
    # `opsconsole serve` starts the cluster's lists first and imports the rest while they run
    # (the console's own modules not at all);
    # the cache uses the official client without its typed API classes (every model, on import).
    later = (
        "backend.service",
        "backend.api",
        "backend.db",
        "backend.telemetry",
        "fastapi",
        "sqlalchemy",
        "uvicorn",
        "kubernetes.client.api.core_v1_api",
        "backend.schemas",
        "httpx",
        "opsconsole.client",
    )
    code = f"import sys, opsconsole.cli, backend.main; print([m for m in {later!r} if m in sys.modules])"
    imported = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert imported.stdout.strip() == "[]"


def test_the_served_backend_leaves_the_page_and_prometheus_clients_to_those_that_use_them() -> None:
    # Its pages are read in a worker process (aiohttp) and Prometheus is read only in its own
    # mode (httpx): the backend's start, which overlaps the cluster's lists, imports neither.
    code = (
        "import sys, backend.main, backend.service, backend.api.app; "
        "print([m for m in ('aiohttp', 'httpx') if m in sys.modules])"
    )
    imported = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert imported.stdout.strip() == "[]"


async def test_serve_command_runs_and_stops_on_sigterm(sandbox: Sandbox, tmp_path: Path) -> None:
    kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    env = {
        **os.environ,
        "OPSCONSOLE_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "OPSCONSOLE_TELEMETRY_MODE": "off",
    }
    # The sandbox runs in this process's loop, so the child must not block it: poll its output.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opsconsole.cli",
            "serve",
            "--kubeconfig",
            str(kubeconfig),
            "--port",
            "0",
        ],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = await asyncio.wait_for(_line_with(proc, "serving on"), DEADLINE)
        url = line.rsplit(" ", 1)[1].strip()
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/healthz")).status_code == 200
            await eventually(lambda: _status(http, "/readyz", 200), "the served backend ready")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, DEADLINE) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        rest = proc.stderr.read()
    assert "Traceback" not in rest


async def _line_with(proc: subprocess.Popen[str], text: str) -> str:
    assert proc.stderr is not None
    while True:
        line = await asyncio.to_thread(proc.stderr.readline)
        if not line:
            raise AssertionError(f"`opsconsole serve` exited without printing {text!r}")
        if text in line:
            return line


def _exporter(
    name: str, node: str, ip: str, phase: str = "Running", namespace: str = "gpu-operator"
) -> dict:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "dcgm-exporter"},
        },
        "spec": {"nodeName": node},
        "status": {"phase": phase, "podIP": ip},
    }


async def test_scrape_targets_per_mode(tmp_path: Path) -> None:
    access = ClusterAccess(
        client.ApiClient(client.Configuration(host="https://k8s.example:6443")),
        "https://k8s.example:6443/",
        "prod",
        "test",
    )
    access.api_client.configuration.api_key["BearerToken"] = "Bearer abc"
    pods = {
        ("gpu-operator", "e1"): _exporter("e1", "node-1", "10.0.0.5"),
        ("gpu-operator", "e2"): _exporter("e2", "node-2", "10.0.0.6", phase="Pending"),
        ("team-a", "e3"): _exporter("e3", "node-2", "10.0.0.7", namespace="team-a"),
    }
    kubeconfig = tmp_path / "unused"

    def targets(mode: str, **extra: object) -> list:
        backend = Backend(settings_for(kubeconfig, tmp_path, telemetry_mode=mode, **extra), access)
        backend.cache._replace("pods", dict(pods))
        assert isinstance(backend.telemetry, TelemetryCollector)
        return backend.telemetry.targets()

    (proxy,) = targets("proxy")
    assert proxy.url == (
        "https://k8s.example:6443/api/v1/namespaces/gpu-operator/pods/e1:9400/proxy/metrics"
    )
    assert (proxy.node, proxy.pod, proxy.proxy) == ("node-1", "e1", None)
    assert proxy.headers == {"authorization": "Bearer abc"}
    access.api_client.configuration.proxy = "http://proxy.example:3128"
    assert targets("proxy")[0].proxy == "http://proxy.example:3128"  # as the client goes
    access.api_client.configuration.no_proxy = "10.0.0.0/8,.example"
    assert targets("proxy")[0].proxy is None  # the client's NO_PROXY exempts the API server
    (direct,) = targets("direct")
    assert (direct.url, direct.node, direct.headers) == (
        "http://10.0.0.5:9400/metrics",
        "node-1",
        {},
    )
    urls = targets("urls", dcgm_urls=["http://a:9400/metrics", "http://b:9400/metrics"])
    assert [t.url for t in urls] == ["http://a:9400/metrics", "http://b:9400/metrics"]
    assert targets("off") == []
    everywhere = targets("direct", dcgm_namespaces="*")
    assert [t.url for t in everywhere] == [
        "http://10.0.0.5:9400/metrics",
        "http://10.0.0.7:9400/metrics",
    ]


async def test_nvml_mode_serves_without_a_driver(sandbox: Sandbox, tmp_path: Path) -> None:
    # Without an NVIDIA driver NVML is unavailable: telemetry is off, the cluster still served.
    kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    settings = settings_for(kubeconfig, tmp_path, telemetry_mode="nvml", scrape_interval=0.5)
    async with (
        RunningBackend(settings) as url,
        httpx.AsyncClient(base_url=url, headers=admin_headers(settings.database_url)) as http,
    ):
        await eventually(lambda: _status(http, "/readyz", 200), "ready")
        info = (await http.get("/api/v1/info")).json()
        assert info["telemetry_mode"] == "nvml"


def test_settings_from_environment_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSCONSOLE_PORT", "9000")
    monkeypatch.setenv("OPSCONSOLE_TELEMETRY_MODE", "urls")
    monkeypatch.setenv("OPSCONSOLE_DCGM_URLS", "http://a:9400/metrics, http://b:9400/metrics")
    monkeypatch.setenv("OPSCONSOLE_CONTEXT", "from-env")
    from opsconsole.cli import build_parser

    args = build_parser().parse_args(["serve", "--context", "from-flag", "--host", "0.0.0.0"])
    settings = settings_from_args(args)
    assert settings.port == 9000
    assert settings.context == "from-flag"
    assert settings.host == "0.0.0.0"
    assert settings.telemetry_mode == "urls"
    assert settings.dcgm_urls == ["http://a:9400/metrics", "http://b:9400/metrics"]
    monkeypatch.setenv("OPSCONSOLE_TELEMETRY_MODE", "carrier-pigeon")
    with pytest.raises(ValueError, match="telemetry_mode"):
        settings_from_args(args)
