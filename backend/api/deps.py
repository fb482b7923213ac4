"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request

from backend.api.protocols import ServedSource


async def get_source(request: Request) -> ServedSource:
    """What this app serves (set by ``create_app``).

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop
    per request that costs more than the whole answer of a read endpoint."""
    source: ServedSource = request.app.state.source
    return source
