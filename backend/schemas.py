"""The wire contract between the backend's REST API (``/api/v1``) and its clients.

Pydantic models only, and no other backend imports: the TUI imports this module (and nothing else
from ``backend``), so a bastion host needs no Kubernetes or database libraries to run the console.

Conventions:
- Names are the cluster's names, given literally; clients must treat every string as untrusted.
- GPU counts are integers; percentages are floats 0–100; ``None`` means "unknown" (no telemetry,
  a DCGM blank sentinel, a field the cluster did not report) and is shown as N/A, never as 0.
- Times are timezone-aware UTC datetimes.
- Every list endpoint answers a ``Page``: ``items``, ``total`` (after filtering) and ``next``, an
  opaque cursor for the following page or ``None``. Lists also take ``offset`` for random access
  (a virtual table jumping to row 15,000).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

API_PREFIX = "/api/v1"

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list endpoint's answer."""

    items: list[T]
    total: int = Field(description="How many items match the filters, over all pages.")
    next: str | None = Field(None, description="Cursor of the next page; null on the last one.")


class ApiErrorBody(BaseModel):
    """Every 4xx/5xx answer of ``/api/v1``: what went wrong, in words an operator can act on."""

    detail: str


# -- freshness and identity ----------------------------------------------------------------------


class KindFreshness(BaseModel):
    """One watched kind of cluster object: whether the backend's copy of it is current."""

    kind: str = Field(description="The plural, e.g. pods.")
    state: str = Field(
        description="pending (never listed) | live | stale (listed, but the API server has not "
        "confirmed it lately) | absent (API not served) | forbidden."
    )
    age_seconds: float | None = Field(
        None, description="Seconds since the data was last confirmed current; 0 while live."
    )
    error: str | None = Field(None, description="Why the last list or watch failed, if it did.")


class TelemetryFailure(BaseModel):
    """A telemetry source whose last scrape failed."""

    source: str = Field(
        description="The exporter's URL, nvml, a model server pod (namespace/name) or Prometheus."
    )
    error: str


class SyncReason(StrEnum):
    """Why there is no fleet data yet."""

    SYNCING = "syncing"  # the first lists are under way
    BUILDING = "building"  # every kind listed; the fleet model is being built
    CLUSTER_ERROR = "cluster_error"  # the API server answers the lists with errors
    CLUSTER_UNAUTHORIZED = "cluster_unauthorized"  # the API server refuses the credentials


class SyncProgress(BaseModel):
    """How far the backend is from its first picture of the fleet, and what holds it up."""

    reason: SyncReason
    kinds_listed: int = Field(description="Watched kinds listed at least once.")
    kinds_total: int
    cluster_error: str | None = Field(
        None, description="How the API server answered the lists, e.g. HTTP 401 Unauthorized."
    )


class FleetNotReady(ApiErrorBody):
    """The 503 of a fleet endpoint before the first full sync; sent with ``Retry-After``."""

    sync: SyncProgress
    retry_after_seconds: int


class DataFreshness(BaseModel):
    """How old the backend's picture of the fleet is; clients show it in their status bar."""

    synced: bool = Field(description="True once every watched kind has been listed once.")
    cluster_age_seconds: float | None = Field(
        None, description="Seconds since the last confirmed contact with the Kubernetes API."
    )
    cluster_problem: str | None = Field(
        None,
        description="Why the cluster data is not current (not synced yet, or the API server "
        "stopped answering); null while it is.",
    )
    kinds: list[KindFreshness] = Field(default_factory=list, description="Per watched kind.")
    telemetry_age_seconds: float | None = Field(
        None, description="Seconds since the newest round of GPU telemetry that read something."
    )
    watch_restarts: int = 0
    telemetry_sources: int = Field(0, description="Exporters (or NVML hosts) scraped.")
    telemetry_errors: int = Field(0, description="Sources whose last scrape failed.")
    telemetry_failures: list[TelemetryFailure] = Field(
        default_factory=list, description="The failed sources and why (at most 20)."
    )
    sync: SyncProgress | None = Field(
        None, description="Why there is no fleet data yet; null once the fleet model is built."
    )
    inference_age_seconds: float | None = Field(
        None,
        description="Seconds since the newest round of model server metrics that read something.",
    )
    inference_sources: int = Field(0, description="Model server pods (or Prometheus) read.")
    inference_errors: int = Field(0, description="Of those, the ones whose last read failed.")
    inference_failures: list[TelemetryFailure] = Field(
        default_factory=list, description="The failed model server sources and why (at most 20)."
    )


