"""The console's only way to the backend: ``/api/v1`` over httpx, answers parsed into the wire models.

Every failure becomes a ``BackendError``, so that screens need a single ``except``; three kinds
are told apart: ``BackendUnavailable`` (nobody answered in time: connect errors, timeouts, a
certificate that does not verify), ``NotAuthenticated`` (401: no token, or one the backend
refuses) and ``NotReady`` (503: the backend has no fleet data yet, and says why). Messages are
written for an operator's banner, not for a developer.

Every request carries the operator's bearer token. A read-only client never sends a change: it
refuses before the request leaves, whatever a screen asks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from backend.schemas import (
    API_PREFIX,
    OPERATOR_HEADER,
    SSH_CLIENT_HEADER,
    AlertList,
    AuditFilter,
    AuditPage,
    AuditRecordDetail,
    BackendInfo,
    ChainVerification,
    ChangeApplied,
    ChangeConfirm,
    ChangePlan,
    ChangeRefused,
    CostReport,
    EndpointHealth,
    FleetNotReady,
    Gpu,
    Node,
    Overview,
    Page,
    QuotaChange,
    QuotaChangeApply,
    QuotaChangeSet,
    QuotaChangeSetApply,
    QuotaReview,
    RevisionDiff,
    RollbackApply,
    RollbackRequest,
    Tenant,
    Whoami,
    Workload,
    WorkloadDetail,
)
from opsconsole.transport import tls_verify

M = TypeVar("M", bound=BaseModel)
CHANGE_TIMEOUT = 60.0  # a plan or apply waits for the API server; longer than a read


class BackendError(Exception):
    """The backend answered with an error, or with something that is not the wire contract."""

    def __init__(
        self, message: str, status: int | None = None, refused: ChangeRefused | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.refused = refused  # for a change: its audit id, and the new plan when stale


class BackendUnavailable(BackendError):
    """The backend did not answer: refused, unreachable, or slower than the timeout."""


class NotAuthenticated(BackendError):
    """The backend answered 401: no token was given, or it is unknown, expired or revoked."""


class NotReady(BackendError):
    """The backend answers, but has no fleet data yet (503 before its first full sync): how far
    its sync is and what holds it up (e.g. the API server refusing its credentials)."""

    def __init__(self, body: FleetNotReady) -> None:
        super().__init__(body.detail, status=503)
        self.sync = body.sync


NO_TOKEN_HINT = "no token given: pass --token, set OPSCONSOLE_TOKEN or put token in the config file"


def _segment(value: str) -> str:
    """A path segment with every reserved character escaped (names are untrusted): ``/`` as
    ``%2F``, and a name made only of dots as ``%2E``s, since ``.`` and ``..`` would otherwise be
    removed from the URL as dot-segments before it is sent."""
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if set(value) <= {"."} else encoded


def _connect_failure(exc: httpx.ConnectError) -> str:
    """``backend unreachable``, or why TLS failed (a certificate that does not verify is no
    network trouble: the banner must say so)."""
    text = str(exc)
    untrusted = re.search(r"certificate verify failed: ([^(]+)", text)
    if untrusted:
        reason = untrusted.group(1).strip()
        return f"backend certificate not trusted ({reason}); pass --ca-file for a private CA"
    if "[SSL" in text:
        return f"TLS handshake with the backend failed: {text}"
    return "backend unreachable"


def _params(**values: Any) -> dict[str, Any]:
    """Query parameters without the ones left unset."""
    return {key: value for key, value in values.items() if value is not None and value != ""}


def _refusal(response: httpx.Response) -> ChangeRefused | None:
    """A change's refusal (its id, a new plan), when the answer is one."""
    try:
        return ChangeRefused.model_validate_json(response.content)
    except ValidationError:
        return None


def _not_ready(response: httpx.Response) -> FleetNotReady | None:
    """A fleet endpoint's "no fleet data yet", when the answer is one."""
    if response.status_code != 503:
        return None
    try:
        return FleetNotReady.model_validate_json(response.content)
    except ValidationError:
        return None


