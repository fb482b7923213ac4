"""``GET /api/v1/alerts``: the current alerts, or the history's transitions since a time.

Current alerts answer from the last evaluation's view (JSON rendered once per scope, state and
limit); ``since`` reads the history from the database, off the event loop. Both are limited to
the actor's tenants as every fleet route is: their subjects' alerts and those about no tenant.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Query, Response

from backend.alerts.monitor import DEFAULT_LIMIT
from backend.api.auth import ActorDep, api_router
from backend.api.deps import get_source
from backend.api.protocols import AlertsReader, ServedSource
from backend.api.routes import ERRORS
from backend.schemas import AlertList, AlertState

router = api_router("alerts")
SourceDep = Annotated[ServedSource, Depends(get_source)]
StateQuery = Literal["firing", "pending", "resolved", "all"]


def alerts_of(source: ServedSource) -> AlertsReader:
    """The source's alerts, or 503 while it has none."""
    alerts = source.alerts
    if alerts is None:
        raise HTTPException(503, "alerts are not available yet: the backend is starting")
    return alerts


def _state(state: StateQuery | None, since: datetime | None) -> AlertState | None:
    """None: every state. The current alerts default to the firing ones, the history to every
    transition."""
    if state == "all" or (state is None and since is not None):
        return None
    return AlertState(state or "firing")


@router.get("/alerts", response_model=AlertList, responses=ERRORS)
async def alerts(
    source: SourceDep,
    actor: ActorDep,
    state: Annotated[
        StateQuery | None,
        Query(description="firing (the default), pending, resolved (in the last hour) or all."),
    ] = None,
    since: Annotated[
        datetime | None,
        Query(description="Instead of the current alerts: the history's transitions since."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="Alerts at most.")] = DEFAULT_LIMIT,
) -> Response:
    """Firing alerts (or those of ``state``), most recent first; with ``since``, every
    transition (pending, firing, resolved) recorded since then, newest first."""
    reader = alerts_of(source)
    view = reader.view
    wanted = _state(state, since)
    if since is None:
        body = view.list_json(actor.tenants, wanted, limit)
        return Response(content=body, media_type="application/json")
    if since.tzinfo is None:  # a time without a zone is UTC, as every time of the API
        since = since.replace(tzinfo=UTC)
    items = await reader.since(since, wanted, actor.tenants, limit)
    answer = AlertList(
        items=items,
        firing=view.count(actor.tenants, AlertState.FIRING),
        pending=view.count(actor.tenants, AlertState.PENDING),
        evaluated_at=view.evaluated_at,
    )
    return Response(
        content=answer.__pydantic_serializer__.to_json(answer), media_type="application/json"
    )
