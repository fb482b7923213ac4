"""The FastAPI application: probes, metrics, error shapes, and the /api/v1 routers.

Every error answer is ``{"detail": "<words>"}`` (``backend.schemas.ApiErrorBody``): validation
errors become one readable sentence instead of FastAPI's nested list, and an unexpected exception
is logged here and answered with a plain 500, never a traceback. A fleet endpoint without fleet
data yet answers 503 with ``Retry-After`` and why (``backend.schemas.FleetNotReady``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.api.alerts import router as alerts_router
from backend.api.audit import router as audit_router
from backend.api.auth import ActorDep, api_router, require_actor
from backend.api.auth import router as identity_router
from backend.api.changes import router as changes_router
from backend.api.cost import router as cost_router
from backend.api.deps import get_source
from backend.api.docs import add_docs_routes
from backend.api.hosts import LOOPBACK_NAMES, HostCheckMiddleware
from backend.api.metrics import ApiMetrics, MetricsMiddleware
from backend.api.protocols import ServedSource
from backend.api.quotas import router as quotas_router
from backend.api.routes import NoFleetYet
from backend.api.routes import router as fleet_router
from backend.identity.limiter import FailureLimiter
from backend.reads_first import RequestsInFlight
from backend.schemas import AlertState, ApiErrorBody, BackendInfo
from backend.version import VERSION

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ApiErrorBody},
    422: {"model": ApiErrorBody},
    500: {"model": ApiErrorBody},
}


def _describe_validation_error(error: dict[str, Any]) -> str:
    """``limit: Input should be less than or equal to 1000 (got '5000')``."""
    loc = [str(part) for part in error.get("loc", ())]
    where = ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc) or "request"
    text = f"{where}: {error.get('msg', 'invalid value')}"
    value = error.get("input")
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text += f" (got {value!r})"
    return text


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = "; ".join(_describe_validation_error(e) for e in exc.errors())
    return JSONResponse({"detail": detail or "invalid request"}, status_code=422)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
    )


async def _no_fleet_yet(_request: Request, exc: Exception) -> JSONResponse:
    """503 with the machine-readable reason, and when to ask again."""
    assert isinstance(exc, NoFleetYet)
    return JSONResponse(
        exc.body.model_dump(mode="json"),
        status_code=503,
        headers={"Retry-After": str(exc.body.retry_after_seconds)},
    )


async def _unexpected_error(_request: Request, _exc: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this answer, and the server logs its traceback.
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def _info_router() -> APIRouter:
    router = api_router("backend")

    @router.get("/info", response_model=BackendInfo, responses=ERRORS)
    async def info(
        actor: ActorDep,
        source: ServedSource = Depends(get_source),  # noqa: B008
    ) -> BackendInfo:
        """The backend and its data's freshness, with the firing alerts the caller may see."""
        info = source.info()
        if source.alerts is None:
            return info
        firing = source.alerts.view.count(actor.tenants, AlertState.FIRING)
        return info.model_copy(update={"alerts_firing": firing})

    return router


def _probes(app: FastAPI, metrics: ApiMetrics) -> None:
    @app.get("/healthz", tags=["probes"])
    async def healthz() -> dict[str, str]:
        """Always 200 while the process serves (liveness)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"], responses={503: {"model": ApiErrorBody}})
    async def readyz(request: Request) -> Response:
        """200 while the fleet data is built from every kind and current; 503 with the reason
        otherwise. Both say each watched kind's state (live, stale, pending, absent, forbidden)."""
        source = await get_source(request)
        reason = source.not_ready_reason()
        kinds = {k.kind: k.state for k in source.freshness().kinds}
        if reason is None:
            return JSONResponse({"status": "ready", "kinds": kinds})
        return JSONResponse({"detail": reason, "kinds": kinds}, status_code=503)

    @app.get(
        "/metrics",
        tags=["probes"],
        include_in_schema=False,
        dependencies=[Depends(require_actor)],
    )
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)


def create_app(
    source: ServedSource,
    *,
    allowed_hosts: Iterable[str] = LOOPBACK_NAMES,
    auth_failures: FailureLimiter | None = None,
    requests: RequestsInFlight | None = None,
) -> FastAPI:
    """The HTTP app serving ``source`` (which the caller starts and stops). Every route but the
    probes needs a bearer token; requests for other host names than ``allowed_hosts`` (``*``:
    any) are refused; ``auth_failures`` limits failed authentications per client address;
    ``requests`` counts the requests in flight (for the model's worker to give way to them)."""
    app = FastAPI(
        title="opsconsole backend",
        version=VERSION,
        description="The aggregated picture of a shared GPU platform on Kubernetes.",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.source = source
    app.state.auth_failures = auth_failures or FailureLimiter()
    metrics = ApiMetrics(source, requests)
    app.add_middleware(HostCheckMiddleware, allowed=frozenset(allowed_hosts))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(NoFleetYet, _no_fleet_yet)
    app.add_exception_handler(Exception, _unexpected_error)
    _probes(app, metrics)
    for router in _api_routers():
        app.router.routes.extend(router.routes)
    add_docs_routes(app)
    return app


def _api_routers() -> tuple[APIRouter, ...]:
    """The ``/api/v1`` routers, in the order a request's path is matched against their routes.

    Their routes are added to the app as they are, not with ``include_router``: FastAPI keeps an
    included router as a branch, and a request's path is matched against the branches, then again
    inside the chosen one, which cost a read about a sixth of its time in the app
    (``bench/README.md``). Every route is tried in turn until one matches, so the reads the
    consoles poll come first and the changes, rarer, last."""
    return (
        _info_router(),
        identity_router,
        fleet_router,
        alerts_router,
        cost_router,
        quotas_router,
        audit_router,
        changes_router,
    )