class Whoami(BaseModel):
    """``GET /api/v1/whoami``: who the backend takes the caller for, from their bearer token."""

    operator: str
    role: str = Field(description="viewer | operator | admin.")
    tenants: list[str] | None = Field(
        None, description="The tenants the token may see and change; null = every tenant."
    )


class BackendInfo(BaseModel):
    """``GET /api/v1/info``: which backend and cluster a client is talking to."""

    version: str
    cluster_server: str = Field(description="The Kubernetes API server URL the backend watches.")
    cluster_context: str | None = None
    cluster_version: str | None = Field(None, description="The API server's gitVersion.")
    telemetry_mode: str
    freshness: DataFreshness
    alerts_firing: int | None = Field(
        None, description="Firing alerts the caller may see; null: the backend has no alerts."
    )


# -- tenants ---------------------------------------------------------------------------------------


class QuotaMode(StrEnum):
    KUEUE = "kueue"
    RESOURCE_QUOTA = "resourcequota"
    NONE = "none"


class TenantQuota(BaseModel):
    """A tenant's GPU quota for one GPU model (one Kueue flavor) and what it uses of it."""

    gpu_model: str = Field(description="The nodes' nvidia.com/gpu.product, or '*' for any model.")
    flavor: str | None = Field(
        None, description="The Kueue ResourceFlavor; null in ResourceQuota mode."
    )
    nominal: int
    borrowing_limit: int | None = Field(None, description="null = may borrow without limit.")
    lending_limit: int | None = None
    used: int = 0
    borrowed: int = Field(
        0, description="GPUs in use beyond the nominal quota, lent by the cohort."
    )
    pending: int = Field(0, description="GPUs requested by workloads waiting for quota.")


class Tenant(BaseModel):
    """A team sharing the platform: its namespaces, GPU quota and what it uses."""

    name: str
    namespaces: list[str]
    quota_mode: QuotaMode
    cluster_queue: str | None = None
    cohort: str | None = None
    gpu_quota: int = Field(0, description="Sum of nominal quota over all GPU models.")
    gpu_used: int = 0
    gpu_borrowed: int = 0
    gpu_pending: int = 0
    utilization: float | None = Field(
        None, description="Mean utilization % of the GPUs its pods hold; null without telemetry."
    )
    workloads: int = 0
    workloads_pending: int = 0
    quotas: list[TenantQuota] = Field(default_factory=list)


# -- workloads and releases ----------------------------------------------------------------------


class WorkloadKind(StrEnum):
    DEPLOYMENT = "Deployment"
    INFERENCE_SERVICE = "InferenceService"
    JOB = "Job"


class WorkloadStatus(StrEnum):
    RUNNING = "Running"  # all wanted replicas ready / job running
    PROGRESSING = "Progressing"  # a rollout or canary under way
    DEGRADED = "Degraded"  # fewer ready replicas than wanted, or a failed rollout
    PENDING = "Pending"  # waiting for quota or for GPUs
    PAUSED = "Paused"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


class RolloutProgress(BaseModel):
    """How far a release's rollout has got, read from its status as ``kubectl rollout status``
    reads it (Deployments) or from the routed traffic (InferenceServices)."""

    desired: int = Field(0, description="Replicas the spec asks for.")
    updated: int = Field(0, description="Replicas running the current template.")
    ready: int = 0
    available: int = 0
    latest_traffic_percent: int | None = Field(
        None, description="InferenceServices: % of requests routed to the latest ready revision."
    )
    target_traffic_percent: int | None = Field(
        None, description="InferenceServices: the % the spec asks for (canaryTrafficPercent)."
    )
    done: bool = Field(description="Every replica updated and available / traffic as asked.")
    stuck: bool = Field(
        False,
        description="The rollout passed its progressDeadlineSeconds (ProgressDeadlineExceeded).",
    )
    message: str = Field("", description="What it waits for, in kubectl's words.")


