"""What the HTTP API needs of whatever it serves, as structural types.

The API never imports the backend's runtime: ``backend.service.Backend`` satisfies these
protocols, and so does the tests' in-memory source, so the same routes serve both.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from backend.alerts.monitor import AlertView
from backend.changes.path import ChangeResult
from backend.changes.plan import Plan
from backend.changes.request import Actor
from backend.cost.basis import CostBasis
from backend.db.quota_usage import GpuHours
from backend.fleet.model import FleetModel
from backend.identity.tokens import Identity
from backend.schemas import (
    Alert,
    AlertState,
    AuditFilter,
    AuditRecord,
    BackendInfo,
    ChainHead,
    ChainVerification,
    DataFreshness,
    UsageWindow,
)


class AlertsReader(Protocol):
    """The alerts (``backend.alerts.monitor.AlertMonitor``)."""

    @property
    def view(self) -> AlertView:
        """The last evaluation's alerts."""
        ...

    async def since(
        self,
        since: datetime,
        state: AlertState | None,
        scope: frozenset[str] | None,
        limit: int,
    ) -> list[Alert]:
        """The history's transitions since ``since``, newest first."""
        ...


class FleetSource(Protocol):
    """What the ``/api/v1`` fleet routes read: the current model and how fresh its data is."""

    @property
    def model(self) -> FleetModel | None:
        """None until the first model is built (the routes answer 503 meanwhile)."""
        ...

    def freshness(self) -> DataFreshness: ...

    @property
    def alerts(self) -> AlertsReader | None:
        """None: no alerts yet (``/alerts`` answers 503, the overview shows none)."""
        ...


class ModelBuilds(Protocol):
    """How the fleet model's rebuilds went."""

    @property
    def builds(self) -> int: ...

    @property
    def last_duration(self) -> float: ...


class AuditQueries(Protocol):
    """The audit log's reads (``backend.audit.log.AuditLog``)."""

    @property
    def chain(self) -> ChainVerification | None:
        """The latest check of the chain, kept current in the background."""
        ...

    async def search(
        self,
        where: AuditFilter,
        limit: int,
        cursor: int | None = None,
        oldest_first: bool = False,
        scope: frozenset[str] | None = None,
    ) -> tuple[list[AuditRecord], int | None]:
        """``scope``: only records about at least one of these tenants (None: every record)."""
        ...

    async def get(self, seq: int) -> AuditRecord | None: ...

    async def verify(self, start: ChainHead | None = None) -> ChainVerification: ...


class ChangeRunner(Protocol):
    """The change path (``backend.changes.path.ChangePath``): plan, then apply."""

    async def plan(self, action: str, parameters: Mapping[str, Any], actor: Actor) -> Plan: ...

    async def apply(
        self,
        action: str,
        parameters: Mapping[str, Any],
        fingerprint: str,
        reason: str,
        actor: Actor,
    ) -> ChangeResult: ...


class Identities(Protocol):
    """Who bearer tokens belong to (``backend.identity.authenticate.TokenAuthenticator``)."""

    async def identify(self, token: str) -> Identity:
        """Raise ``NotAuthenticated`` for a token that is unknown, revoked or expired."""
        ...

    def seen(self, token: str) -> bool:
        """Whether the token was found before (it may be let through a rate limit)."""
        ...


class QuotaUsage(Protocol):
    """The quota usage history's summaries (``backend.db.quota_usage.QuotaUsageHistory``)."""

    @property
    def oversubscription(self) -> float: ...

    @property
    def updated(self) -> datetime | None: ...

    def windows(self) -> Mapping[str, Mapping[tuple[str, str], UsageWindow]]:
        """``{"24h": {(tenant, GPU model): window}, "7d": {...}, "30d": {...}}``."""
        ...

    def hours(self) -> Mapping[str, Mapping[tuple[str, str], GpuHours]]:
        """GPU-hours per window, like ``windows``."""
        ...


class ServedSource(FleetSource, Protocol):
    """Everything the app serves: the fleet, ``/info``, ``/readyz`` and ``/metrics``; the audit
    log and the change path where the source has them (None: those routes answer 503)."""

    @property
    def audit(self) -> AuditQueries | None: ...

    @property
    def changes(self) -> ChangeRunner | None: ...

    @property
    def identities(self) -> Identities | None:
        """None while there is no token store (every authenticated route answers 503)."""
        ...

    @property
    def quota_usage(self) -> QuotaUsage | None:
        """None: no usage history (the quota review shows empty windows)."""
        ...

    @property
    def cost_basis(self) -> CostBasis:
        """Prices per GPU model for cost showback."""
        ...

    @property
    def model_stats(self) -> ModelBuilds: ...

    def info(self) -> BackendInfo: ...

    def not_ready_reason(self) -> str | None:
        """None when ready to answer; otherwise why not (``/readyz`` answers 503 with it)."""
        ...

    def object_counts(self) -> Mapping[str, int]:
        """Cached cluster objects per kind."""
        ...
