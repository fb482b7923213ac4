"""The routes that change the cluster: thin wrappers over the change path.

Plan answers the exact change (``ChangePlan``); apply takes its fingerprint and a reason. Refusals
answer with the status an HTTP client expects and nothing written: 422 invalid, 403 denied, 409 a
stale plan (with the new one) or a conflicting write, 503 when the audit log cannot be written,
502 when the API server failed the write. Every attempt is in the audit log either way.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from backend.api.deps import get_changes
from backend.api.protocols import ChangeRunner
from backend.audit.log import AuditUnavailable
from backend.changes.request import Actor, ChangeDenied, ChangeInvalid, StalePlan
from backend.changes.view import plan_view
from backend.schemas import (
    OPERATOR_HEADER,
    SSH_CLIENT_HEADER,
    ApiErrorBody,
    AuditOutcome,
    ChangeApplied,
    ChangePlan,
    ChangeRefused,
    RollbackApply,
    RollbackRequest,
)

router = APIRouter(tags=["changes"])

ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ApiErrorBody, "description": "The operator may not do this"},
    409: {"model": ChangeRefused, "description": "Stale plan or conflicting write"},
    422: {"model": ApiErrorBody, "description": "Invalid change"},
    502: {"model": ChangeRefused, "description": "The API server failed the write"},
    503: {"model": ApiErrorBody, "description": "The audit log cannot be written"},
}
ChangesDep = Annotated[ChangeRunner, Depends(get_changes)]
Segment = Annotated[str, Path(min_length=1, max_length=253)]

ROLLBACK_ACTIONS = {
    "deployment": "rollout.undo",
    "deployments": "rollout.undo",
    "deploy": "rollout.undo",
}


def request_actor(request: Request) -> Actor:
    """Who asks: until operators have identities, the name the client states, acting as admin."""
    operator = (request.headers.get(OPERATOR_HEADER) or "").strip()[:256] or "anonymous"
    return Actor(
        name=operator,
        role="admin",
        source_address=request.client.host if request.client else None,
        ssh_client=(request.headers.get(SSH_CLIENT_HEADER) or None),
        user_agent=request.headers.get("user-agent"),
    )


def _rollback_action(kind: str) -> str:
    action = ROLLBACK_ACTIONS.get(kind.lower())
    if action is None:
        raise ChangeInvalid(f"cannot roll back a {kind!r}: deployments only")
    return action


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


@router.post(
    "/workloads/{namespace}/{kind}/{name}/rollback/plan",
    response_model=ChangePlan,
    responses=ERRORS,
)
async def plan_rollback(
    request: Request,
    changes: ChangesDep,
    namespace: Segment,
    kind: Segment,
    name: Segment,
    body: RollbackRequest,
) -> Any:
    """What rolling back would write (kubectl's target revision, patch and refusals)."""
    params = {"namespace": namespace, "name": name, "to_revision": body.to_revision}

    async def plan() -> ChangePlan:
        action = _rollback_action(kind)
        return plan_view(await changes.plan(action, params, request_actor(request)))

    return await _guarded(plan())


@router.post(
    "/workloads/{namespace}/{kind}/{name}/rollback/apply",
    response_model=ChangeApplied,
    responses=ERRORS,
)
async def apply_rollback(
    request: Request,
    changes: ChangesDep,
    namespace: Segment,
    kind: Segment,
    name: Segment,
    body: RollbackApply,
) -> Any:
    """Apply the plan whose fingerprint the operator reviewed, with their reason."""
    params = {"namespace": namespace, "name": name, "to_revision": body.to_revision}

    async def apply() -> Any:
        action = _rollback_action(kind)
        actor = request_actor(request)
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

    return await _guarded(apply())