class Workload(BaseModel):
    """A Deployment, InferenceService or Job, as one row of the workloads table."""

    namespace: str
    name: str
    kind: WorkloadKind
    tenant: str | None = None
    model: str | None = Field(None, description="The served model (label opsconsole.io/model).")
    stage: str | None = Field(None, description="staging | production (label opsconsole.io/stage).")
    status: WorkloadStatus
    message: str = Field("", description="Why it is pending, degraded or failed.")
    replicas: int = 0
    ready_replicas: int = 0
    gpus: int = Field(0, description="GPUs held by its running pods.")
    gpus_requested: int = Field(0, description="GPUs its pods ask for in all (running or not).")
    gpu_model: str | None = None
    revision: str | None = Field(
        None, description="Deployment revision number, or the KServe latest created revision."
    )
    canary_percent: int | None = Field(None, description="Traffic % to the latest KServe revision.")
    queue: str | None = Field(None, description="Kueue LocalQueue (kueue.x-k8s.io/queue-name).")
    created: datetime | None = None
    rollout: RolloutProgress | None = Field(
        None, description="Deployments and InferenceServices: the latest rollout's progress."
    )


class Revision(BaseModel):
    """One entry of a release's history (a ReplicaSet, or a KServe revision)."""

    revision: str
    change_cause: str | None = Field(
        default=None, description="kubernetes.io/change-cause; null = <none>."
    )
    created: datetime | None = None
    replicas: int = 0
    ready_replicas: int = 0
    image: str | None = None
    current: bool = False
    traffic_percent: int | None = None
    tag: str | None = Field(default=None, description="KServe traffic tag: latest / prev.")


class RevisionTraffic(BaseModel):
    """One revision's share of an InferenceService's requests."""

    revision: str | None = Field(description="null: KServe has not named the revision yet.")
    percent: int
    tag: str | None = Field(
        default=None, description="KServe route tag (latest / prev), when tagged."
    )
    latest: bool = Field(
        description="The latest ready revision (the canary); false: the previously rolled-out one."
    )


class TrafficSplit(BaseModel):
    """How KServe splits an InferenceService's requests between its revisions."""

    observed: bool = Field(
        description="From status traffic[] (what is routed); false: derived from the spec."
    )
    revisions: list[RevisionTraffic] = Field(description="The latest first.")


class PodSummary(BaseModel):
    name: str
    node: str | None = None
    phase: str
    ready: bool = False
    restarts: int = 0
    gpus: int = 0
    revision: str | None = None
    created: datetime | None = None


class ClusterEvent(BaseModel):
    type: str  # Normal | Warning
    reason: str
    message: str
    object: str = Field(description="kind/name of the object the event is about.")
    count: int = 1
    last_seen: datetime | None = None


# -- endpoint health -----------------------------------------------------------------------------
class RequestStats(BaseModel):
    """A model endpoint's requests over the last window; null when nothing was measured."""

    request_rate: float | None = Field(None, description="Requests per second.")
    error_rate: float | None = Field(None, description="Share of requests answered 5xx, 0–1.")
    p50_seconds: float | None = Field(None, description="Median end-to-end latency.")
    p95_seconds: float | None = None
    p99_seconds: float | None = None


class HealthHistory(BaseModel):
    """One value per telemetry round, oldest first (null: no requests that round)."""

    request_rate: list[float | None] = Field(default_factory=list)
    error_rate: list[float | None] = Field(default_factory=list)
    p99_seconds: list[float | None] = Field(default_factory=list)


class RevisionHealth(RequestStats):
    """One revision's share of an endpoint (traffic split between KServe revisions, or a
    Deployment's old pods while a rollout or rollback replaces them)."""

    revision: str
    current: bool = Field(False, description="The workload's current (latest) revision.")
    traffic_percent: int | None = Field(None, description="KServe's split; null otherwise.")
    history: HealthHistory = Field(default_factory=HealthHistory)