def _detail(response: httpx.Response) -> str:
    """The server's ``detail`` for an error answer, or the HTTP reason when it sent none."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return body["detail"]
    if isinstance(body, dict) and body.get("detail") is not None:
        return str(body["detail"])  # FastAPI's own 422 answers carry a list
    return response.reason_phrase or "error"


class BackendClient:
    """An async client for one backend; cheap to keep open for the console's lifetime."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        operator: str | None = None,
        ssh_client: str | None = None,
        token: str | None = None,
        ca_file: Path | None = None,
        read_only: bool = False,
    ) -> None:
        """``operator`` and ``ssh_client`` (the session's ``SSH_CONNECTION``) go with every
        request, so that the audit log says who acted and from where; ``token`` says it with
        authority. ``ca_file``: the CA that signs the backend's certificate (default: the
        system's). Raises ``TransportRefused`` when ``ca_file`` is not a usable CA bundle."""
        self.base_url = base_url.rstrip("/")
        self.read_only = read_only
        headers = {"accept": "application/json"}
        if operator:
            headers[OPERATOR_HEADER] = operator
        if ssh_client:
            headers[SSH_CLIENT_HEADER] = ssh_client
        self._http = httpx.AsyncClient(
            base_url=self.base_url + API_PREFIX,
            timeout=timeout,
            transport=transport,
            headers=headers,
            verify=tls_verify(ca_file),
        )
        self.use_token(token)

    def use_token(self, token: str | None) -> None:
        """Send ``token`` from now on (the embedded backend's is made while the console starts)."""
        if token:
            self._http.headers["Authorization"] = f"Bearer {token}"
        else:
            self._http.headers.pop("Authorization", None)

    @property
    def has_token(self) -> bool:
        return "Authorization" in self._http.headers

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(
        self,
        path: str,
        model: type[M],
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> M:
        return await self._request("GET", path, model, params=params, timeout=timeout)

    async def _post(self, path: str, model: type[M], body: BaseModel | None) -> M:
        """A change: the backend plans or applies it, which may take a few API calls. A read-only
        client refuses it here, before anything is sent."""
        if self.read_only:
            raise BackendError("read-only console: changes are not sent")
        body_json = None if body is None else body.model_dump(mode="json")
        return await self._request("POST", path, model, body=body_json, timeout=CHANGE_TIMEOUT)

    async def _request(
        self,
        method: str,
        path: str,
        model: type[M],
        params: dict[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = None,
    ) -> M:
        """Send one request and parse the answer into ``model``, mapping every failure to ours."""
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = await self._http.request(method, path, params=params, json=body, **extra)
        except httpx.TimeoutException as exc:
            raise BackendUnavailable(f"backend timed out on {path}") from exc
        except httpx.ConnectError as exc:
            raise BackendUnavailable(_connect_failure(exc)) from exc
        except (httpx.TransportError, OSError) as exc:
            raise BackendUnavailable(f"backend unreachable ({type(exc).__name__})") from exc
        if response.status_code == 401:
            hint = "" if self.has_token else f" ({NO_TOKEN_HINT})"
            detail = _detail(response).removeprefix("not authenticated: ")
            raise NotAuthenticated(f"not authenticated: {detail}{hint}", status=401)
        not_ready = _not_ready(response)
        if not_ready is not None:
            raise NotReady(not_ready)
        if not response.is_success:  # redirects included: the API never redirects
            raise BackendError(
                f"backend error {response.status_code}: {_detail(response)}",
                status=response.status_code,
                refused=_refusal(response) if method == "POST" else None,
            )
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            errors = exc.errors()
            where, reason = "body", "invalid"
            if errors:
                where = ".".join(str(part) for part in errors[0]["loc"]) or where
                reason = errors[0]["msg"]
            raise BackendError(
                f"malformed answer from backend: {path}: {where}: {reason}",
                status=response.status_code,
            ) from exc

    async def info(self) -> BackendInfo:
        return await self._get("/info", BackendInfo)

    async def whoami(self) -> Whoami | None:
        """Who the backend takes this client's token for; ``None`` from a backend that has no
        identities (it answers 404 here)."""
        try:
            return await self._get("/whoami", Whoami)
        except BackendError as exc:
            if exc.status == 404:
                return None
            raise

    async def overview(self) -> Overview:
        return await self._get("/overview", Overview)

    async def tenants(
        self, *, q: str | None = None, sort: str | None = None, offset: int = 0, limit: int = 100
    ) -> Page[Tenant]:
        params = _params(q=q, sort=sort, offset=offset, limit=limit)
        return await self._get("/tenants", Page[Tenant], params)

    async def tenant(self, name: str) -> Tenant:
        return await self._get(f"/tenants/{_segment(name)}", Tenant)

    async def workloads(
        self,
        *,
        tenant: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        q: str | None = None,
        sort: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[Workload]:
        params = _params(
            tenant=tenant, kind=kind, status=status, q=q, sort=sort, offset=offset, limit=limit
        )
        return await self._get("/workloads", Page[Workload], params)

    async def endpoints(
        self,
        *,
        tenant: str | None = None,
        q: str | None = None,
        sort: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[EndpointHealth]:
        params = _params(tenant=tenant, q=q, sort=sort, offset=offset, limit=limit)
        return await self._get("/endpoints", Page[EndpointHealth], params)

    async def workload(self, namespace: str, kind: str, name: str) -> WorkloadDetail:
        path = f"/workloads/{_segment(namespace)}/{_segment(kind)}/{_segment(name)}"
        return await self._get(path, WorkloadDetail)

    async def revision_diff(
        self, namespace: str, kind: str, name: str, revision: str
    ) -> RevisionDiff:
        """How ``revision`` differs from the workload's current one (a read: any role)."""
        path = f"/workloads/{_segment(namespace)}/{_segment(kind)}/{_segment(name)}"
        return await self._get(f"{path}/revisions/{_segment(revision)}", RevisionDiff)

    async def nodes(
        self,
        *,
        q: str | None = None,
        gpu_model: str | None = None,
        sort: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[Node]:
        params = _params(q=q, gpu_model=gpu_model, sort=sort, offset=offset, limit=limit)
        return await self._get("/nodes", Page[Node], params)

    async def node(self, name: str) -> Node:
        return await self._get(f"/nodes/{_segment(name)}", Node)

    async def gpus(
        self,
        *,
        node: str | None = None,
        tenant: str | None = None,
        q: str | None = None,
        idle: bool | None = None,
        sort: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[Gpu]:
        idle_param = None if idle is None else str(idle).lower()
        params = _params(
            node=node, tenant=tenant, q=q, idle=idle_param, sort=sort, offset=offset, limit=limit
        )
        return await self._get("/gpus", Page[Gpu], params)

    # -- audit -----------------------------------------------------------------------------------
    async def audit(
        self,
        where: AuditFilter | None = None,
        *,
        limit: int = 100,
        cursor: str | None = None,
        oldest_first: bool = False,
    ) -> AuditPage:
        filters = (where or AuditFilter()).model_dump(mode="json", exclude_none=True)
        filters["q"] = filters.pop("text", None)
        order = "oldest" if oldest_first else None
        params = _params(**filters, limit=limit, cursor=cursor, order=order)
        return await self._get("/audit", AuditPage, params)

    async def audit_record(self, seq: int) -> AuditRecordDetail:
        return await self._get(f"/audit/{seq}", AuditRecordDetail)

    async def audit_verify(self) -> ChainVerification:
        """Verify the whole chain now (slow on a big log)."""
        return await self._get("/audit/verify", ChainVerification, timeout=120.0)

    async def audit_chain(self) -> ChainVerification:
        """The backend's latest check of the chain (cheap)."""
        return await self._get("/audit/chain", ChainVerification)

    # -- releases: rollback and promote -----------------------------------------------------------
    def _release_path(self, namespace: str, kind: str, name: str, verb: str, step: str) -> str:
        return f"/workloads/{_segment(namespace)}/{_segment(kind)}/{_segment(name)}/{verb}/{step}"

    async def rollback_plan(
        self, namespace: str, kind: str, name: str, to_revision: int = 0
    ) -> ChangePlan:
        body = RollbackRequest(to_revision=to_revision)
        path = self._release_path(namespace, kind, name, "rollback", "plan")
        return await self._post(path, ChangePlan, body)

    async def rollback_apply(
        self, namespace: str, kind: str, name: str, plan: ChangePlan, reason: str
    ) -> ChangeApplied:
        to_revision = plan.parameters.get("to_revision", 0)
        body = RollbackApply(
            to_revision=to_revision if isinstance(to_revision, int) else 0,
            fingerprint=plan.fingerprint,
            reason=reason,
        )
        path = self._release_path(namespace, kind, name, "rollback", "apply")
        return await self._post(path, ChangeApplied, body)

    async def promote_plan(self, namespace: str, kind: str, name: str) -> ChangePlan:
        """All traffic to an InferenceService's latest ready revision: the plan."""
        path = self._release_path(namespace, kind, name, "promote", "plan")
        return await self._post(path, ChangePlan, None)

    async def promote_apply(
        self, namespace: str, kind: str, name: str, plan: ChangePlan, reason: str
    ) -> ChangeApplied:
        body = ChangeConfirm(fingerprint=plan.fingerprint, reason=reason)
        path = self._release_path(namespace, kind, name, "promote", "apply")
        return await self._post(path, ChangeApplied, body)

    # -- cost --------------------------------------------------------------------------------------
    async def cost(self, since: str = "24h") -> CostReport:
        """GPU-hours, cost and efficiency per tenant and GPU model over ``since`` (24h, 7d, 30d),
        and the GPUs held idle now."""
        return await self._get("/cost", CostReport, {"since": since})

    # -- quotas ------------------------------------------------------------------------------------
    async def alerts(
        self, *, state: str | None = None, since: str | None = None, limit: int | None = None
    ) -> AlertList:
        """Current alerts (``state``: firing by default, pending, resolved or all), or the
        history's transitions ``since`` a time (ISO 8601)."""
        return await self._get("/alerts", AlertList, _params(state=state, since=since, limit=limit))

    async def quotas(self, *, tenant: str | None = None, model: str | None = None) -> QuotaReview:
        """Every tenant's GPU quota per model against its use (filtered by tenant, model)."""
        return await self._get("/quotas", QuotaReview, _params(tenant=tenant, model=model))

    async def quota_plan(self, changes: list[QuotaChange]) -> ChangePlan:
        """The plan of one quota change, or of several as one change set."""
        body = changes[0] if len(changes) == 1 else QuotaChangeSet(items=changes)
        return await self._post("/quotas/plan", ChangePlan, body)

    async def quota_apply(
        self, changes: list[QuotaChange], plan: ChangePlan, reason: str
    ) -> ChangeApplied:
        """Apply the reviewed plan of ``changes`` with the operator's reason."""
        confirm = {"fingerprint": plan.fingerprint, "reason": reason}
        body: BaseModel
        if len(changes) == 1:
            fields = changes[0].model_dump(exclude_none=True)
            body = QuotaChangeApply.model_validate({**fields, **confirm})
        else:
            body = QuotaChangeSetApply(items=changes, **confirm)
        return await self._post("/quotas/apply", ChangeApplied, body)
