"""A small, hand-written, fixed fleet for the detail screens' tests, snapshots and screenshots.

Unlike the generated rows of ``tests.fake_backend``, these objects look like a real platform:
three GPU models, tenants borrowing and over quota, a Deployment with a revision history, a KServe
canary, a pending Job, events, GPU histories, unknown (None) telemetry and one hostile name. It is
served by ``FakeBackend`` (failure modes included); every time is relative to ``NOW``, the clock
the test app is given, so nothing depends on the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from backend.schemas import (
    ClusterEvent,
    DataFreshness,
    FleetTotals,
    Gpu,
    GpuModelSummary,
    Node,
    Overview,
    PodSummary,
    Problem,
    ProblemSeverity,
    QuotaMode,
    Revision,
    RevisionTraffic,
    Tenant,
    TenantQuota,
    TrafficSplit,
    WorkloadDetail,
    WorkloadKind,
    WorkloadStatus,
)
from opsconsole.client import BackendClient, BackendError
from opsconsole.screens.node_detail import NodeDetailScreen
from opsconsole.screens.tenant_detail import TenantDetailScreen
from opsconsole.screens.workload_detail import WorkloadDetailScreen
from opsconsole.themes import register_themes
from tests.fake_backend import FakeBackend

NOW_DT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
NOW = NOW_DT.timestamp()
H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-40GB"
L4 = "NVIDIA-L4"
HOSTILE = "x[bold]y[/"
HOSTILE_POD = "x[bold]y"  # path-safe: a "/" in a URL segment cannot be routed


def ago(**delta: float) -> datetime:
    return NOW_DT - timedelta(**delta)


def tenants() -> list[Tenant]:
    return [
        Tenant(
            name="team-a",
            namespaces=["team-a", "team-a-dev"],
            quota_mode=QuotaMode.KUEUE,
            cluster_queue="cq-team-a",
            cohort="research",
            gpu_quota=16,
            gpu_used=18,
            gpu_borrowed=2,
            gpu_pending=4,
            utilization=71.5,
            workloads=3,
            workloads_pending=1,
            quotas=[
                TenantQuota(
                    gpu_model=H100,
                    flavor="h100",
                    nominal=12,
                    borrowing_limit=4,
                    used=14,
                    borrowed=2,
                    pending=4,
                ),
                TenantQuota(gpu_model=A100, flavor="a100", nominal=4, lending_limit=2, used=4),
            ],
        ),
        Tenant(
            name="team-b",
            namespaces=["team-b"],
            quota_mode=QuotaMode.KUEUE,
            cluster_queue="cq-team-b",
            cohort="research",
            gpu_quota=8,
            gpu_used=3,
            utilization=None,
            workloads=1,
            quotas=[TenantQuota(gpu_model=A100, flavor="a100", nominal=8, used=3)],
        ),
        Tenant(
            name="serving",
            namespaces=["serving"],
            quota_mode=QuotaMode.RESOURCE_QUOTA,
            gpu_quota=4,
            gpu_used=5,
            utilization=12.0,
            workloads=1,
            quotas=[TenantQuota(gpu_model="*", nominal=4, used=5)],
        ),
        Tenant(
            name=HOSTILE,
            namespaces=[HOSTILE],
            quota_mode=QuotaMode.NONE,
            workloads=0,
        ),
    ]


def workloads() -> list[WorkloadDetail]:
    return [
        WorkloadDetail(
            namespace="team-a",
            name="llama-70b",
            kind=WorkloadKind.DEPLOYMENT,
            tenant="team-a",
            model="llama-3-70b",
            stage="production",
            status=WorkloadStatus.DEGRADED,
            message="1 of 3 replicas not ready: CrashLoopBackOff",
            replicas=3,
            ready_replicas=2,
            gpus=8,
            gpus_requested=12,
            gpu_model=H100,
            revision="4",
            queue="team-a-queue",
            created=ago(days=12),
            images=["registry.local/llama:4.1"],
            revisions=[
                Revision(
                    revision="4",
                    change_cause="bump to llama 4.1 [canary]",
                    created=ago(hours=2),
                    replicas=3,
                    ready_replicas=2,
                    image="registry.local/llama:4.1",
                    current=True,
                ),
                Revision(
                    revision="3",
                    change_cause=None,
                    created=ago(days=3),
                    replicas=0,
                    image="registry.local/llama:4.0",
                ),
                Revision(
                    revision="2",
                    change_cause="kubectl set image deploy/llama-70b llama=4.0",
                    created=ago(days=9),
                    replicas=0,
                    image="registry.local/llama:3.9",
                ),
            ],
            pods=[
                PodSummary(
                    name="llama-70b-7c9f-abcde",
                    node="h100-node-01",
                    phase="Running",
                    ready=True,
                    gpus=4,
                    revision="4",
                    created=ago(hours=2),
                ),
                PodSummary(
                    name="llama-70b-7c9f-fghij",
                    node="h100-node-02",
                    phase="Running",
                    ready=True,
                    restarts=1,
                    gpus=4,
                    revision="4",
                    created=ago(hours=2),
                ),
                PodSummary(
                    name="llama-70b-7c9f-klmno",
                    node=None,
                    phase="Pending",
                    gpus=4,
                    revision="4",
                    created=ago(minutes=30),
                ),
            ],
            events=[
                ClusterEvent(
                    type="Warning",
                    reason="BackOff",
                    message="Back-off restarting failed container llama in pod llama-70b-7c9f-fghij",
                    object="Pod/llama-70b-7c9f-fghij",
                    count=7,
                    last_seen=ago(minutes=2),
                ),
                ClusterEvent(
                    type="Normal",
                    reason="ScalingReplicaSet",
                    message="Scaled up replica set llama-70b-7c9f to 3",
                    object="Deployment/llama-70b",
                    last_seen=ago(hours=2),
                ),
            ],
        ),
        WorkloadDetail(
            namespace="serving",
            name="chat",
            kind=WorkloadKind.INFERENCE_SERVICE,
            tenant="serving",
            model="mistral-7b",
            stage="production",
            status=WorkloadStatus.PROGRESSING,
            message="canary at 20%",
            replicas=2,
            ready_replicas=2,
            gpus=2,
            gpus_requested=2,
            gpu_model=L4,
            revision="chat-predictor-00003",
            canary_percent=20,
            created=ago(days=30),
            revisions=[
                Revision(
                    revision="chat-predictor-00003",
                    created=ago(minutes=40),
                    replicas=1,
                    ready_replicas=1,
                    current=True,
                    traffic_percent=20,
                    tag="latest",
                ),
                Revision(
                    revision="chat-predictor-00002",
                    change_cause="model v2",
                    created=ago(days=4),
                    replicas=1,
                    ready_replicas=1,
                    traffic_percent=80,
                    tag="prev",
                ),
            ],
            traffic=TrafficSplit(
                observed=True,
                revisions=[
                    RevisionTraffic(
                        revision="chat-predictor-00003", percent=20, tag="latest", latest=True
                    ),
                    RevisionTraffic(
                        revision="chat-predictor-00002", percent=80, tag="prev", latest=False
                    ),
                ],
            ),
            pods=[
                PodSummary(
                    name="chat-predictor-00003-deployment-1",
                    node="l4-node-01",
                    phase="Running",
                    ready=True,
                    gpus=1,
                    created=ago(minutes=40),
                ),
            ],
        ),
        WorkloadDetail(
            namespace="team-a",
            name="finetune-7",
            kind=WorkloadKind.JOB,
            tenant="team-a",
            status=WorkloadStatus.PENDING,
            message="waiting for quota in ClusterQueue cq-team-a",
            replicas=1,
            gpus_requested=4,
            gpu_model=H100,
            queue="team-a-queue",
            created=ago(minutes=15),
        ),
        WorkloadDetail(
            namespace="team-b",
            name=HOSTILE_POD,
            kind=WorkloadKind.DEPLOYMENT,
            tenant="team-b",
            status=WorkloadStatus.RUNNING,
            message="\x1b[31mred?",
            replicas=1,
            ready_replicas=1,
            gpus=3,
            gpus_requested=3,
            gpu_model=A100,
        ),
    ]


def nodes() -> list[Node]:
    return [
        Node(
            name="h100-node-01",
            gpu_model=H100,
            gpus_capacity=8,
            gpus_allocatable=8,
            gpus_allocated=8,
            utilization=88.0,
            memory_used_mib=480_000.0,
            memory_total_mib=652_472.0,
            power_watts=4_950.0,
            max_temperature_c=91.0,
            pods=2,
        ),
        Node(
            name="h100-node-02",
            gpu_model=H100,
            gpus_capacity=8,
            gpus_allocatable=8,
            gpus_allocated=6,
            utilization=54.0,
            memory_used_mib=210_000.0,
            memory_total_mib=652_472.0,
            power_watts=3_100.0,
            max_temperature_c=70.0,
            xid_gpus=1,
            pods=2,
        ),
        Node(
            name="a100-node-01",
            gpu_model=A100,
            gpus_capacity=4,
            gpus_allocatable=4,
            gpus_allocated=4,
            ready=False,
            cordoned=True,
            pods=2,
        ),
        Node(
            name="l4-node-01",
            gpu_model=L4,
            gpus_capacity=2,
            gpus_allocatable=2,
            gpus_allocated=1,
            utilization=20.0,
            memory_used_mib=9_000.0,
            memory_total_mib=45_000.0,
            power_watts=80.0,
            max_temperature_c=55.0,
            pods=1,
        ),
    ]


def _history(base: float, gap: bool = False) -> list[float | None]:
    values: list[float | None] = [
        max(0.0, min(100.0, base + ((k * 37) % 21) - 10)) for k in range(40)
    ]
    if gap:
        values[30:33] = [None, None, None]
    return values


def gpus() -> list[Gpu]:
    out: list[Gpu] = []
    for index in range(8):
        hot = index == 3
        out.append(
            Gpu(
                node="h100-node-01",
                index=index,
                uuid=f"GPU-h1-{index:04d}",
                model=H100,
                utilization=95.0 - index,
                engine_active=0.9,
                memory_used_mib=60_000.0,
                memory_total_mib=81_559.0,
                temperature_c=91.0 if hot else 70.0 + index,
                power_watts=650.0 - index,
                last_xid=0,
                pod="llama-70b-7c9f-abcde" if index < 4 else "train-big-0",
                namespace="team-a",
                tenant="team-a",
                workload="Deployment/llama-70b" if index < 4 else "Job/train-big",
                allocated=True,
                sampled_at=NOW_DT,
                history=_history(90.0 - index),
            )
        )
    for index in range(8):
        allocated = index < 6
        out.append(
            Gpu(
                node="h100-node-02",
                index=index,
                uuid=f"GPU-h2-{index:04d}",
                model=H100,
                utilization=None if index == 5 else (2.0 if index == 4 else 60.0),
                memory_used_mib=None if index == 5 else 20_000.0,
                memory_total_mib=81_559.0,
                temperature_c=None if index == 5 else 60.0,
                power_watts=None if index == 5 else 300.0,
                last_xid=79 if index == 2 else (None if index == 5 else 0),
                pod="llama-70b-7c9f-fghij" if allocated else None,
                namespace="team-a" if allocated else None,
                tenant="team-a" if allocated else None,
                workload="Deployment/llama-70b" if allocated else None,
                allocated=allocated,
                idle=index == 4,
                sampled_at=NOW_DT,
                history=_history(2.0 if index == 4 else 60.0, gap=index == 1),
            )
        )
    out.append(
        Gpu(
            node="l4-node-01",
            index=0,
            uuid="GPU-l4-0000",
            model=L4,
            utilization=20.0,
            memory_used_mib=9_000.0,
            memory_total_mib=22_500.0,
            temperature_c=55.0,
            power_watts=40.0,
            last_xid=0,
            pod="chat-predictor-00003-deployment-1",
            namespace="serving",
            tenant="serving",
            workload="InferenceService/chat",
            allocated=True,
            history=_history(20.0),
        )
    )
    return out


def overview(all_gpus: list[Gpu]) -> Overview:
    by_temp = sorted(
        (g for g in all_gpus if g.temperature_c is not None),
        key=lambda g: -(g.temperature_c or 0),
    )
    idle = sorted(
        (g for g in all_gpus if g.allocated and g.utilization is not None),
        key=lambda g: g.utilization or 0,
    )
    return Overview(
        totals=FleetTotals(
            nodes=4,
            nodes_ready=3,
            gpus=22,
            gpus_allocated=19,
            gpus_in_use=17,
            gpus_idle=2,
            tenants=4,
            workloads=4,
            pods=7,
            utilization=63.2,
            power_watts=8_130.0,
        ),
        gpu_models=[
            GpuModelSummary(model=H100, nodes=2, total=16, allocated=14, in_use=13, idle=1, free=2),
            GpuModelSummary(model=A100, nodes=1, total=4, allocated=4, in_use=3, idle=1, free=0),
            GpuModelSummary(model=L4, nodes=1, total=2, allocated=1, in_use=1, idle=0, free=1),
        ],
        tenants=tenants(),
        workloads_by_status={"Running": 1, "Progressing": 1, "Degraded": 1, "Pending": 1},
        hottest=by_temp[:3],
        idlest=idle[:3],
        problems=[
            Problem(
                severity=ProblemSeverity.CRITICAL,
                kind="degraded",
                subject="team-a/llama-70b",
                message="1 of 3 replicas not ready",
            ),
            Problem(
                severity=ProblemSeverity.CRITICAL,
                kind="xid",
                subject="h100-node-02/gpu2",
                message="XID 79: GPU has fallen off the bus",
            ),
            Problem(
                severity=ProblemSeverity.WARNING,
                kind="hot",
                subject="h100-node-01/gpu3",
                message="91°C",
            ),
            Problem(
                severity=ProblemSeverity.WARNING,
                kind="pending",
                subject="team-a/finetune-7",
                message="waiting for quota",
            ),
            Problem(
                severity=ProblemSeverity.CRITICAL,
                kind="node-not-ready",
                subject="a100-node-01",
                message="kubelet stopped posting node status",
            ),
        ],
        freshness=DataFreshness(synced=True, cluster_age_seconds=1.0, telemetry_age_seconds=4.0),
    )


class FleetFake(FakeBackend):
    """``FakeBackend`` serving the fixed fleet above (and its failure modes)."""

    def __init__(self) -> None:
        super().__init__(tenants=0, workloads=0, nodes=0)
        self.tenants = tenants()
        self.workloads = workloads()  # WorkloadDetail rows: the detail route returns them whole
        self.nodes = nodes()
        self.gpus = gpus()

    def overview(self) -> Overview:
        return overview(self.gpus)


class HarnessApp(App[None]):
    """A minimal app with the shell's interface (client, clock, reports, drill-down actions).

    It records drill-downs instead of navigating unless ``navigate`` is set, so tests can assert
    what was asked for; screens are pushed like the shell does.
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    def __init__(
        self,
        screen_factory: Callable[[], Screen[Any]],
        fake: FakeBackend | None = None,
        *,
        navigate: bool = False,
    ) -> None:
        super().__init__()
        self.fake = fake or FleetFake()
        self.client = BackendClient("http://fake", transport=self.fake.transport(), timeout=1.0)
        self.clock: Callable[[], float] = lambda: NOW
        self.settings = SimpleNamespace(refresh_interval=3600.0)
        self.screen_factory = screen_factory
        self.navigate = navigate
        self.errors: list[BackendError] = []
        self.oks = 0
        self.calls: list[tuple[str, ...]] = []
        register_themes(self)

    def on_mount(self) -> None:
        self.push_screen(self.screen_factory())

    def action_back(self) -> None:
        if len(self.screen_stack) > 2:
            self.pop_screen()

    def report_backend_ok(self) -> None:
        self.oks += 1

    def report_backend_error(self, error: BackendError) -> None:
        self.errors.append(error)

    def action_show_tenant(self, name: str) -> None:
        self.calls.append(("tenant", name))
        if self.navigate:
            self.push_screen(TenantDetailScreen(name))

    def action_show_workload(self, namespace: str, kind: str, name: str) -> None:
        self.calls.append(("workload", namespace, kind, name))
        if self.navigate:
            self.push_screen(WorkloadDetailScreen(namespace, kind, name))

    def action_show_node(self, name: str) -> None:
        self.calls.append(("node", name))
        if self.navigate:
            self.push_screen(NodeDetailScreen(name))

    async def on_unmount(self) -> None:
        await self.client.aclose()
