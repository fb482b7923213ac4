"""The one place the backend is assembled and served: settings -> Backend -> FastAPI app -> HTTP.

``RunningBackend`` serves a Backend with uvicorn on a pre-bound socket in the current event loop
(tests and the embedded console use it); ``main`` is ``opsconsole serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from backend.api.app import create_app
from backend.api.hosts import allowed_host_names
from backend.cluster.kubeconfig import ClusterAccessError
from backend.db.engine import redact
from backend.http_server import ServedApp, bind_socket
from backend.identity.limiter import FailureLimiter
from backend.service import Backend
from backend.settings import Settings

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
        if self.backend is None:
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
    return create_app(
        backend,
        allowed_hosts=allowed_host_names(settings.host, settings.allowed_hosts),
        auth_failures=FailureLimiter(settings.auth_failure_limit, settings.auth_failure_window),
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


def main(args: argparse.Namespace) -> int:
    """``opsconsole serve``."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = settings_from_args(args)
        backend = Backend(settings)
    except ClusterAccessError as exc:
        print(f"opsconsole serve: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # invalid settings from the environment
        print(f"opsconsole serve: invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run_backend(settings, backend))
    except OSError as exc:  # e.g. the port is taken
        print(f"opsconsole serve: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:  # e.g. PostgreSQL unreachable
        url = redact(settings.database_url)
        print(f"opsconsole serve: database {url}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
