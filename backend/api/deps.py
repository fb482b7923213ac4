"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request

from backend.service import Backend


def get_backend(request: Request) -> Backend:
    """The Backend this app serves (set by ``create_app``)."""
    return request.app.state.backend