class EndpointHealth(RequestStats):
    """``GET /api/v1/endpoints`` row: a model Deployment's or InferenceService's request health."""

    namespace: str
    name: str
    kind: WorkloadKind
    tenant: str | None = None
    model: str | None = None
    slo_p99_seconds: float | None = Field(
        None, description="Its p99 latency objective (annotation opsconsole.io/slo-p99-seconds)."
    )
    measured_at: datetime | None = Field(None, description="End of the newest window.")
    history: HealthHistory = Field(default_factory=HealthHistory)
    revisions: list[RevisionHealth] = Field(default_factory=list, description="Newest first.")


class WorkloadDetail(Workload):
    """``GET /api/v1/workloads/{namespace}/{kind}/{name}``."""

    paused: bool = False
    images: list[str] = Field(default_factory=list)
    revisions: list[Revision] = Field(default_factory=list, description="Newest first.")
    traffic: TrafficSplit | None = Field(default=None, description="InferenceServices only.")
    pods: list[PodSummary] = Field(default_factory=list)
    events: list[ClusterEvent] = Field(default_factory=list, description="Newest first.")
    conditions: list[dict[str, str]] = Field(default_factory=list)
    endpoint: EndpointHealth | None = Field(
        None, description="Model Deployments and InferenceServices: request health."
    )


# -- nodes and GPUs ------------------------------------------------------------------------------


class Node(BaseModel):
    name: str
    gpu_model: str | None = None
    gpus_capacity: int = 0
    gpus_allocatable: int = 0
    gpus_allocated: int = Field(0, description="GPUs requested by pods bound to the node.")
    ready: bool = True
    cordoned: bool = False
    utilization: float | None = Field(None, description="Mean utilization % of its GPUs.")
    memory_used_mib: float | None = None
    memory_total_mib: float | None = None
    power_watts: float | None = Field(None, description="Sum over its GPUs.")
    max_temperature_c: float | None = None
    xid_gpus: int = Field(0, description="GPUs whose last XID error is non-zero.")
    pods: int = 0


class Gpu(BaseModel):
    """One physical GPU (or MIG instance) with its latest telemetry and who holds it."""

    node: str
    index: int
    uuid: str
    model: str
    mig_profile: str | None = None
    utilization: float | None = Field(None, description="Percent, or null when unknown.")
    engine_active: float | None = Field(None, description="DCGM_FI_PROF_GR_ENGINE_ACTIVE, 0–1.")
    memory_used_mib: float | None = None
    memory_total_mib: float | None = None
    temperature_c: float | None = None
    memory_temperature_c: float | None = None
    power_watts: float | None = None
    sm_clock_mhz: float | None = None
    last_xid: int | None = Field(None, description="Last XID error code; 0 = none; null = unknown.")
    pod: str | None = None
    namespace: str | None = None
    tenant: str | None = None
    workload: str | None = Field(None, description="kind/name of the workload owning the pod.")
    allocated: bool = False
    idle: bool = Field(False, description="Allocated to a pod but (nearly) unused.")
    sampled_at: datetime | None = None
    history: list[float | None] = Field(
        default_factory=list,
        description="Recent utilization samples, oldest first, for sparklines.",
    )


# -- the overview --------------------------------------------------------------------------------


class GpuModelSummary(BaseModel):
    model: str
    nodes: int
    total: int
    allocated: int
    in_use: int = Field(description="Allocated GPUs doing work.")
    idle: int = Field(description="Allocated GPUs doing (nearly) nothing.")
    free: int = Field(description="GPUs no pod holds.")


class ProblemSeverity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class Problem(BaseModel):
    severity: ProblemSeverity
    kind: str = Field(description="pending | degraded | xid | hot | node-not-ready | ...")
    subject: str = Field(description="What it is about, e.g. 'team-a/llama-70b' or 'node-07/gpu3'.")
    message: str


class FleetTotals(BaseModel):
    nodes: int = 0
    nodes_ready: int = 0
    gpus: int = 0
    gpus_allocated: int = 0
    gpus_in_use: int = 0
    gpus_idle: int = 0
    tenants: int = 0
    workloads: int = 0
    pods: int = 0
    utilization: float | None = None
    power_watts: float | None = None


