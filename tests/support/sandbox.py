"""A sandbox cluster running in a background thread, for tests that use the sync kubernetes client.

The sync client blocks, so the sandbox gets its own event loop in a thread; tests talk to it over
real HTTP like any client, and reach into its store only through ``call`` (which runs a function on
the sandbox's loop, since the store is not thread-safe).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import pytest

from backend.sandbox.server import TOKEN, Sandbox
from backend.sandbox.tls import serving_cert

T = TypeVar("T")
# For plain HTTP requests to a sandbox, as its admin kubeconfig authenticates.
ADMIN_HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def sandbox_ca() -> str:
    """The CA file that verifies the sandboxes of this process (they serve HTTPS)."""
    return str(serving_cert().certfile)


def tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=sandbox_ca())


class SandboxThread:
    """A started ``Sandbox`` on its own loop and thread; ``close()`` stops both."""

    def __init__(self, kubeconfig_path: Path, **sandbox_args: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.sandbox = Sandbox(**sandbox_args)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=60):
            raise RuntimeError("the sandbox did not start within 60 s")
        if self._error is not None:
            raise self._error
        self.kubeconfig_path = self.sandbox.write_kubeconfig(kubeconfig_path)
        # The backend's ServiceAccount (deploy/rbac.yaml): what a backend in a cluster may do.
        self.backend_kubeconfig_path = self.sandbox.write_backend_kubeconfig(
            kubeconfig_path.with_name(f"backend-{kubeconfig_path.name}")
        )

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.sandbox.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    @property
    def url(self) -> str:
        return self.sandbox.url

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the sandbox's loop and return its result."""

        async def wrapper() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout=30)

    def settle(self) -> None:
        """Let the controllers finish every pending change."""
        controllers = self.sandbox.controllers
        assert controllers is not None, "this sandbox runs without controllers"
        self.call(controllers.settle)

    def api_client(self) -> kubernetes.client.ApiClient:
        """A sync ``ApiClient`` configured from the written kubeconfig, as kubectl users do."""
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(
            config_file=str(self.kubeconfig_path), client_configuration=configuration
        )
        return kubernetes.client.ApiClient(configuration)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sandbox.stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def sandbox_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxThread]:
    """An empty sandbox without controllers: only the API server's own behaviour is under test."""
    path = tmp_path_factory.mktemp("sandbox") / "kubeconfig"
    running = SandboxThread(path, fleet="empty", controllers=False, bookmark_seconds=0.2)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def kube(sandbox_thread: SandboxThread) -> Iterator[kubernetes.client.ApiClient]:
    """A sync kubernetes ``ApiClient`` for ``sandbox_thread``."""
    client = sandbox_thread.api_client()
    try:
        yield client
    finally:
        client.close()
