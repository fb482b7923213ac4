"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request

from backend.service import Backend


async def get_backend(request: Request) -> Backend:
    """The Backend this app serves (set by ``create_app``).

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop
    per request that costs more than the whole answer of a read endpoint."""
    return request.app.state.backend