class Overview(BaseModel):
    """``GET /api/v1/overview``: the fleet at a glance."""

    totals: FleetTotals
    gpu_models: list[GpuModelSummary]
    tenants: list[Tenant] = Field(description="Tenants, highest GPU usage first.")
    workloads_by_status: dict[str, int]
    hottest: list[Gpu] = Field(description="The hottest GPUs by temperature.")
    idlest: list[Gpu] = Field(description="Allocated GPUs with the lowest utilization.")
    problems: list[Problem]
    worst_endpoints: list[EndpointHealth] = Field(
        default_factory=list,
        description="Endpoints with traffic, highest error rate then p99 first (no revisions).",
    )
    freshness: DataFreshness


# -- audit -----------------------------------------------------------------------------------------


class FieldDiff(BaseModel):
    """One field that a change sets: its path, and its value before and after (null: absent)."""

    path: str
    before: object = None
    after: object = None


class RevisionDiff(BaseModel):
    """How one revision's pod template differs from the current revision's: what rolling back
    to it would change (images, model URI, args, env, resources, labels, annotations)."""

    revision: str
    current_revision: str | None = Field(description="The revision compared with.")
    diff: list[FieldDiff] | None = Field(
        default=None,
        description="current → this revision, field by field; null when a template is not "
        "known (see unknown).",
    )
    unknown: str | None = Field(default=None, description="Why the diff cannot be shown.")


class AuditStage(StrEnum):
    INTENT = "intent"
    OUTCOME = "outcome"


class AuditOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REVERTED = "reverted"
    DENIED = "denied"
    INVALID = "invalid"


class AuditEntry(BaseModel):
    """What a change records: who, from where, what, why, before and after, and how it ended."""

    change_id: str = Field(description="Links a change's intent and outcome.")
    stage: AuditStage
    actor: str
    role: str
    source_address: str | None = Field(None, description="The client's address, as seen.")
    ssh_client: str | None = Field(None, description="The operator's SSH client (SSH_CONNECTION).")
    user_agent: str | None = None
    action: str = Field(description="quota.set, quota.transfer, rollout.undo, isvc.rollback, ...")
    target: str = Field(description="What was changed, e.g. deployment/ns/name or tenant/a.")
    tenants: list[str] = Field(default_factory=list, description="Tenants the change affects.")
    reason: str = ""
    parameters: dict[str, object] = Field(default_factory=dict)
    before: object = None
    after: object = None
    outcome: AuditOutcome | None = Field(None, description="Null on an intent.")
    error: str | None = None
    resource_versions: dict[str, str] = Field(
        default_factory=dict, description="The resourceVersion of each object read or written."
    )

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        """NUL becomes U+FFFD: PostgreSQL text cannot hold it, and every other character is kept
        literally (the console strips control characters when it shows them)."""
        return value.replace("\x00", "\ufffd") if type(value) is str else value


class AuditRecord(AuditEntry):
    """A stored record: numbered, timed and chained."""

    seq: int = Field(description="1, 2, 3, ... with no gaps.")
    at: str = Field(description="UTC with microseconds: 2026-11-30T10:00:00.000000Z.")
    prev_hash: str
    hash: str = Field(description="SHA-256(prev_hash ‖ canonical JSON of the record).")


class AuditFilter(BaseModel):
    """Filters of ``GET /api/v1/audit``; ``*`` in action and target matches anything."""

    actor: str | None = None
    action: str | None = None
    tenant: str | None = None
    target: str | None = None
    outcome: AuditOutcome | None = None
    change_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = Field(None, description="Case-insensitive substring of any text field.")


class AuditRecordDetail(AuditRecord):
    """One record with what it changed, leaf by leaf."""

    diff: list[FieldDiff] = Field(default_factory=list)


class AuditPage(BaseModel):
    """A page of audit records, newest first (no total: counting a million rows per page is not
    worth its cost)."""

    items: list[AuditRecord]
    next: str | None = None


class ChainHead(BaseModel):
    seq: int
    hash: str


