"""Serving an ASGI app with uvicorn inside the caller's event loop (the sandbox and the backend).

The socket is bound before uvicorn starts, so that port 0 works and the URL is known at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the process (console, tests, ``main``) owns them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0 = a free port).

    ``proto=IPPROTO_TCP`` matters: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    and without it every keep-alive answer waited ~40 ms for the client's delayed ACK.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


class ServedApp:
    """An ASGI app served on a socket of its own until ``stop()``."""

    def __init__(self, app: Any, **config: Any) -> None:
        # No WebSocket protocol: nothing here serves one, and importing it costs the start.
        self._config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", ws="none", **config
        )
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.url = ""

    async def start(self, sock: socket.socket) -> str:
        """Serve on ``sock`` (from ``bind_socket``) once uvicorn accepts connections; the URL."""
        self._server = _EmbeddedServer(self._config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                sock.close()
                self._task.result()  # raises the startup error
                raise RuntimeError("the HTTP server stopped during startup")
            await asyncio.sleep(0.01)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        scheme = "https" if self._config.is_ssl else "http"
        self.url = f"{scheme}://{shown}:{bound_port}"
        return self.url

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, finish the requests in flight (cancelled after ``timeout``)."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await asyncio.wait_for(self._task, timeout=timeout)
            except TimeoutError:
                self._task.cancel()
        self._server = None
        self._task = None
