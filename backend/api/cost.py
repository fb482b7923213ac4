"""``/api/v1/cost``: GPU-hours, cost and efficiency per tenant and GPU model over the last 24 h,
7 d or 30 d, and the GPUs held idle now with what they cost per day.

Answered from the usage history's in-memory GPU-hours and the fleet model (no database read per
request), rendered once per model, window, scope and recording (``backend.cost.answers``). A
token with a tenant scope sees its tenants only, totals included.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Response

from backend.api.auth import ActorDep, api_router
from backend.api.changes import ERRORS
from backend.api.deps import get_source
from backend.api.protocols import ServedSource
from backend.api.routes import current_model
from backend.cost.answers import cost_json
from backend.schemas import CostReport, CostWindow

router = api_router("cost")
SourceDep = Annotated[ServedSource, Depends(get_source)]


@router.get("/cost", response_model=CostReport, responses=ERRORS)
async def cost(source: SourceDep, actor: ActorDep, since: CostWindow = "24h") -> Response:
    """GPU-hours (allocated GPUs × hours, from the usage history), cost (GPU-hours × the hourly
    price of the model in the settings; null where there is none) and efficiency (busy ÷
    allocated) per tenant and GPU model; per tenant, the GPUs allocated but idle now."""
    fleet = current_model(source)
    body = cost_json(fleet, source.quota_usage, source.cost_basis, actor.tenants, since)
    return Response(content=body, media_type="application/json")
