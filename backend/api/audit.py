"""``/api/v1/audit``: search the audit log, read one record, verify the chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Path, Query

from backend.api.auth import ActorDep, api_router
from backend.api.deps import get_audit
from backend.api.protocols import AuditQueries
from backend.audit.diff import record_diff
from backend.schemas import (
    ApiErrorBody,
    AuditFilter,
    AuditOutcome,
    AuditPage,
    AuditRecordDetail,
    ChainVerification,
)

router = api_router("audit")

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ApiErrorBody, "description": "No such record"},
    422: {"model": ApiErrorBody, "description": "Malformed parameter"},
}
AuditDep = Annotated[AuditQueries, Depends(get_audit)]
Text = Annotated[str | None, Query(max_length=200)]


@router.get("/audit", response_model=AuditPage, responses=ERRORS)
async def search_audit(
    audit: AuditDep,
    caller: ActorDep,
    actor: Text = None,
    action: Annotated[
        str | None, Query(max_length=200, description="`*` matches any text.")
    ] = None,
    tenant: Text = None,
    target: Annotated[
        str | None, Query(max_length=600, description="`*` matches any text.")
    ] = None,
    outcome: AuditOutcome | None = None,
    change_id: Text = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Free text.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
    order: Annotated[Literal["newest", "oldest"], Query()] = "newest",
) -> AuditPage:
    """Newest first (or oldest first, for exports); ``next`` continues where the page ended.
    A token with tenants sees only the records about them."""
    where = AuditFilter(
        actor=actor,
        action=action,
        tenant=tenant,
        target=target,
        outcome=outcome,
        change_id=change_id,
        since=since,
        until=until,
        text=q,
    )
    records, after = await audit.search(
        where,
        limit,
        int(cursor) if cursor else None,
        oldest_first=order == "oldest",
        scope=caller.tenants,
    )
    return AuditPage(items=records, next=str(after) if after is not None else None)


@router.get("/audit/verify", response_model=ChainVerification)
async def verify_audit(audit: AuditDep) -> ChainVerification:
    """Walk the whole chain now and compare its end with the head kept outside the database."""
    return await audit.verify()


@router.get(
    "/audit/chain", response_model=ChainVerification, responses={503: {"model": ApiErrorBody}}
)
async def chain_state(audit: AuditDep) -> ChainVerification:
    """The backend's latest check of the chain (``checked_at``), kept current in the background:
    cheap enough for a screen to show all the time."""
    if audit.chain is None:  # the first check of a big log takes a while: do not wait for it
        raise HTTPException(503, "the chain is being checked; ask again in a moment")
    return audit.chain


@router.get("/audit/{seq}", response_model=AuditRecordDetail, responses=ERRORS)
async def audit_record(
    audit: AuditDep, caller: ActorDep, seq: Annotated[int, Path(ge=1)]
) -> AuditRecordDetail:
    """One record, with what it changed leaf by leaf (404 for a record about none of the
    tenants of a token that has tenants)."""
    record = await audit.get(seq)
    scope = caller.tenants
    if record is None or (scope is not None and not scope & set(record.tenants)):
        raise HTTPException(404, f"audit record #{seq} does not exist")
    return AuditRecordDetail(**record.model_dump(), diff=record_diff(record.before, record.after))
