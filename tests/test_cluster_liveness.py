"""Stale and missing cluster data is never served as a healthy fleet.

A frozen API server (a stopped process keeps its sockets open, so every watch looks fine), an API
server that refuses the backend from the start, and the moment the backend first says it is ready.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from backend.cluster.cache import CacheOptions
from backend.main import RunningBackend
from backend.sandbox.server import Sandbox
from backend.service import Backend
from backend.settings import Settings
from opsconsole.app import OpsConsoleApp
from opsconsole.settings import ConsoleSettings
from tests.support.console import screen_text, wait_for
from tests.support.tokens import admin_headers, issue_token
from tests.test_service import eventually, settings_for

FLEET_PATHS = ("/api/v1/overview", "/api/v1/tenants", "/api/v1/workloads", "/api/v1/nodes")


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``opsconsole sandbox`` as a process of its own, so that it can be stopped (SIGSTOP)."""
    with _sandbox_process(tmp_path, "empty") as started:
        yield started


@contextlib.contextmanager
def _sandbox_process(tmp_path: Path, fleet: str) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    kubeconfig = tmp_path / "kubeconfig"
    child = subprocess.Popen(
        [
            *(sys.executable, "-m", "opsconsole", "sandbox", "--fleet", fleet, "--port", "0"),
            *("--kubeconfig-out", str(kubeconfig)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not kubeconfig.exists():
            assert child.poll() is None, "the sandbox exited"
            assert time.monotonic() < deadline, "the sandbox did not start"
            time.sleep(0.05)
        yield child, kubeconfig
    finally:
        os.kill(child.pid, signal.SIGCONT)
        child.terminate()
        child.wait(timeout=10)


async def test_a_frozen_api_server_is_reported_within_15_s_and_recovers(
    sandbox_process: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    child, kubeconfig = sandbox_process
    running = RunningBackend(settings_for(kubeconfig, tmp_path))  # the default timings
    headers = admin_headers(running.settings.database_url)
    async with running as url, httpx.AsyncClient(base_url=url, timeout=5, headers=headers) as http:
        assert running.backend is not None
        await eventually(lambda: _ready(http), "ready", deadline=30)
        os.kill(child.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        await eventually(lambda: _not_ready(http), "the frozen server noticed", deadline=20)
        detected = time.monotonic() - stopped
        assert detected < 15, f"took {detected:.1f} s"
        # The first kind to go stale makes the backend unready; the others follow within a probe.
        answer = await eventually(lambda: _all_stale(http), "every kind stale", deadline=10)
        assert time.monotonic() - stopped < 20
        assert "cluster data stale" in answer.json()["detail"]
        freshness = (await http.get("/api/v1/info")).json()["freshness"]
        assert "cluster data stale" in freshness["cluster_problem"]
        assert freshness["cluster_age_seconds"] >= 9
        pods = next(k for k in freshness["kinds"] if k["kind"] == "pods")
        assert pods["state"] == "stale" and pods["age_seconds"] >= 9
        # The fleet stays readable (the data is old, and says so), not an error page.
        assert (await http.get("/api/v1/overview")).status_code == 200

        os.kill(child.pid, signal.SIGCONT)
        await eventually(lambda: _ready(http), "recovery once the server answers again")
        freshness = (await http.get("/api/v1/info")).json()["freshness"]
        assert freshness["cluster_problem"] is None
        assert freshness["cluster_age_seconds"] == 0
        assert {k["state"] for k in freshness["kinds"]} <= {"live", "absent", "forbidden"}
    print(f"frozen API server detected after {detected:.1f} s")


async def test_the_first_model_is_built_once_the_lists_are_in_not_a_debounce_later(
    sandbox_process: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    """Models are spaced by ``model_debounce`` (here far longer than the test waits); the
    first is not: it is built when the last kind is listed, even if the API server answered
    nothing while the backend started."""
    child, kubeconfig = sandbox_process
    settings = settings_for(kubeconfig, tmp_path, model_debounce=600)
    async with _started_while_frozen(child, settings) as http:
        assert (await http.get("/api/v1/overview")).status_code == 200


async def test_the_first_telemetry_round_finds_the_exporters_listed_after_the_start(
    tmp_path: Path,
) -> None:
    """The exporters and model servers are found among the cluster's pods. Here the API server
    answers nothing until the backend has started; the first rounds still read every source,
    long before their interval (10 minutes) would bring a second round."""
    with _sandbox_process(tmp_path, "demo") as (child, kubeconfig):
        settings = settings_for(
            kubeconfig,
            tmp_path,
            telemetry_mode="proxy",
            scrape_interval=600,
            inference_interval=600,
        )
        async with _started_while_frozen(child, settings) as http:
            freshness = await eventually(
                lambda: _both_rounds_read(http), "both rounds", deadline=30
            )
    assert freshness["telemetry_sources"] > 0 and freshness["telemetry_errors"] == 0
    assert freshness["inference_sources"] > 0 and freshness["inference_errors"] == 0


@contextlib.asynccontextmanager
async def _started_while_frozen(
    child: subprocess.Popen[bytes], settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's client of a backend started while the API server answered nothing, once the
    server answers and the backend is ready."""
    headers = admin_headers(settings.database_url)
    os.kill(child.pid, signal.SIGSTOP)
    async with (
        RunningBackend(settings) as url,
        httpx.AsyncClient(base_url=url, headers=headers) as http,
    ):
        assert not await _ready(http)
        os.kill(child.pid, signal.SIGCONT)
        await eventually(lambda: _ready(http), "ready", deadline=30)
        yield http


async def _both_rounds_read(http: httpx.AsyncClient) -> dict | None:
    """The freshness once a telemetry round and a model server round have read something."""
    freshness = (await http.get("/api/v1/info")).json()["freshness"]
    read = freshness["telemetry_sources"] and freshness["inference_sources"]
    return freshness if read else None


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def _all_stale(http: httpx.AsyncClient) -> httpx.Response | None:
    """``/readyz``'s answer once no kind counts as live any more."""
    answer = await http.get("/readyz")
    kinds = answer.json().get("kinds") or {}
    stale = answer.status_code == 503 and set(kinds.values()) <= {"stale", "absent", "forbidden"}
    return answer if stale else None


async def _not_ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 503


class _Refusing(BaseHTTPRequestHandler):
    """An API server that answers every request with one error Status."""

    code = 401
    reason = "Unauthorized"

    def do_GET(self) -> None:
        body = json.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": self.reason,
                "reason": self.reason,
                "code": self.code,
            }
        ).encode()
        self.send_response(self.code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@contextlib.asynccontextmanager
async def refused_backend(tmp_path: Path, code: int, reason: str) -> AsyncIterator[tuple[str, str]]:
    """A backend whose API server answers every request with ``code`` from the start, once
    every kind was refused: its URL and its database's (for tokens)."""
    handler = type("Handler", (_Refusing,), {"code": code, "reason": reason})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = Sandbox(fleet="empty").kubeconfig()
    config["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{server.server_port}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    settings = settings_for(kubeconfig, tmp_path)
    backend = Backend(settings, cache_options=CacheOptions(backoff_initial=0.05, backoff_max=0.2))
    try:
        async with RunningBackend(settings, backend) as url:
            await eventually(lambda: backend.cache.watch_restarts > 13, "every kind refused")
            yield url, settings.database_url
    finally:
        server.shutdown()
        server.server_close()


REFUSALS = [(401, "Unauthorized"), (503, "Service Unavailable")]


@pytest.mark.parametrize(("code", "reason"), REFUSALS)
async def test_a_refusing_api_server_means_503_with_the_reason_not_an_empty_fleet(
    tmp_path: Path, code: int, reason: str
) -> None:
    async with (
        refused_backend(tmp_path, code, reason) as (url, database_url),
        httpx.AsyncClient(base_url=url, headers=admin_headers(database_url)) as http,
    ):
        for path in FLEET_PATHS:
            answer = await http.get(path)
            assert answer.status_code == 503, path
            assert answer.headers["retry-after"] == "5"
            detail = answer.json()["detail"]
            assert detail.startswith("no fleet data yet: cluster not synced yet"), detail
            assert f"HTTP {code}" in detail, detail
            sync = answer.json()["sync"]
            assert sync["kinds_listed"] == 0 and sync["kinds_total"] == 13
            assert sync["cluster_error"] == f"HTTP {code} {reason}"
            refused = "cluster_unauthorized" if code == 401 else "cluster_error"
            assert sync["reason"] == refused
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and f"HTTP {code}" in ready.json()["detail"]
        assert set(ready.json()["kinds"].values()) == {"pending"}
        freshness = (await http.get("/api/v1/info")).json()["freshness"]
        assert f"HTTP {code}" in freshness["cluster_problem"]
        assert "0 of 13 kinds listed" in freshness["cluster_problem"]
        assert freshness["sync"] == sync


@pytest.mark.parametrize(
    ("code", "reason", "link"),
    [(401, "Unauthorized", "● cluster refused"), (503, "Service Unavailable", "● cluster not")],
)
async def test_the_console_says_why_a_refused_backend_has_no_data(
    tmp_path: Path, code: int, reason: str, link: str
) -> None:
    async with refused_backend(tmp_path, code, reason) as (url, database_url):
        console = ConsoleSettings(backend=url, token=issue_token(database_url))
        app = OpsConsoleApp(console, backend_url=url)
        async with app.run_test(size=(120, 24)) as pilot:
            await wait_for(pilot, lambda: link in screen_text(app), "the link state")
            await wait_for(pilot, lambda: f"HTTP {code} {reason}" in screen_text(app), "why")
            text = re.sub(r"\s+", " ", screen_text(app))
            assert "cluster not synced yet: " in text and "no fleet data yet" in text
            assert "backend error" not in text and "unreachable" not in text
            assert "● connected" not in text and "data – " in text


async def test_ready_means_the_model_holds_every_kind(tmp_path: Path) -> None:
    # A slow model rebuild: readiness must wait for it, not only for the lists.
    async with Sandbox(fleet="demo", seed=1, controllers=False) as sandbox:
        kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
        running = RunningBackend(settings_for(kubeconfig, tmp_path, model_debounce=1.0))
        headers = admin_headers(running.settings.database_url)
        async with (
            running as url,
            httpx.AsyncClient(base_url=url, timeout=10, headers=headers) as http,
        ):
            await eventually(lambda: _ready(http), "ready", deadline=60)
            page = (await http.get("/api/v1/workloads", params={"kind": "inferenceservice"})).json()
            assert page["total"] > 0
