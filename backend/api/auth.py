"""Bearer-token authentication: the dependency every route but the probes requires.

``require_actor`` reads ``Authorization: Bearer <token>``, asks the served source who the token
belongs to and answers the ``Actor`` the change path and the scoped reads use. Missing, unknown,
revoked and expired tokens answer 401 with ``WWW-Authenticate: Bearer``; a client address with too
many failures in a row answers 429 with ``Retry-After`` until the window has passed, without its
token being looked at.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.api.deps import get_source
from backend.changes.request import Actor
from backend.identity.authenticate import NotAuthenticated
from backend.identity.limiter import FailureLimiter
from backend.schemas import SSH_CLIENT_HEADER, ApiErrorBody, Whoami

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="opsconsole"'}
UNKNOWN_ADDRESS = "unknown"


BEARER = HTTPBearer(auto_error=False, description="A token from `opsconsole token create`.")


def _refuse(limiter: FailureLimiter, address: str, why: str) -> HTTPException:
    limiter.failed(address)
    return HTTPException(401, f"not authenticated: {why}", headers=CHALLENGE)


async def require_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> Actor:
    """Who sends this request; 401, 429 or 503 (no token store yet) otherwise."""
    limiter: FailureLimiter = request.app.state.auth_failures
    address = request.client.host if request.client else UNKNOWN_ADDRESS
    wait = limiter.retry_after(address)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise HTTPException(
            429,
            f"too many failed authentications from {address}; try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    identities = (await get_source(request)).identities
    if identities is None:
        raise HTTPException(503, "authentication is not available yet: the backend is starting")
    if credentials is None or not credentials.credentials:
        raise _refuse(limiter, address, "send Authorization: Bearer <token>")
    try:
        identity = await identities.identify(credentials.credentials)
    except NotAuthenticated as exc:
        raise _refuse(limiter, address, str(exc)) from None
    return Actor(
        name=identity.operator,
        role=identity.role,
        tenants=identity.tenants,
        source_address=address if request.client else None,
        ssh_client=request.headers.get(SSH_CLIENT_HEADER) or None,
        user_agent=request.headers.get("user-agent"),
    )


ActorDep = Annotated[Actor, Depends(require_actor)]
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ApiErrorBody, "description": "No valid bearer token"},
    429: {"model": ApiErrorBody, "description": "Too many failed authentications"},
}
router = APIRouter(tags=["identity"])


@router.get("/whoami", response_model=Whoami)
async def whoami(actor: ActorDep) -> Whoami:
    """The operator, role and tenants (null: every tenant) of the caller's token."""
    tenants = None if actor.tenants is None else sorted(actor.tenants)
    return Whoami(operator=actor.name, role=actor.role, tenants=tenants)
