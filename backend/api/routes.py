"""The ``/api/v1`` read endpoints: thin wrappers that parse parameters and ask the fleet model.

Each list answers a ``Page`` assembled from the model's cached per-row JSON (no pydantic work per
request); ``response_model`` is declared for the OpenAPI document only. Bad parameters answer 422
and unknown names 404, both as ``{"detail": "..."}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query
from fastapi.responses import Response
from starlette.convertors import Convertor, register_url_convertor

from backend.api.auth import ActorDep, api_router
from backend.api.deps import get_source
from backend.api.protocols import FleetSource
from backend.changes.request import Actor
from backend.changes.revisions import revision_diff
from backend.fleet.model import WORKLOAD_KINDS, FleetModel, ScopedFleet
from backend.fleet.query import QueryError, Table
from backend.fleet.readiness import sync_progress
from backend.schemas import (
    ApiErrorBody,
    EndpointHealth,
    FleetNotReady,
    Gpu,
    Node,
    Overview,
    Page,
    RevisionDiff,
    Tenant,
    Workload,
    WorkloadDetail,
)


class _NameConvertor(Convertor[str]):
    """The rest of the path, whatever it holds: names are untrusted and may contain anything."""

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("name", _NameConvertor())
router = api_router("fleet")

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ApiErrorBody, "description": "Unknown name"},
    422: {"model": ApiErrorBody, "description": "Malformed parameter"},
    503: {"model": FleetNotReady, "description": "No fleet data yet (the cluster never synced)"},
}
RETRY_AFTER_SECONDS = 5  # the first sync takes seconds; a refusing API server is retried as often

SourceDep = Annotated[FleetSource, Depends(get_source)]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Rows per page.")]
Cursor = Annotated[
    str | None,
    Query(max_length=64, description="The `next` of a previous page (wins over offset)."),
]
Sort = Annotated[
    str | None,
    Query(max_length=64, description="A field of the row, `-field` for descending; nulls last."),
]
Search = Annotated[
    str | None, Query(max_length=200, description="Case-insensitive substring of the row's names.")
]


def _name_filter(description: str) -> Any:
    return Query(max_length=253, description=description)


def _json(body: bytes) -> Response:
    return Response(content=body, media_type="application/json")


class NoFleetYet(Exception):
    """No fleet model yet: the app answers 503 with ``Retry-After`` and the body."""

    def __init__(self, body: FleetNotReady) -> None:
        super().__init__(body.detail)
        self.body = body


def current_model(source: FleetSource) -> FleetModel:
    """The fleet model, or ``NoFleetYet`` saying why there is none yet (an empty fleet is not a
    healthy one)."""
    model = source.model
    if model is None:
        freshness = source.freshness()
        why = freshness.cluster_problem or "the fleet model is being built"
        raise NoFleetYet(
            FleetNotReady(
                detail=f"no fleet data yet: {why}",
                sync=freshness.sync or sync_progress(freshness.kinds),
                retry_after_seconds=RETRY_AFTER_SECONDS,
            )
        )
    return model


def _model(source: FleetSource, actor: Actor) -> FleetModel | ScopedFleet:
    """The model as ``actor`` may see it (its tenants only, when its token has a scope)."""
    return current_model(source).scoped(actor.tenants)


def _one(row: Any, what: str) -> Response:
    """A single row as JSON, or 404 ``<what> not found``."""
    if row is None:
        raise HTTPException(404, f"{what} not found")
    return _json(row.__pydantic_serializer__.to_json(row))


def _page(table: Table[Any], **query: Any) -> Response:
    try:
        return _json(table.page_json(**query))
    except QueryError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/overview", response_model=Overview, responses=ERRORS)
async def overview(source: SourceDep, actor: ActorDep) -> Response:
    """The fleet at a glance: totals, GPUs by model, tenants, problems (with the firing
    alerts), data freshness."""
    alerts = source.alerts.view.problems(actor.tenants) if source.alerts is not None else ()
    return _json(_model(source, actor).overview_json(source.freshness(), alerts))


@router.get("/tenants", response_model=Page[Tenant], responses=ERRORS)
async def tenants(
    source: SourceDep,
    actor: ActorDep,
    q: Search = None,
    sort: Sort = None,
    offset: Offset = 0,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    """Tenants with their GPU quota and usage (sorted by name unless `sort` says otherwise)."""
    return _page(
        _model(source, actor).tenants, q=q, sort=sort, offset=offset, limit=limit, cursor=cursor
    )


@router.get("/tenants/{name:name}", response_model=Tenant, responses=ERRORS)
async def tenant(
    source: SourceDep, actor: ActorDep, name: Annotated[str, Path(max_length=253)]
) -> Response:
    return _one(_model(source, actor).tenant(name), f'tenant "{name}"')


@router.get("/workloads", response_model=Page[Workload], responses=ERRORS)
async def workloads(
    source: SourceDep,
    actor: ActorDep,
    tenant: Annotated[str | None, _name_filter("Only this tenant's workloads.")] = None,
    kind: Annotated[
        str | None, _name_filter("deployment | inferenceservice | job (any case).")
    ] = None,
    status: Annotated[str | None, _name_filter("A WorkloadStatus, any case.")] = None,
    namespace: Annotated[str | None, _name_filter("Only this namespace.")] = None,
    q: Search = None,
    sort: Sort = None,
    offset: Offset = 0,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    """Deployments, InferenceServices and Jobs, by (namespace, kind, name) unless sorted."""
    filters = {"tenant": tenant, "kind": kind, "status": status, "namespace": namespace}
    return _page(
        _model(source, actor).workloads,
        filters=filters,
        q=q,
        sort=sort,
        offset=offset,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/workloads/{namespace}/{kind}/{name}/revisions/{revision}",
    response_model=RevisionDiff,
    responses=ERRORS,
)
async def workload_revision(
    source: SourceDep,
    actor: ActorDep,
    namespace: Annotated[str, Path(max_length=253)],
    kind: Annotated[str, Path(max_length=64)],
    name: Annotated[str, Path(max_length=253)],
    revision: Annotated[str, Path(max_length=253)],
) -> RevisionDiff:
    """How a revision's pod template differs from the current one's (what rolling back to it
    would change); any role may read it. Declared before the workload's route, whose name takes
    the rest of the path."""
    templates = _model(source, actor).revision_templates(namespace, kind, name, revision)
    if templates is None:
        raise HTTPException(
            404, f'revision {revision} of {kind.lower()} "{namespace}/{name}" not found'
        )
    return revision_diff(templates)


@router.get(
    "/workloads/{namespace}/{kind}/{name:name}", response_model=WorkloadDetail, responses=ERRORS
)
async def workload(
    source: SourceDep,
    actor: ActorDep,
    namespace: Annotated[str, Path(max_length=253)],
    kind: Annotated[str, Path(max_length=64)],
    name: Annotated[str, Path(max_length=253)],
) -> Response:
    """One workload with its revisions (newest first), pods, recent events and conditions."""
    if kind.lower() not in WORKLOAD_KINDS:
        choices = ", ".join(WORKLOAD_KINDS)
        raise HTTPException(422, f"unknown workload kind {kind!r}; one of: {choices}")
    body = _model(source, actor).workload_json(namespace, kind, name)
    if body is None:
        raise HTTPException(404, f'{kind.lower()} "{namespace}/{name}" not found')
    return _json(body)


@router.get("/nodes", response_model=Page[Node], responses=ERRORS)
async def nodes(
    source: SourceDep,
    actor: ActorDep,
    gpu_model: Annotated[
        str | None, _name_filter("nvidia.com/gpu.product (spaces or dashes).")
    ] = None,
    q: Search = None,
    sort: Sort = None,
    offset: Offset = 0,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    """GPU nodes with capacity, allocation, readiness and telemetry aggregates."""
    return _page(
        _model(source, actor).nodes,
        filters={"gpu_model": gpu_model},
        q=q,
        sort=sort,
        offset=offset,
        limit=limit,
        cursor=cursor,
    )


@router.get("/nodes/{name:name}", response_model=Node, responses=ERRORS)
async def node(
    source: SourceDep, actor: ActorDep, name: Annotated[str, Path(max_length=253)]
) -> Response:
    return _one(_model(source, actor).node(name), f'node "{name}"')


@router.get("/gpus", response_model=Page[Gpu], responses=ERRORS)
async def gpus(
    source: SourceDep,
    actor: ActorDep,
    node: Annotated[str | None, _name_filter("Only GPUs of this node.")] = None,
    tenant: Annotated[str | None, _name_filter("Only GPUs held by this tenant's pods.")] = None,
    namespace: Annotated[str | None, _name_filter("Only GPUs held by pods there.")] = None,
    model: Annotated[str | None, _name_filter("GPU model (spaces or dashes).")] = None,
    idle: Annotated[bool | None, Query(description="Allocated but (nearly) unused.")] = None,
    q: Search = None,
    sort: Sort = None,
    offset: Offset = 0,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    """GPUs (and MIG instances) with their latest telemetry and who holds them."""
    filters = {
        "node": node,
        "tenant": tenant,
        "namespace": namespace,
        "model": model,
        "idle": None if idle is None else ("true" if idle else "false"),
    }
    return _page(
        _model(source, actor).gpus,
        filters=filters,
        q=q,
        sort=sort,
        offset=offset,
        limit=limit,
        cursor=cursor,
    )


@router.get("/endpoints", response_model=Page[EndpointHealth], responses=ERRORS)
async def endpoints(
    source: SourceDep,
    actor: ActorDep,
    tenant: Annotated[str | None, _name_filter("Only this tenant's endpoints.")] = None,
    kind: Annotated[str | None, _name_filter("deployment | inferenceservice (any case).")] = None,
    namespace: Annotated[str | None, _name_filter("Only this namespace.")] = None,
    q: Search = None,
    sort: Sort = None,
    offset: Offset = 0,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    """Model Deployments and InferenceServices with their request rate, error rate and latency
    quantiles, per revision, with a short history; the worst first (highest error rate, then
    p99) unless sorted otherwise."""
    return _page(
        _model(source, actor).endpoints,
        filters={"tenant": tenant, "kind": kind, "namespace": namespace},
        q=q,
        sort=sort,
        offset=offset,
        limit=limit,
        cursor=cursor,
    )
