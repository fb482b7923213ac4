"""Shared fixtures: a real sandbox cluster with a real backend on it, reached over HTTP.

The pair runs on one background thread with its own event loop (``SandboxThread``), so that
every test — pytest-asyncio tests and Textual pilot tests, each with their own loop — talks to it
exactly as a console talks to a remote backend: over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pytest

from tests.support.sandbox import SandboxThread
from tests.support.screens import DISPLAY_HOST
from tests.support.tokens import bearer, issue_token

if TYPE_CHECKING:
    from backend.service import Backend
    from backend.settings import Settings

T = TypeVar("T")

FROZEN_TIME = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SEED = 7
HISTORY = 6  # samples of utilization history; full before tests start, so sparklines are stable


@dataclass
class LiveCluster:
    """A running sandbox + backend: ``backend_url`` for REST (with ``token``, an admin's),
    ``kubeconfig`` for Kubernetes."""

    backend_url: str
    sandbox_url: str
    kubeconfig: Path
    database_url: str
    token: str

    def token_for(
        self, operator: str, role: str = "admin", tenants: frozenset[str] | None = None
    ) -> str:
        """A new token in the backend's database."""
        return issue_token(self.database_url, operator, role, tenants)

    @property
    def headers(self) -> dict[str, str]:
        """What authenticates a request as the admin."""
        return bearer(self.token)


class _ClusterThread:
    """A ``SandboxThread`` with a ``RunningBackend`` on the same private loop."""

    def __init__(
        self,
        workdir: Path,
        backend_settings: Mapping[str, Any] | None = None,
        **sandbox_args: object,
    ) -> None:
        from backend.main import RunningBackend
        from backend.settings import Settings

        self.sandbox = SandboxThread(workdir / "kubeconfig", **sandbox_args)
        database_url = f"sqlite:///{workdir / 'opsconsole.db'}"
        settings = Settings(
            kubeconfig=self.sandbox.backend_kubeconfig_path,  # the deployed backend's rights
            port=0,
            database_url=database_url,
            scrape_interval=1.0,
            inference_interval=1.0,
            history_length=HISTORY,
            model_debounce=0.1,
            token_cache_seconds=1.0,
            # One usage recording per session: the GPU-hours in the pictures stay the same
            # however long the suite runs.
            quota_usage_interval=86400.0,
            # Freezing objects out of the cyclic collector is for a process that holds one
            # fleet: the suite holds many backends one after another.
            gc_freeze=False,
            allowed_hosts=[DISPLAY_HOST],  # the console's pictures call it by that name
            **(backend_settings or {}),
        )
        # The alert rules' durations run on the sandbox's frozen clock, like everything else the
        # pictures show: what is pending stays pending however long the suite runs. It is set
        # before the start: an evaluation on the real clock would date its alerts days later,
        # and list them first.
        frozen = sandbox_args.get("frozen_time")
        clock = frozen.timestamp if isinstance(frozen, datetime) else time.time
        self._backend = RunningBackend(settings, self._on_loop(_new_backend(settings, clock)))
        try:
            url = self._on_loop(self._backend.__aenter__())
        except BaseException:
            self.sandbox.close()
            raise
        self.cluster = LiveCluster(
            url,
            self.sandbox.url,
            self.sandbox.kubeconfig_path,
            database_url,
            issue_token(database_url, "admin", "admin"),
        )

    def _on_loop(self, coroutine: Coroutine[object, object, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.sandbox.loop).result(timeout=120)

    def stop(self) -> None:
        self._on_loop(self._backend.__aexit__(None, None, None))
        self.sandbox.close()


async def _new_backend(settings: Settings, alert_clock: Callable[[], float]) -> Backend:
    """A backend made on the loop that will run it."""
    from backend.service import Backend

    return Backend(settings, alert_clock=alert_clock)


def wait_until_settled(url: str, token: str, timeout: float = 60.0) -> None:
    """Until the backend has synced and its model has a full telemetry history."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=5.0, headers=bearer(token)) as client:
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


def _start_cluster(
    workdir: Path, backend_settings: Mapping[str, Any] | None = None, **sandbox_args: object
) -> _ClusterThread:
    thread = _ClusterThread(workdir, backend_settings, **sandbox_args)
    try:
        wait_until_settled(thread.cluster.backend_url, thread.cluster.token)
    except BaseException:
        thread.stop()
        raise
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
    yield thread.cluster
    thread.stop()


@pytest.fixture(scope="module")
def mutable_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCluster]:
    """A demo fleet with a backend on it, for one test module to change as it likes."""
    thread = _start_cluster(
        tmp_path_factory.mktemp("mutable-cluster"), fleet="demo", seed=SEED, settle_seconds=0.2
    )
    yield thread.cluster
    thread.stop()


@pytest.fixture(scope="module")
def alerting_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCluster]:
    """Like ``mutable_cluster``, with the endpoint error-rate alert critical and firing as soon
    as its condition holds: the demo fleet's bad release is among the overview's first
    problems."""
    thread = _start_cluster(
        tmp_path_factory.mktemp("alerting-cluster"),
        {
            "alert_rules": {"endpoint_errors": {"for_seconds": 0, "severity": "critical"}},
            "alert_interval": 0.5,
        },
        fleet="demo",
        seed=SEED,
        settle_seconds=0.2,
    )
    yield thread.cluster
    thread.stop()


@pytest.fixture(scope="session")
def sandbox_backend_url(live_cluster: LiveCluster) -> str:
    """The backend URL of ``live_cluster`` (the console's tests need only this)."""
    return live_cluster.backend_url
