"""The routes that change the cluster: thin wrappers over the change path.

Plan answers the exact change (``ChangePlan``); apply takes its fingerprint and a reason. Refusals
answer with the status an HTTP client expects and nothing written: 422 invalid, 403 denied, 409 a
stale plan (with the new one) or a conflicting write, 503 when the audit log cannot be written,
502 when the API server failed the write. Every attempt is in the audit log either way.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path
from fastapi.responses import JSONResponse

from backend.api.auth import ActorDep, api_router
from backend.api.deps import get_changes
from backend.api.protocols import ChangeRunner
from backend.audit.log import AuditUnavailable
from backend.changes.request import Actor, ChangeDenied, ChangeInvalid, StalePlan
from backend.changes.view import plan_view
from backend.schemas import (
    ApiErrorBody,
    AuditOutcome,
    ChangeApplied,
    ChangeConfirm,
    ChangePlan,
    ChangeRefused,
    RollbackApply,
    RollbackRequest,
)

router = api_router("changes")

ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ApiErrorBody, "description": "The operator may not do this"},
    409: {"model": ChangeRefused, "description": "Stale plan or conflicting write"},
    422: {"model": ApiErrorBody, "description": "Invalid change"},
    502: {"model": ChangeRefused, "description": "The API server failed the write"},
    503: {"model": ApiErrorBody, "description": "The audit log cannot be written"},
}
ChangesDep = Annotated[ChangeRunner, Depends(get_changes)]
Segment = Annotated[str, Path(min_length=1, max_length=253)]

# Kinds as kubectl spells them (any case), and what rolling back or promoting one means.
DEPLOYMENT_KINDS = frozenset({"deployment", "deployments", "deploy"})
INFERENCE_SERVICE_KINDS = frozenset({"inferenceservice", "inferenceservices", "isvc"})


def _rollback_action(kind: str) -> str:
    if kind.lower() in DEPLOYMENT_KINDS:
        return "rollout.undo"
    if kind.lower() in INFERENCE_SERVICE_KINDS:
        return "isvc.rollback"
    raise ChangeInvalid(f"cannot roll back a {kind!r}: deployments and inferenceservices only")


def _promote_action(kind: str) -> str:
    if kind.lower() in INFERENCE_SERVICE_KINDS:
        return "isvc.promote"
    raise ChangeInvalid(f"cannot promote a {kind!r}: inferenceservices only")


def _rollback_parameters(kind: str, namespace: str, name: str, to_revision: int) -> dict[str, Any]:
    """An InferenceService's rollback has one target (the previous rolled-out revision)."""
    if kind.lower() in INFERENCE_SERVICE_KINDS:
        if to_revision:
            raise ChangeInvalid("to_revision applies to deployments only")
        return {"namespace": namespace, "name": name}
    return {"namespace": namespace, "name": name, "to_revision": to_revision}


def _refused(status: int, detail: str, **extra: Any) -> JSONResponse:
    body = ChangeRefused(detail=detail, **extra)
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


async def _guarded(call: Any) -> Any:
    """Turn the change path's refusals into HTTP answers."""
    try:
        return await call
    except ChangeInvalid as exc:
        return _refused(422, str(exc))
    except ChangeDenied as exc:
        return _refused(403, str(exc))
    except StalePlan as exc:
        return _refused(409, str(exc), plan=plan_view(exc.plan))
    except AuditUnavailable as exc:
        return _refused(503, f"{exc}; nothing was changed")


async def _plan(actor: Actor, changes: ChangeRunner, action: str, params: Any) -> ChangePlan:
    return plan_view(await changes.plan(action, params, actor))


async def _apply(
    actor: Actor, changes: ChangeRunner, action: str, params: Any, body: ChangeConfirm
) -> Any:
    result = await changes.apply(action, params, body.fingerprint, body.reason, actor)
    applied = ChangeApplied(
        change_id=result.change_id,
        outcome=result.outcome,
        error=result.error,
        plan=plan_view(result.plan),
    )
    if result.outcome == AuditOutcome.SUCCEEDED:
        return applied
    status = 409 if result.status == 409 else 502
    return _refused(status, result.error or "the change failed", change_id=result.change_id)


@router.post(
    "/workloads/{namespace}/{kind}/{name}/rollback/plan",
    response_model=ChangePlan,
    responses=ERRORS,
)
async def plan_rollback(
    actor: ActorDep,
    changes: ChangesDep,
    namespace: Segment,
    kind: Segment,
    name: Segment,
    body: RollbackRequest,
) -> Any:
    """What rolling back would write: kubectl's target revision, patch and refusals for a
    Deployment; ``canaryTrafficPercent: 0`` and the split before and after for an
    InferenceService."""

    async def plan() -> ChangePlan:
        action = _rollback_action(kind)
        params = _rollback_parameters(kind, namespace, name, body.to_revision)
        return await _plan(actor, changes, action, params)

    return await _guarded(plan())


@router.post(
    "/workloads/{namespace}/{kind}/{name}/rollback/apply",
    response_model=ChangeApplied,
    responses=ERRORS,
)
async def apply_rollback(
    actor: ActorDep,
    changes: ChangesDep,
    namespace: Segment,
    kind: Segment,
    name: Segment,
    body: RollbackApply,
) -> Any:
    """Apply the plan whose fingerprint the operator reviewed, with their reason."""

    async def apply() -> Any:
        action = _rollback_action(kind)
        params = _rollback_parameters(kind, namespace, name, body.to_revision)
        return await _apply(actor, changes, action, params, body)

    return await _guarded(apply())


@router.post(
    "/workloads/{namespace}/{kind}/{name}/promote/plan",
    response_model=ChangePlan,
    responses=ERRORS,
)
async def plan_promote(
    actor: ActorDep, changes: ChangesDep, namespace: Segment, kind: Segment, name: Segment
) -> Any:
    """What promoting an InferenceService's canary would write, with the split before and
    after (all traffic to the latest ready revision)."""

    async def plan() -> ChangePlan:
        action = _promote_action(kind)
        return await _plan(actor, changes, action, {"namespace": namespace, "name": name})

    return await _guarded(plan())


@router.post(
    "/workloads/{namespace}/{kind}/{name}/promote/apply",
    response_model=ChangeApplied,
    responses=ERRORS,
)
async def apply_promote(
    actor: ActorDep,
    changes: ChangesDep,
    namespace: Segment,
    kind: Segment,
    name: Segment,
    body: ChangeConfirm,
) -> Any:
    """Apply the reviewed promotion, with the operator's reason."""

    async def apply() -> Any:
        action = _promote_action(kind)
        params = {"namespace": namespace, "name": name}
        return await _apply(actor, changes, action, params, body)

    return await _guarded(apply())