class ChainVerification(BaseModel):
    """``GET /api/v1/audit/verify``: the chain from record 1, and the head kept outside."""

    ok: bool
    records: int = Field(description="Records verified before the first problem (or all).")
    head: ChainHead | None = None
    broken_at: int | None = Field(None, description="The first record where the chain breaks.")
    problem: str | None = None
    external_head: ChainHead | None = Field(
        None, description="The head the backend last wrote outside its database."
    )
    external_head_error: str | None = None
    checked_at: str | None = Field(None, description="When this verification ran (UTC).")


# -- changes ---------------------------------------------------------------------------------------


class PlannedObject(BaseModel):
    object: str = Field(description="kind/namespace/name")
    resource_version: str = Field(description="The version the plan read; apply requires it.")
    fields: list[FieldDiff]


class ChangePlan(BaseModel):
    """What a change will write, exactly; apply it by sending back ``fingerprint``."""

    action: str
    target: str
    tenants: list[str]
    parameters: dict[str, object]
    objects: list[PlannedObject]
    diff: list[FieldDiff] = Field(
        default_factory=list, description="The same change as readable leaf paths."
    )
    warnings: list[str] = Field(default_factory=list)
    noop: str | None = Field(None, description="Why applying would change nothing.")
    details: dict[str, object] = Field(default_factory=dict)
    fingerprint: str


class ChangeApplied(BaseModel):
    """How an applied change ended; ``seq`` numbers its outcome in the audit log."""

    change_id: str
    outcome: AuditOutcome
    error: str | None = None
    plan: ChangePlan


class RollbackRequest(BaseModel):
    to_revision: int = Field(0, ge=0, description="0: the previous revision, as kubectl does.")


class ChangeConfirm(BaseModel):
    """Apply the plan the operator reviewed (its fingerprint), with their reason."""

    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}\.[0-9a-f]{64}$")
    reason: str = Field(max_length=1000)


class RollbackApply(RollbackRequest, ChangeConfirm):
    """Apply a reviewed rollback (``to_revision`` as planned)."""


class ChangeRefused(BaseModel):
    """An apply that wrote nothing or did not finish: why, and where to look."""

    detail: str
    change_id: str | None = Field(None, description="The change's id in the audit log.")
    plan: ChangePlan | None = Field(None, description="The new plan, when the old one is stale.")


OPERATOR_HEADER = "X-Opsconsole-Operator"
SSH_CLIENT_HEADER = "X-Opsconsole-Ssh-Client"


# -- quota review and quota changes ----------------------------------------------------------


class UsageWindow(BaseModel):
    """A tenant's use of one GPU model over a window, from the recorded usage history."""

    samples: int = Field(0, description="Recorded samples in the window; 0: no history yet.")
    allocated_avg: float | None = Field(None, description="GPUs held by its pods, on average.")
    allocated_peak: int | None = None
    busy_avg: float | None = Field(None, description="Held GPUs doing work, on average.")
    busy_peak: int | None = None
    pending_avg: float | None = Field(None, description="GPUs waited for, on average.")
    pending_peak: int | None = None


class NamespaceQuota(BaseModel):
    """One namespace's ResourceQuota of ``requests.nvidia.com/gpu``."""

    namespace: str
    name: str = Field(description="The ResourceQuota's name.")
    hard: int
    used: int


class QuotaRow(BaseModel):
    """One tenant's quota of one GPU model (a Kueue flavor), or of every model (ResourceQuota)."""

    tenant: str
    system: QuotaMode = Field(description="kueue or resourcequota.")
    gpu_model: str = Field(description="The nodes' nvidia.com/gpu.product; '*' for any model.")
    flavor: str | None = Field(None, description="The Kueue ResourceFlavor (kueue only).")
    cluster_queue: str | None = None
    cohort: str | None = None
    namespaces: list[str] = Field(description="The tenant's namespaces.")
    namespace_quotas: list[NamespaceQuota] = Field(
        default_factory=list, description="Per namespace (resourcequota only)."
    )
    nominal: int
    borrowing_limit: int | None = Field(None, description="null = may borrow without limit.")
    lending_limit: int | None = None
    used: int = Field(0, description="GPUs in use against the quota (admitted / charged).")
    borrowed: int = Field(0, description="GPUs in use beyond the nominal quota.")
    pending: int = Field(0, description="GPUs requested by workloads waiting for quota.")
    allocated: int = Field(0, description="GPUs of this model held by the tenant's pods.")
    idle: int = Field(0, description="Held GPUs doing (nearly) nothing (telemetry).")
    usage_24h: UsageWindow = Field(default_factory=UsageWindow)
    usage_7d: UsageWindow = Field(default_factory=UsageWindow)


