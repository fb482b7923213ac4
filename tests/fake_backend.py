"""A small in-process fake of the backend's ``/api/v1`` for console tests and the TUI benchmark.

It serves ``backend.schemas`` objects from plain lists (filter ``q``, ``sort``, ``offset``,
``limit`` like the real API) through ``httpx.ASGITransport``, so tests are deterministic and need
no sockets. ``FakeBackend.mode`` switches failure behaviour at run time: ``"ok"``, ``"down"``
(connect error), ``"slow"`` (answers only after the client's timeout), ``"error"`` (HTTP 500) and
``"malformed"`` (JSON that is not the contract).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from backend.schemas import (
    API_PREFIX,
    BackendInfo,
    DataFreshness,
    FleetTotals,
    Gpu,
    GpuModelSummary,
    Node,
    Overview,
    Problem,
    ProblemSeverity,
    QuotaMode,
    Tenant,
    TenantQuota,
    Workload,
    WorkloadDetail,
    WorkloadKind,
    WorkloadStatus,
)

CREATED = datetime(2026, 11, 29, 11, 0, tzinfo=UTC)
CACHE_SORT_FROM = 1000
STATUSES = list(WorkloadStatus)
KINDS = list(WorkloadKind)


def make_tenants(count: int) -> list[Tenant]:
    tenants = []
    for i in range(count):
        name = f"team-{chr(ord('a') + i % 26)}{'' if i < 26 else i // 26}"
        quota = TenantQuota(gpu_model="NVIDIA-H100-80GB-HBM3", flavor="h100", nominal=16, used=i)
        tenants.append(
            Tenant(
                name=name,
                namespaces=[name, f"{name}-dev"],
                quota_mode=QuotaMode.KUEUE,
                cluster_queue=f"cq-{name}",
                gpu_quota=16,
                gpu_used=i % 20,
                gpu_borrowed=max(0, i % 20 - 16),
                gpu_pending=i % 3,
                utilization=None if i % 5 == 4 else float(10 * (i % 10)),
                workloads=5,
                quotas=[quota],
            )
        )
    return tenants


def make_workloads(tenants: Sequence[Tenant], count: int) -> list[Workload]:
    workloads = []
    for i in range(count):
        tenant = tenants[i % len(tenants)].name if tenants else None
        workloads.append(
            Workload(
                namespace=tenant or "default",
                name=f"model-{i:05d}",
                kind=KINDS[i % len(KINDS)],
                tenant=tenant,
                model="llama-70b" if i % 2 else None,
                stage="production" if i % 3 else "staging",
                status=STATUSES[i % len(STATUSES)],
                replicas=2,
                ready_replicas=i % 3,
                gpus=i % 9,
                gpus_requested=8,
                gpu_model="NVIDIA-H100-80GB-HBM3",
                revision=str(1 + i % 4),
                canary_percent=10 if i % 7 == 0 else None,
                created=CREATED,
            )
        )
    return workloads


def make_nodes(count: int, gpus_per_node: int = 8) -> list[Node]:
    return [
        Node(
            name=f"gpu-node-{i:04d}",
            gpu_model="NVIDIA-H100-80GB-HBM3",
            gpus_capacity=gpus_per_node,
            gpus_allocatable=gpus_per_node,
            gpus_allocated=i % (gpus_per_node + 1),
            utilization=float(i % 100),
            memory_used_mib=1000.0 * (i % 80),
            memory_total_mib=81559.0 * gpus_per_node,
            power_watts=300.0 * gpus_per_node,
            max_temperature_c=40.0 + i % 50,
            xid_gpus=1 if i % 17 == 0 else 0,
            pods=i % 5,
        )
        for i in range(count)
    ]


def make_gpus(nodes: Sequence[Node], tenants: Sequence[Tenant]) -> list[Gpu]:
    gpus = []
    for n, node in enumerate(nodes):
        for index in range(node.gpus_capacity):
            i = n * node.gpus_capacity + index
            tenant = tenants[i % len(tenants)].name if tenants and i % 3 else None
            gpus.append(
                Gpu(
                    node=node.name,
                    index=index,
                    uuid=f"GPU-{i:08x}-0000-0000-0000-000000000000",
                    model=node.gpu_model or "unknown",
                    utilization=None if i % 11 == 10 else float(i % 100),
                    memory_used_mib=float(i % 81559),
                    memory_total_mib=81559.0,
                    temperature_c=30.0 + i % 60,
                    power_watts=100.0 + i % 600,
                    last_xid=79 if i % 97 == 0 else 0,
                    pod=f"pod-{i}" if tenant else None,
                    namespace=tenant,
                    tenant=tenant,
                    allocated=tenant is not None,
                    idle=tenant is not None and i % 100 < 5,
                    history=[float((i + k) % 100) for k in range(10)],
                )
            )
    return gpus


def _names(item: BaseModel) -> str:
    """What ``q`` matches: the row's names, lower-cased."""
    fields = ("name", "namespace", "tenant", "node", "pod", "uuid", "model")
    return " ".join(str(getattr(item, f, "") or "") for f in fields).lower()


