"""The sandbox cluster as one object: store, fleet, controllers, DCGM exporters and the API server.

``Sandbox`` runs inside the caller's event loop (tests, the embedded console) and serves HTTPS
with uvicorn on a socket bound before start, so that port 0 works and the URL is known at once.
Like a real API server it authenticates (the admin's token, ServiceAccount tokens) and authorizes
with RBAC; it starts with the bootstrap roles and the backend's access from ``deploy/``.
``main`` is ``opsconsole sandbox``: it runs one until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from backend.http_server import ServedApp, bind_socket
from backend.sandbox.clock import Clock
from backend.sandbox.controllers import Controllers
from backend.sandbox.controllers.base import GpuAllocator
from backend.sandbox.dcgm import DcgmExporters
from backend.sandbox.fleet import build_fleet
from backend.sandbox.http import KubeApi
from backend.sandbox.modelserver import ModelServers, choose_bad_revisions
from backend.sandbox.policy import BACKEND_NAMESPACE, BACKEND_SERVICE_ACCOUNT, install_policy
from backend.sandbox.rbac import AUTHENTICATED, MASTERS, User, service_account_user
from backend.sandbox.store import NAMESPACE, Store
from backend.sandbox.tls import serving_cert

CONTEXT = "opsconsole-sandbox"
USER = "sandbox-admin"
TOKEN = "sandbox-admin"
# The admin is a cluster admin as kubeadm's admin.conf makes one: a member of system:masters.
ADMIN = User(USER, (MASTERS, AUTHENTICATED))
BACKEND_USER = service_account_user(BACKEND_NAMESPACE, BACKEND_SERVICE_ACCOUNT)
# Namespaces every cluster has; the real API server creates them itself at start.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class Sandbox:
    """A simulated GPU cluster serving the Kubernetes API on ``url`` while started."""

    def __init__(
        self,
        fleet: str = "demo",
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        frozen_time: datetime | None = None,
        settle_seconds: float = 3.0,
        controllers: bool = True,
        *,
        bookmark_seconds: float = 60.0,
    ) -> None:
        self.fleet = fleet
        self.seed = seed
        self.host = host
        self.port = port
        self.settle_seconds = settle_seconds
        self.use_controllers = controllers
        self.clock = Clock(frozen_time)
        self.store = Store(clock=self.clock.rfc3339)
        self.api = KubeApi(self.store, bookmark_seconds=bookmark_seconds, now=self.clock.now)
        self.api.authenticator.add_token(TOKEN, ADMIN)
        self._backend_token: str | None = None
        self.controllers: Controllers | None = None
        self.url = ""
        self._http: ServedApp | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Build the fleet, start the controllers and the exporters, then serve HTTP."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        if self.use_controllers:
            self.controllers = Controllers(self.store, self.clock, self.settle_seconds, self.seed)
        self._build_fleet()
        self._ensure_system_namespaces()
        install_policy(self.store)
        if self.controllers is not None:
            self.controllers.reconcile_all()
            await self.controllers.start()
        self._install_exporters()
        await self._serve()

    def _build_fleet(self) -> None:
        build_fleet(self.store, self.fleet, self.seed, self.clock)

    def _ensure_system_namespaces(self) -> None:
        for name in SYSTEM_NAMESPACES:
            if self.store.find(NAMESPACE, "", name) is None:
                self.store.create(
                    NAMESPACE,
                    {
                        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                        "spec": {"finalizers": ["kubernetes"]},
                        "status": {"phase": "Active"},
                    },
                )

    def _install_exporters(self) -> None:
        """Let ``pods/<exporter>:9400/proxy/metrics`` reach the simulated DCGM exporters, and
        model server pods' metrics ports their simulated vLLM and queue-proxy metrics.

        Without controllers nothing allocates GPUs, so the exporters get an empty allocator.
        """
        allocator = self.controllers.allocator if self.controllers is not None else GpuAllocator()
        exporters = DcgmExporters(self.store, self.clock, self.seed, allocator)
        servers = ModelServers(
            self.store, self.clock, self.seed, exporters.handle, choose_bad_revisions(self.store)
        )
        self.store.proxy_handler = servers.handle

    async def _serve(self) -> None:
        cert = serving_cert(self.host)
        self._http = ServedApp(
            self.api.app,
            log_level="warning",
            timeout_graceful_shutdown=2,
            ssl_certfile=str(cert.certfile),
            ssl_keyfile=str(cert.keyfile),
        )
        self.url = await self._http.start(bind_socket(self.host, self.port))

    async def stop(self) -> None:
        """End watches, stop serving, stop the controllers."""
        self.store.close_all_watches()
        if self._http is not None:
            await self._http.stop()
            self._http = None
        if self.controllers is not None:
            await self.controllers.stop()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- kubeconfig ----------------------------------------------------------------------------
    def kubeconfig(self) -> dict[str, Any]:
        """An admin kubeconfig for this sandbox (context ``opsconsole-sandbox``, a bearer token)."""
        return self._kubeconfig(USER, TOKEN, "default")

    def backend_kubeconfig(self) -> dict[str, Any]:
        """A kubeconfig with the token of the backend's ServiceAccount (``deploy/rbac.yaml``):
        the rights the backend has when deployed in a cluster."""
        if self._backend_token is None:
            self._backend_token = self.api.authenticator.service_account_token(
                BACKEND_NAMESPACE, BACKEND_SERVICE_ACCOUNT
            )
        return self._kubeconfig(BACKEND_USER, self._backend_token, BACKEND_NAMESPACE)

    def _kubeconfig(self, user: str, token: str, namespace: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": CONTEXT,
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(
                            serving_cert(self.host).pem()
                        ).decode(),
                    },
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {
                    "name": CONTEXT,
                    "context": {"cluster": CONTEXT, "user": user, "namespace": namespace},
                }
            ],
            "current-context": CONTEXT,
            "preferences": {},
        }

    def write_kubeconfig(self, path: Path) -> Path:
        """Write ``kubeconfig()`` (the admin's) as YAML, readable by its owner only."""
        return _write_private_yaml(Path(path), self.kubeconfig())

    def write_backend_kubeconfig(self, path: Path) -> Path:
        """Write ``backend_kubeconfig()`` as YAML, readable by its owner only."""
        return _write_private_yaml(Path(path), self.backend_kubeconfig())


def _write_private_yaml(path: Path, content: dict[str, Any]) -> Path:
    """Write ``content`` as YAML, mode 0600 (it holds a token).

    Written to a temporary file and renamed, so that whoever waits for the file to appear (the
    embedded console) never reads half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(content, fh, sort_keys=False)
    partial.replace(path)
    return path


async def _run(args: argparse.Namespace) -> int:
    sandbox = Sandbox(
        fleet=getattr(args, "fleet", "demo"),
        seed=getattr(args, "seed", 1),
        host=getattr(args, "host", "127.0.0.1"),
        port=getattr(args, "port", 8001),
        frozen_time=getattr(args, "frozen_time", None),
        settle_seconds=getattr(args, "settle_seconds", 3.0),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    out: Path | None = getattr(args, "kubeconfig_out", None)
    backend_out: Path | None = getattr(args, "backend_kubeconfig_out", None)
    temporary = out is None
    if out is None:
        fd, name = tempfile.mkstemp(prefix="opsconsole-sandbox-", suffix=".kubeconfig")
        os.close(fd)
        out = Path(name)
    try:
        async with sandbox:
            if backend_out is not None:  # before the admin's, which callers wait for
                sandbox.write_backend_kubeconfig(backend_out)
            sandbox.write_kubeconfig(out)
            print(
                f"opsconsole sandbox ({sandbox.fleet} fleet) serving the Kubernetes API at "
                f"{sandbox.url}",
                flush=True,
            )
            print(f"kubeconfig: {out}  (kubectl --kubeconfig {out} get nodes)", flush=True)
            await stop.wait()
    finally:
        if temporary:
            out.unlink(missing_ok=True)
    return 0


def main(args: argparse.Namespace) -> int:
    """``opsconsole sandbox``: serve until SIGINT or SIGTERM; the exit status."""
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 0
