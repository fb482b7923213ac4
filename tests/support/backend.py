"""The real backend app over an in-memory fleet, with failures the tests switch on and off.

``InMemorySource`` satisfies the API's protocols with a FleetModel built by the real fleet model
from a fixture ``Fleet``; ``FleetBackend`` serves it with the real ``create_app`` through
``httpx.ASGITransport`` (no sockets), so filters, paging, cursors and errors are the production
ones. ``FleetBackend.mode`` injects failures at the transport, in front of the real app: ``"ok"``,
``"down"`` (connect error), ``"slow"`` (answers only after the client's timeout), ``"error"``
(HTTP 500 with ``error_detail``) and ``"malformed"`` (JSON that is not the contract).

Requests authenticate like any other: the source has a real token store (in an in-memory
database), and ``FleetBackend.token`` is an admin's token; ``issue`` makes others.

``FleetBackend.identity``, when set, is the answer to ``GET /api/v1/whoami`` (otherwise the real
app answers it from the token); ``missing_paths`` answer 404, as an older backend without them
does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel

from backend.alerts.monitor import AlertMonitor
from backend.api.app import create_app
from backend.audit.log import AuditLog
from backend.changes.path import ChangePath
from backend.cost.basis import CostBasis
from backend.db.quota_usage import QuotaUsageHistory
from backend.fleet.inputs import ClusterObjects, TelemetryLike
from backend.fleet.model import FleetModel, build_fleet_model
from backend.identity.authenticate import TokenAuthenticator
from backend.identity.tables import TokenRow
from backend.identity.tokens import TokenStore
from backend.schemas import BackendInfo, DataFreshness, Whoami
from tests.support.fleets import SAMPLED_AT, Fleet, generated_fleet

# The names the tests' clients call the fake backend by (the Host header check applies).
FAKE_HOSTS = ("fake", "fake-backend", "backend")


def token_database() -> Engine:
    """An in-memory database holding the token table, shared by every thread that uses it."""
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    SQLModel.metadata.create_all(engine, tables=[SQLModel.metadata.tables[TokenRow.__tablename__]])
    return engine


@dataclass
class BuildStats:
    builds: int = 1
    last_duration: float = 0.0


class InMemorySource:
    """A fleet model built once from fixture objects; always synced, data a second old.

    Tests may replace ``model`` (a cluster that changed between two requests, or ``None``: no
    model built yet)."""

    def __init__(
        self, cluster: ClusterObjects, telemetry: TelemetryLike | None, *, now: float = SAMPLED_AT
    ) -> None:
        self.model: FleetModel | None = build_fleet_model(cluster, telemetry, now=now)
        self.model_stats = BuildStats()
        self._counts = {kind: len(objects) for kind, objects in cluster.items()}
        self.audit: AuditLog | None = None  # tests of the Audit screen give it one
        self.changes: ChangePath | None = None
        self.tokens = TokenStore(token_database())
        self.identities: TokenAuthenticator | None = TokenAuthenticator(self.tokens)
        self.quota_usage: QuotaUsageHistory | None = None
        self.cost_basis = CostBasis()  # tests of cost showback set prices
        self.alerts: AlertMonitor | None = None  # tests of alerts give it one

    def freshness(self) -> DataFreshness:
        return DataFreshness(
            synced=True, cluster_age_seconds=1.0, telemetry_age_seconds=3.0, telemetry_sources=1
        )

    def info(self) -> BackendInfo:
        return BackendInfo(
            version="test",
            cluster_server="https://fixture:6443",
            telemetry_mode="off",
            freshness=self.freshness(),
        )

    def not_ready_reason(self) -> str | None:
        return None

    def object_counts(self) -> Mapping[str, int]:
        return self._counts


class FleetBackend:
    """The real app over ``InMemorySource(fleet)``; ``transport()`` is what ``BackendClient`` takes."""

    def __init__(self, fleet: Fleet | None = None) -> None:
        fleet = fleet or generated_fleet()
        self.source = InMemorySource(fleet.cluster, fleet.telemetry())
        self.app = create_app(self.source, allowed_hosts=FAKE_HOSTS)
        self.token = self.issue("alice", "admin")  # the console harness's local operator too
        self.mode = "ok"
        self.error_detail = "fleet model not ready"  # the 500 answer's detail in "error" mode
        self.failing_paths: set[str] = set()  # these answer 500 whatever the mode
        self.missing_paths: set[str] = set()  # these answer 404 whatever the mode
        self.identity: Whoami | None = None  # whoami's answer, when set
        self.requests: list[httpx.Request] = []

    def issue(self, operator: str, role: str, tenants: frozenset[str] | None = None) -> str:
        """A new token of the source's token store."""
        return self.source.tokens.create(operator, role, tenants)[0]

    def last_request(self, path: str) -> httpx.Request:
        """The newest request for ``/api/v1<path>`` (the console's health polls of ``/info``
        may come after it)."""
        wanted = "/api/v1" + path
        return next(r for r in reversed(self.requests) if r.url.path == wanted)

    def last_params(self, path: str) -> httpx.QueryParams:
        """The query parameters of ``last_request(path)``; empty before any."""
        try:
            return self.last_request(path).url.params
        except StopIteration:
            return httpx.QueryParams()

    @classmethod
    def generated(cls, **sizes: int) -> FleetBackend:
        """Over ``generated_fleet(**sizes)``."""
        return cls(generated_fleet(**sizes))

    def transport(self) -> httpx.AsyncBaseTransport:
        return FailingTransport(self)


class FailingTransport(httpx.AsyncBaseTransport):
    """ASGI transport to the real app that applies the backend's failure mode first."""

    def __init__(self, backend: FleetBackend) -> None:
        self.backend = backend
        self.inner = httpx.ASGITransport(app=backend.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        backend = self.backend
        backend.requests.append(request)
        if backend.mode == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if backend.mode == "error" or request.url.path in backend.failing_paths:
            return httpx.Response(500, json={"detail": backend.error_detail}, request=request)
        if backend.mode == "malformed":
            return httpx.Response(200, json={"unexpected": [1, 2]}, request=request)
        if request.url.path in backend.missing_paths:
            return httpx.Response(404, json={"detail": "Not Found"}, request=request)
        if backend.identity is not None and request.url.path == "/api/v1/whoami":
            return httpx.Response(200, json=backend.identity.model_dump(), request=request)
        if backend.mode == "slow":
            timeout = request.extensions.get("timeout", {}).get("read") or 5.0
            try:
                await asyncio.wait_for(asyncio.sleep(3600), timeout)
            except TimeoutError:
                raise httpx.ReadTimeout("timed out", request=request) from None
        return await self.inner.handle_async_request(request)