def _sort_key(field: str) -> Callable[[Any], tuple[bool, Any]]:
    def key(item: Any) -> tuple[bool, Any]:
        value = getattr(item, field, None)
        return (value is None, value if value is not None else 0)

    return key


class FakeBackend:
    """The fake's data and failure mode; ``transport()`` is what ``BackendClient`` takes."""

    def __init__(
        self,
        *,
        tenants: int = 6,
        workloads: int = 30,
        nodes: int = 4,
        gpus_per_node: int = 8,
    ) -> None:
        self.tenants = make_tenants(tenants)
        self.workloads = make_workloads(self.tenants, workloads)
        self.nodes = make_nodes(nodes, gpus_per_node)
        self.gpus = make_gpus(self.nodes, self.tenants)
        self.mode = "ok"
        self.error_detail = "fleet model not ready"  # the 500 answer's detail in "error" mode
        self.failing_paths: set[str] = set()  # these answer 500 whatever the mode
        self.requests: list[httpx.Request] = []
        self._name_cache: dict[int, tuple[BaseModel, str]] = {}
        self._sort_cache: dict[tuple[int, str], list[Any]] = {}
        self.app = self._build_app()

    def _names(self, item: BaseModel) -> str:
        """``q``'s haystack, computed once per object (the benchmark pages 20,000 rows)."""
        cached = self._name_cache.get(id(item))
        if cached is None or cached[0] is not item:
            cached = self._name_cache[id(item)] = (item, _names(item))
        return cached[1]

    def _sorted(self, items: Sequence[Any], sort: str) -> list[Any]:
        """Sorted rows; only big lists are cached (tests edit small ones in place)."""
        key = (id(items), sort)
        if len(items) >= CACHE_SORT_FROM and key in self._sort_cache:
            return self._sort_cache[key]
        order = sorted(items, key=_sort_key(sort.lstrip("-")), reverse=sort.startswith("-"))
        if len(items) >= CACHE_SORT_FROM:
            self._sort_cache[key] = order
        return order

    def transport(self) -> httpx.AsyncBaseTransport:
        return _FakeTransport(self)

    def overview(self) -> Overview:
        return Overview(
            totals=FleetTotals(
                nodes=len(self.nodes),
                nodes_ready=len(self.nodes),
                gpus=len(self.gpus),
                gpus_allocated=sum(g.allocated for g in self.gpus),
                tenants=len(self.tenants),
                workloads=len(self.workloads),
            ),
            gpu_models=[
                GpuModelSummary(
                    model="NVIDIA-H100-80GB-HBM3",
                    nodes=len(self.nodes),
                    total=len(self.gpus),
                    allocated=sum(g.allocated for g in self.gpus),
                    in_use=sum(g.allocated and not g.idle for g in self.gpus),
                    idle=sum(g.idle for g in self.gpus),
                    free=sum(not g.allocated for g in self.gpus),
                )
            ],
            tenants=self.tenants[:10],
            workloads_by_status={s.value: 1 for s in STATUSES},
            hottest=self.gpus[:3],
            idlest=self.gpus[-3:],
            problems=[
                Problem(
                    severity=ProblemSeverity.WARNING,
                    kind="pending",
                    subject=f"{self.tenants[0].name}/model-00000" if self.tenants else "none",
                    message="waiting for quota",
                )
            ],
            freshness=self.freshness(),
        )

    def freshness(self) -> DataFreshness:
        return DataFreshness(synced=True, cluster_age_seconds=1.0, telemetry_age_seconds=3.0)

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        api = API_PREFIX

        def page(items: Sequence[Any], request: Request) -> Response:
            args = request.query_params
            sort = args.get("sort")
            rows = self._sorted(items, sort) if sort else list(items)
            q = (args.get("q") or "").lower()
            if q:
                rows = [item for item in rows if q in self._names(item)]
            for key in ("tenant", "node", "kind", "status"):
                if args.get(key):
                    rows = [r for r in rows if str(getattr(r, key, "")) == args[key]]
            offset, limit = int(args.get("offset", 0)), int(args.get("limit", 100))
            chunk = rows[offset : offset + limit]
            body = {
                "items": [item.model_dump(mode="json") for item in chunk],
                "total": len(rows),
                "next": None,
            }
            return JSONResponse(body)

        def one(items: Sequence[Any], what: str, **match: str) -> BaseModel:
            for item in items:
                if all(str(getattr(item, k)) == v for k, v in match.items()):
                    return item
            raise HTTPException(404, f'{what} "{next(iter(match.values()))}" not found')

        @app.get(api + "/info")
        def info() -> BackendInfo:
            return BackendInfo(
                version="fake",
                cluster_server="https://fake:6443",
                telemetry_mode="off",
                freshness=self.freshness(),
            )

        @app.get(api + "/overview")
        def overview() -> Overview:
            return self.overview()

        @app.get(api + "/tenants")
        def tenants(request: Request) -> Response:
            return page(self.tenants, request)

        @app.get(api + "/tenants/{name}")
        def tenant(name: str) -> Tenant:
            return one(self.tenants, "tenant", name=name)

        @app.get(api + "/workloads")
        def workloads(request: Request) -> Response:
            return page(self.workloads, request)

        @app.get(api + "/workloads/{namespace}/{kind}/{name}")
        def workload(namespace: str, kind: str, name: str) -> WorkloadDetail:
            found = one(self.workloads, "workload", name=name, namespace=namespace)
            return WorkloadDetail(**found.model_dump())

        @app.get(api + "/nodes")
        def nodes(request: Request) -> Response:
            return page(self.nodes, request)

        @app.get(api + "/nodes/{name}")
        def node(name: str) -> Node:
            return one(self.nodes, "node", name=name)

        @app.get(api + "/gpus")
        def gpus(request: Request) -> Response:
            return page(self.gpus, request)

        return app


class _FakeTransport(httpx.AsyncBaseTransport):
    """ASGI transport that applies the fake's failure mode and honours the read timeout."""

    def __init__(self, fake: FakeBackend) -> None:
        self.fake = fake
        self.inner = httpx.ASGITransport(app=fake.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.fake.requests.append(request)
        mode = self.fake.mode
        if mode == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if mode == "error" or request.url.path in self.fake.failing_paths:
            return httpx.Response(500, json={"detail": self.fake.error_detail}, request=request)
        if mode == "malformed":
            return httpx.Response(200, json={"unexpected": [1, 2]}, request=request)
        if mode == "slow":
            timeout = request.extensions.get("timeout", {}).get("read") or 5.0
            try:
                await asyncio.wait_for(asyncio.sleep(3600), timeout)
            except TimeoutError:
                raise httpx.ReadTimeout("timed out", request=request) from None
        return await self.inner.handle_async_request(request)
