"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from fastapi import HTTPException, Request

from backend.api.protocols import AuditQueries, ChangeRunner, ServedSource


async def get_source(request: Request) -> ServedSource:
    """What this app serves (set by ``create_app``).

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop
    per request that costs more than the whole answer of a read endpoint."""
    source: ServedSource = request.app.state.source
    return source


async def get_audit(request: Request) -> AuditQueries:
    """The audit log; 503 while the backend has none (not started, or no database yet)."""
    audit = (await get_source(request)).audit
    if audit is None:
        raise HTTPException(503, "the audit log is not available yet")
    return audit


async def get_changes(request: Request) -> ChangeRunner:
    """The change path; 503 while the backend has none."""
    changes = (await get_source(request)).changes
    if changes is None:
        raise HTTPException(503, "changes are not available yet: the backend is starting")
    return changes
