"""Bearer-token authentication: the dependency every route but the probes requires.

``require_actor`` reads ``Authorization: Bearer <token>``, asks the served source who the token
belongs to and answers the ``Actor`` the change path and the scoped reads use. Missing, unknown,
revoked and expired tokens answer 401 with ``WWW-Authenticate: Bearer``.

Unknown tokens are what guessing produces, so they are counted per client address: past the
limit, the address answers 429 with ``Retry-After`` until the window has passed, and new tokens
from it are not looked at. Tokens that authenticated before still work from there, so that a
guesser on a shared bastion host does not lock out the operators working on it.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.api.deps import get_source
from backend.changes.request import Actor
from backend.identity.authenticate import NotAuthenticated, UnknownToken
from backend.identity.limiter import FailureLimiter
from backend.schemas import API_PREFIX, SSH_CLIENT_HEADER, ApiErrorBody, Whoami

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="opsconsole"'}
UNKNOWN_ADDRESS = "unknown"


BEARER = HTTPBearer(auto_error=False, description="A token from `opsconsole token create`.")


def _refused(why: str) -> HTTPException:
    return HTTPException(401, f"not authenticated: {why}", headers=CHALLENGE)


def _limited(address: str, wait: float) -> HTTPException:
    seconds = max(1, math.ceil(wait))
    return HTTPException(
        429,
        f"too many unknown tokens from {address}; try again in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


async def require_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> Actor:
    """Who sends this request; 401, 429 or 503 (no token store yet) otherwise."""
    identities = (await get_source(request)).identities
    if identities is None:
        raise HTTPException(503, "authentication is not available yet: the backend is starting")
    if credentials is None or not credentials.credentials:
        raise _refused("send Authorization: Bearer <token>")
    token = credentials.credentials
    limiter: FailureLimiter = request.app.state.auth_failures
    address = request.client.host if request.client else UNKNOWN_ADDRESS
    wait = limiter.retry_after(address)
    if wait is not None and not identities.seen(token):
        raise _limited(address, wait)
    try:
        identity = await identities.identify(token)
    except UnknownToken as exc:
        limiter.failed(address)
        raise _refused(str(exc)) from None
    except NotAuthenticated as exc:
        raise _refused(str(exc)) from None
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
    429: {"model": ApiErrorBody, "description": "Too many unknown tokens from this address"},
}


def api_router(tag: str) -> APIRouter:
    """A router of ``/api/v1`` routes that each need a bearer token (``require_actor``).

    The prefix, the authentication and its error answers are the router's own, so each route is
    complete when it is declared: the app adds the routes as they are (``backend.api.app``)."""
    return APIRouter(
        prefix=API_PREFIX,
        tags=[tag],
        dependencies=[Depends(require_actor)],
        responses=AUTH_ERRORS,
    )


router = api_router("identity")


@router.get("/whoami", response_model=Whoami)
async def whoami(actor: ActorDep) -> Whoami:
    """The operator, role and tenants (null: every tenant) of the caller's token."""
    tenants = None if actor.tenants is None else sorted(actor.tenants)
    return Whoami(operator=actor.name, role=actor.role, tenants=tenants)