class QuotaModelTotal(BaseModel):
    """One GPU model: the cluster's GPUs and the nominal quota granted on them."""

    gpu_model: str
    flavors: list[str] = Field(default_factory=list, description="Kueue flavors of the model.")
    capacity: int = Field(description="GPUs of this model in the nodes.")
    nominal: int = Field(description="Kueue nominal quota of this model over all tenants.")
    limit: int = Field(description="capacity × the oversubscription ratio.")


class QuotaReview(BaseModel):
    """Every tenant's GPU quota against its use (``GET /api/v1/quotas``)."""

    items: list[QuotaRow]
    models: list[QuotaModelTotal]
    oversubscription: float = Field(description="Nominal quota may reach capacity × this.")
    history_updated: datetime | None = Field(
        None, description="When the usage history was last recorded; null: not yet."
    )


class QuotaChange(BaseModel):
    """One quota change: ``set`` a tenant's quota, or ``transfer`` GPUs of quota between two.

    ``model`` is a Kueue flavor (``a100``) or a GPU product (``NVIDIA-A100-SXM4-80GB``), needed
    where the tenant has quota for several models; a ResourceQuota tenant with several GPU
    quotas names the namespace (``namespace``; ``from_namespace``/``to_namespace`` in a
    transfer). ``gpus`` is checked by the backend (a whole number, not negative, not absurd),
    so that every refusal is in the audit log."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True, extra="forbid")

    op: Literal["set", "transfer"]
    tenant: str | None = Field(None, max_length=253, description="set: the tenant.")
    from_tenant: str | None = Field(None, alias="from", max_length=253)
    to_tenant: str | None = Field(None, alias="to", max_length=253)
    model: str | None = Field(None, max_length=253)
    gpus: int | float | str | None = None
    namespace: str | None = Field(None, max_length=253)
    from_namespace: str | None = Field(None, max_length=253)
    to_namespace: str | None = Field(None, max_length=253)

    def parameters(self) -> dict[str, object]:
        """The change path's parameters: the JSON form, unset fields left out."""
        return self.model_dump(mode="json", exclude_none=True)


class QuotaChangeSet(BaseModel):
    """Several quota changes, planned and applied as one (all or nothing)."""

    model_config = ConfigDict(extra="forbid")

    items: list[QuotaChange] = Field(min_length=1, max_length=100)


class QuotaChangeApply(QuotaChange):
    """Apply one reviewed quota change: the change, its plan's fingerprint and a reason."""

    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}\.[0-9a-f]{64}$")
    reason: str = Field(max_length=1000)

    def parameters(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_none=True, exclude={"fingerprint", "reason"})


class QuotaChangeSetApply(QuotaChangeSet):
    """Apply a reviewed change set."""

    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}\.[0-9a-f]{64}$")
    reason: str = Field(max_length=1000)


# -- cost showback and idle GPUs ------------------------------------------------------------------

CostWindow = Literal["24h", "7d", "30d"]


class CostRow(BaseModel):
    """One tenant's GPU-hours and cost of one GPU model over the window (OpenCost's model)."""

    tenant: str
    gpu_model: str = Field(description="As its quota names it; '*' for any model (ResourceQuota).")
    samples: int = Field(description="Usage recordings in the window.")
    gpu_hours: float = Field(description="Allocated GPUs × hours.")
    busy_gpu_hours: float = Field(description="Allocated GPUs doing work × hours.")
    efficiency: float | None = Field(
        None, description="busy ÷ allocated GPU-hours, percent; null without allocation."
    )
    price_per_hour: float | None = Field(None, description="Per GPU; null: no price set.")
    cost: float | None = Field(None, description="GPU-hours × price; null: no price set.")


