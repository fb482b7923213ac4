"""The ``Host`` header check: a defence against DNS rebinding.

A web page can make the operator's browser send requests to a backend on loopback or the local
network under a name the page's owner controls; the ``Host`` header still carries that name. Only
the names the backend is known by are answered: loopback names, the address it listens on, and
``allowed_hosts`` (``*`` turns the check off). The probes answer whatever the name, since kubelets
call them by the pod's IP.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})
UNCHECKED_PATHS = frozenset({"/healthz", "/readyz"})


def allowed_host_names(listen_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """Loopback names, the listen address (unless it is a wildcard) and ``extra``."""
    names = set(LOOPBACK_NAMES) | {name.strip().lower() for name in extra if name.strip()}
    if listen_host not in WILDCARD_ADDRESSES:
        names.add(listen_host.lower())
    return frozenset(names)


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port: ``[::1]:8080`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostCheckMiddleware:
    """Answers 400 to HTTP requests whose ``Host`` is not one of ``allowed`` (pure ASGI)."""

    def __init__(self, app: Any, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or "*" in self.allowed
            or scope.get("path") in UNCHECKED_PATHS
            or self._allowed(scope)
        ):
            await self.app(scope, receive, send)
            return
        body = orjson.dumps({"detail": "this backend does not answer to that host name"})
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: dict) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"host":
                return host_name(value.decode("latin-1")) in self.allowed
        return False
