"""Shared fixtures: a real sandbox cluster with a real backend on it, reached over HTTP.

The pair runs in a background thread with its own event loop, so that every test — pytest-asyncio
tests and Textual pilot tests, each with their own loop — talks to it exactly as a console talks
to a remote backend: over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

FROZEN_TIME = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SEED = 7
HISTORY = 6  # samples of utilization history; full before tests start, so sparklines are stable


@dataclass
class LiveCluster:
    """A running sandbox + backend: ``backend_url`` for REST, ``kubeconfig`` for Kubernetes."""

    backend_url: str
    sandbox_url: str
    kubeconfig: Path


class _ClusterThread(threading.Thread):
    """Runs ``Sandbox`` and ``RunningBackend`` on a private event loop until ``stop()``."""

    def __init__(self, workdir: Path, **sandbox_args: object) -> None:
        super().__init__(daemon=True, name="sandbox-backend")
        self.workdir = workdir
        self.sandbox_args = sandbox_args
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.cluster: LiveCluster | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the fixture, which fails the test
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        from backend.sandbox.server import Sandbox
        from backend.service import RunningBackend
        from backend.settings import Settings

        self._loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        async with Sandbox(**self.sandbox_args) as sandbox:
            kubeconfig = sandbox.write_kubeconfig(self.workdir / "kubeconfig")
            settings = Settings(
                kubeconfig=kubeconfig,
                port=0,
                database_url=f"sqlite:///{self.workdir / 'opsconsole.db'}",
                scrape_interval=1.0,
                history_length=HISTORY,
                model_debounce=0.1,
            )
            async with RunningBackend(settings) as url:
                self.cluster = LiveCluster(url, sandbox.url, kubeconfig)
                self.ready.set()
                await self._shutdown.wait()

    def stop(self) -> None:
        if self._loop is not None and self._shutdown is not None:
            self._loop.call_soon_threadsafe(self._shutdown.set)
        self.join(timeout=15)


def wait_until_settled(url: str, timeout: float = 60.0) -> None:
    """Until the backend has synced and its model has a full telemetry history."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=5.0) as client:
        while time.monotonic() < deadline:
            try:
                info = client.get("/api/v1/info").json()
                fresh = info["freshness"]
                if fresh["synced"] and fresh["telemetry_age_seconds"] is not None:
                    gpus = client.get("/api/v1/gpus", params={"limit": 1}).json()
                    if gpus["items"] and len(gpus["items"][0]["history"]) >= HISTORY:
                        return
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.1)
    raise TimeoutError(f"backend at {url} did not settle within {timeout} s")


def _start_cluster(workdir: Path, **sandbox_args: object) -> _ClusterThread:
    thread = _ClusterThread(workdir, **sandbox_args)
    thread.start()
    if not thread.ready.wait(timeout=120):
        raise TimeoutError("sandbox + backend did not start within 120 s")
    if thread.error is not None:
        raise thread.error
    assert thread.cluster is not None
    wait_until_settled(thread.cluster.backend_url)
    return thread


@pytest.fixture(scope="session")
def live_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCluster]:
    """The demo fleet (seed 7, clock frozen at 2026-11-29 12:00 UTC) with a backend on it.

    Shared by the whole session and never changed: snapshot tests depend on it staying the same.
    Tests that change the cluster use ``mutable_cluster``.
    """
    workdir = tmp_path_factory.mktemp("live-cluster")
    thread = _start_cluster(
        workdir, fleet="demo", seed=SEED, frozen_time=FROZEN_TIME, settle_seconds=0
    )
    assert thread.cluster is not None
    yield thread.cluster
    thread.stop()


@pytest.fixture(scope="module")
def mutable_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCluster]:
    """A demo fleet with a backend on it, for one test module to change as it likes."""
    thread = _start_cluster(
        tmp_path_factory.mktemp("mutable-cluster"), fleet="demo", seed=SEED, settle_seconds=0.2
    )
    assert thread.cluster is not None
    yield thread.cluster
    thread.stop()


@pytest.fixture(scope="session")
def sandbox_backend_url(live_cluster: LiveCluster) -> str:
    """The backend URL of ``live_cluster`` (the console's tests need only this)."""
    return live_cluster.backend_url