class IdleGpus(BaseModel):
    """A tenant's GPUs of one model allocated to its pods but idle now, and what they cost."""

    tenant: str
    gpu_model: str = Field(description="The GPUs' product name.")
    quota_model: str | None = Field(
        None, description="The quota row (its gpu_model) these GPUs count against; null: none."
    )
    gpus: int
    idle_seconds: float | None = Field(
        None,
        description="Every one of them has been idle at least this long (from the utilization "
        "history, which starts again when the backend does); null: unknown.",
    )
    idle_at_least: bool = Field(
        False, description="The idle time reaches the whole history kept: it may be longer."
    )
    price_per_hour: float | None = None
    cost_per_day: float | None = Field(None, description="gpus × price × 24; null: no price.")


class TenantCost(BaseModel):
    """One tenant's totals over the window and its idle GPUs now."""

    tenant: str
    gpu_hours: float = 0.0
    busy_gpu_hours: float = 0.0
    efficiency: float | None = None
    cost: float | None = Field(None, description="Over its priced models; null: none priced.")
    unpriced_gpu_hours: float = Field(0.0, description="GPU-hours of models without a price.")
    idle_gpus: int = 0
    idle_cost_per_day: float | None = None


class CostReport(BaseModel):
    """``GET /api/v1/cost``: GPU-hours and cost per tenant and GPU model, and the idle GPUs."""

    since: CostWindow
    items: list[CostRow]
    tenants: list[TenantCost] = Field(description="Highest cost first, then GPU-hours.")
    idle: list[IdleGpus]
    gpu_hours: float = 0.0
    cost: float | None = Field(None, description="Over priced models; null: none priced.")
    unpriced_gpu_hours: float = 0.0
    idle_gpus: int = 0
    idle_cost_per_day: float | None = None
    history_updated: datetime | None = Field(
        None, description="When the usage history was last recorded; null: not yet."
    )


# -- alerts ----------------------------------------------------------------------------------


class AlertState(StrEnum):
    """Prometheus's ``for:`` semantics: a condition true for less than the rule's duration is
    pending, then firing; when it stops being true the alert is resolved."""

    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class AlertSubjectKind(StrEnum):
    GPU = "gpu"
    NODE = "node"
    WORKLOAD = "workload"
    TENANT = "tenant"


class AlertSubject(BaseModel):
    """What an alert is about, with what a console needs to open it."""

    kind: AlertSubjectKind
    name: str = Field(description="node-07/gpu3, node-07, team-a/llama-70b or team-a.")
    node: str | None = None
    gpu_uuid: str | None = None
    namespace: str | None = None
    workload_kind: str | None = Field(None, description="Deployment, InferenceService or Job.")
    workload: str | None = None
    tenant: str | None = Field(None, description="The tenant it belongs to; null: none.")


class Alert(BaseModel):
    """One alert in one state: current (``GET /alerts``) or a transition of the history."""

    rule: str = Field(description="The rule's name, e.g. gpu_saturated.")
    severity: ProblemSeverity
    state: AlertState
    subject: AlertSubject
    labels: dict[str, str] = Field(default_factory=dict, description="Prometheus-style labels.")
    value: float | None = Field(None, description="The observed value; null once unobserved.")
    threshold: float
    unit: str = Field("", description="The value's and threshold's unit: %, °C or none.")
    since: datetime = Field(description="When it entered this state.")
    started: datetime = Field(description="When its condition became true (pending began).")
    message: str = Field(description="What was observed against the rule, or why it cleared.")


class AlertList(BaseModel):
    """``GET /api/v1/alerts``: current alerts (firing, then pending, then recently resolved),
    or the history's transitions since a time, newest first."""

    items: list[Alert]
    firing: int = Field(0, description="Firing alerts the caller may see, in all.")
    pending: int = Field(0, description="Pending alerts the caller may see, in all.")
    evaluated_at: datetime | None = Field(None, description="The rules' last evaluation.")
