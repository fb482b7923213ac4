"""``/api/v1/quotas``: the quota review, and quota changes through the change path.

``GET /quotas`` answers from the fleet model and the usage history's summaries (no cluster or
database read per request). ``POST /quotas/plan`` takes one change (``QuotaChange``), a list of
them, or ``{"items": [...]}`` (a change set: planned and applied as one) and answers the
``ChangePlan``; ``POST /quotas/apply`` takes the same with the plan's ``fingerprint`` and a
``reason``. Refusals answer as every change route does (``backend.api.changes``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Response

from backend.api.auth import ActorDep, api_router
from backend.api.changes import ERRORS, ChangesDep, _apply, _guarded, _plan
from backend.api.deps import get_source
from backend.api.protocols import ServedSource
from backend.api.routes import current_model
from backend.changes.quota import ACTIONS, CHANGESET
from backend.fleet.objects import normalized_model
from backend.schemas import (
    ChangeApplied,
    ChangeConfirm,
    ChangePlan,
    QuotaChange,
    QuotaChangeApply,
    QuotaChangeSet,
    QuotaChangeSetApply,
    QuotaReview,
    QuotaRow,
    UsageWindow,
)

router = api_router("quotas")
SourceDep = Annotated[ServedSource, Depends(get_source)]
Name = Annotated[str | None, Query(max_length=253)]
EMPTY = UsageWindow()


def _matches(
    row: QuotaRow, scope: frozenset[str] | None, tenant: str | None, model: str | None
) -> bool:
    if (tenant is not None and row.tenant != tenant) or (
        scope is not None and row.tenant not in scope
    ):
        return False
    if model is None:
        return True
    wanted = normalized_model(model)
    return wanted in (normalized_model(row.gpu_model), normalized_model(row.flavor))


@router.get("/quotas", response_model=QuotaReview, responses=ERRORS)
async def quotas(
    source: SourceDep, actor: ActorDep, tenant: Name = None, model: Name = None
) -> Response:
    """Every tenant's GPU quota per model (a Kueue flavor, or '*' for a ResourceQuota) against
    its use: nominal and limits, in use, borrowed, pending, allocated and idle GPUs, and the
    24 h / 7 d average and peak from the usage history. ``model`` takes a flavor or a product.
    A token with a tenant scope sees its tenants' rows; the models' totals stay fleet-wide."""
    fleet = current_model(source)
    scope = actor.tenants
    usage = source.quota_usage
    updated = usage.updated if usage is not None else None
    ratio = usage.oversubscription if usage is not None else 1.0

    def render() -> bytes:
        windows = usage.windows() if usage is not None else {}
        day, week = windows.get("24h", {}), windows.get("7d", {})
        rows = [
            row.model_copy(
                update={
                    "usage_24h": day.get((row.tenant, row.gpu_model), EMPTY),
                    "usage_7d": week.get((row.tenant, row.gpu_model), EMPTY),
                }
            )
            for row in fleet.quota_rows()
            if _matches(row, scope, tenant, model)
        ]
        review = QuotaReview(
            items=rows,
            models=fleet.quota_models(ratio),
            oversubscription=ratio,
            history_updated=updated,
        )
        return review.__pydantic_serializer__.to_json(review)

    body = fleet.answer_json(("quotas", scope, tenant, model, updated, ratio), render)
    return Response(content=body, media_type="application/json")


def _action(body: QuotaChange | QuotaChangeSet | list[QuotaChange]) -> tuple[str, Any]:
    """The change path's action and parameters: one change is a set or a transfer; several are
    a change set."""
    items = body if isinstance(body, list) else getattr(body, "items", None)
    if items is not None and len(items) != 1:
        return CHANGESET, {"items": [item.parameters() for item in items]}
    one = items[0] if items is not None else body
    assert isinstance(one, QuotaChange)
    return ACTIONS[one.op], one.parameters()


@router.post("/quotas/plan", response_model=ChangePlan, responses=ERRORS)
async def plan_quota(
    actor: ActorDep,
    changes: ChangesDep,
    body: QuotaChange | QuotaChangeSet | list[QuotaChange],
) -> Any:
    """What the change would write (each quota's object, path, before and after), with the
    warnings (a tenant left below its use, the workloads Kueue may reclaim) and the what-if
    (``details.whatif``: per tenant, the pending workloads admitted afterwards and those still
    pending, with Kueue's reason)."""

    async def plan() -> ChangePlan:
        action, parameters = _action(body)
        return await _plan(actor, changes, action, parameters)

    return await _guarded(plan())


@router.post("/quotas/apply", response_model=ChangeApplied, responses=ERRORS)
async def apply_quota(
    actor: ActorDep, changes: ChangesDep, body: QuotaChangeApply | QuotaChangeSetApply
) -> Any:
    """Apply the reviewed plan (its fingerprint) with the operator's reason: every quota of it
    or none; 409 with the new plan when the cluster changed since."""

    async def apply() -> Any:
        items = body.items if isinstance(body, QuotaChangeSetApply) else body
        action, parameters = _action(items)
        confirm = ChangeConfirm(fingerprint=body.fingerprint, reason=body.reason)
        return await _apply(actor, changes, action, parameters, confirm)

    return await _guarded(apply())
