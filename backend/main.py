"""The one place the backend is assembled and served: settings -> Backend -> FastAPI app -> HTTP.

``RunningBackend`` serves a Backend with uvicorn on a pre-bound socket in the current event loop
(tests and the embedded console use it); ``main`` is ``opsconsole serve``.

``opsconsole serve`` starts the cluster's lists before it imports the rest of the backend: the
lists are most of the first sync, and importing the API, the database and the collectors (seconds
of CPU on a small machine) overlaps them. So this module imports only what the lists need; the
rest is imported where it is first used.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING

from backend.cluster.cache import ClusterCache
from backend.cluster.kubeconfig import ClusterAccess, ClusterAccessError, load_cluster_access
from backend.garbage import FleetGarbage
from backend.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from backend.http_server import ServedApp
    from backend.service import Backend

log = logging.getLogger("opsconsole.serve")


class RunningBackend:
    """``async with RunningBackend(settings) as url:`` — a started Backend served on
    ``settings.host:settings.port`` (port 0 = a free one) in the current event loop."""

    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings
        self.backend = backend
        self.url = ""
        self._http: ServedApp | None = None

    async def __aenter__(self) -> str:
        from backend.http_server import ServedApp, bind_socket

        if self.backend is None:
            from backend.service import Backend

            self.backend = Backend(self.settings)
        sock = bind_socket(self.settings.host, self.settings.port)  # a busy port fails first
        await self.backend.start()
        try:
            self._http = ServedApp(serve_app(self.settings, self.backend), **tls(self.settings))
            self.url = await self._http.start(sock)
        except BaseException:
            sock.close()
            await self.backend.stop()
            raise
        return self.url

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.stop()
        if self.backend is not None:
            await self.backend.stop()


def serve_app(settings: Settings, backend: Backend) -> FastAPI:
    """The app for ``backend``, with the host names and failure limits the settings give."""
    from backend.api.app import create_app
    from backend.api.hosts import allowed_host_names
    from backend.identity.limiter import FailureLimiter

    return create_app(
        backend,
        allowed_hosts=allowed_host_names(settings.host, settings.allowed_hosts),
        auth_failures=FailureLimiter(settings.auth_failure_limit, settings.auth_failure_window),
        requests=backend.requests,
    )


def tls(settings: Settings) -> dict[str, str]:
    """uvicorn's TLS options when a certificate is configured."""
    if settings.tls_cert is None or settings.tls_key is None:
        return {}
    return {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}


async def run_backend(settings: Settings, backend: Backend | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with RunningBackend(settings, backend) as url:
            log.info("opsconsole backend serving on %s", url)
            await stop.wait()
            log.info("shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Environment settings with the command line's flags on top."""
    overrides = {
        key: getattr(args, key)
        for key in ("kubeconfig", "context", "host", "port", "tls_cert", "tls_key")
        if getattr(args, key, None) is not None
    }
    return Settings(**overrides)


async def serve(settings: Settings, access: ClusterAccess) -> None:
    """``opsconsole serve``: the cluster's lists started first (with the collector paused, see
    ``backend.garbage``), the rest of the backend imported and assembled while they run, then
    served until SIGTERM or SIGINT."""
    garbage = FleetGarbage(freeze=settings.gc_freeze)
    garbage.pause()
    cache = ClusterCache(access)
    await cache.start()
    try:
        from backend.service import Backend

        await run_backend(settings, Backend(settings, access, cache=cache, garbage=garbage))
    finally:  # also when the backend never started (e.g. its port is taken)
        await cache.stop()
        garbage.resume()


def main(args: argparse.Namespace) -> int:
    """``opsconsole serve``."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = settings_from_args(args)
        access = load_cluster_access(settings.kubeconfig, settings.context)
    except ClusterAccessError as exc:
        print(f"opsconsole serve: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # invalid settings from the environment
        print(f"opsconsole serve: invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(settings, access))
    except OSError as exc:  # e.g. the port is taken
        print(f"opsconsole serve: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # Imported here, not with this module (see above); the backend has imported it by now.
        from sqlalchemy.exc import SQLAlchemyError

        if not isinstance(exc, SQLAlchemyError):
            raise
        from backend.db.engine import redact

        url = redact(settings.database_url)  # e.g. PostgreSQL unreachable
        print(f"opsconsole serve: database {url}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
