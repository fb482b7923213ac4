"""Alert rules under a controlled clock: pending, firing and resolved with Prometheus's ``for:``
semantics, values exactly at the threshold and times exactly at the duration, the rules' settings,
and the history of transitions in SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from backend.alerts.engine import AlertEngine
from backend.alerts.history import AlertHistoryStore
from backend.alerts.monitor import AlertMonitor
from backend.alerts.rules import AlertInputs, configured_rules
from backend.db.engine import create_db_engine
from backend.db.migrate import upgrade
from backend.fleet.model import FleetModel, build_fleet_model
from backend.schemas import (
    AlertState,
    AlertSubjectKind,
    EndpointHealth,
    Node,
    QuotaMode,
    RolloutProgress,
    Tenant,
    TenantQuota,
    Workload,
    WorkloadKind,
    WorkloadStatus,
)
from backend.settings import DEFAULT_ALERT_RULES, AlertRule, Settings
from backend.telemetry.base import TelemetrySnapshot
from tests.pg_fixture import pg_server, postgres_url  # noqa: F401
from tests.support.fleets import SAMPLED_AT, generated_fleet

T0 = SAMPLED_AT
HOT = 85.0


def gpu_fleet(**sample: Any) -> AlertInputs:
    """One node of two GPUs, the second held by team-a's pod; ``sample`` sets the second's
    readings (the first reads 50 %, 40 °C, no XID)."""
    fleet = generated_fleet(tenants=1, workloads=1, nodes=1, gpus_per_node=2)
    first, second = sorted(fleet.samples)
    quiet: dict[str, Any] = {"utilization": 50.0, "temperature_c": 40.0, "last_xid": 0}
    fleet.samples[first] = replace(fleet.samples[first], **quiet)
    fleet.samples[second] = replace(fleet.samples[second], **{**quiet, **sample})
    telemetry = fleet.telemetry()
    return AlertInputs(build_fleet_model(fleet.cluster, telemetry, now=T0), telemetry)


def engine(**rules: AlertRule) -> AlertEngine:
    return AlertEngine(configured_rules(rules, HOT))


def states(alerts: list[Any]) -> list[tuple[str, str, str]]:
    return [(a.rule, a.state.value, a.subject.name) for a in alerts]


def test_saturated_is_pending_then_firing_at_exactly_for_then_resolved() -> None:
    alerts = engine(gpu_saturated=AlertRule(threshold=95.0, for_seconds=600))
    # Exactly at the threshold: "> 95" does not hold.
    assert alerts.evaluate(gpu_fleet(utilization=95.0), T0) == []
    assert alerts.current() == []
    busy = gpu_fleet(utilization=95.5)
    [pending] = alerts.evaluate(busy, T0 + 10)
    assert states([pending]) == [("gpu_saturated", "pending", "gpu-node-0000/gpu1")]
    assert pending.value == 95.5 and pending.threshold == 95.0
    assert pending.since == pending.started == datetime.fromtimestamp(T0 + 10, UTC)
    assert pending.subject.kind is AlertSubjectKind.GPU and pending.subject.tenant == "team-a"
    assert pending.labels["alertname"] == "gpu_saturated"
    assert pending.labels["node"] == "gpu-node-0000"
    assert "GPU utilization 95.5% > 95% for 10 min" in pending.message
    # One second short of the duration: still pending, no transition.
    assert alerts.evaluate(busy, T0 + 609) == []
    assert [a.state for a in alerts.current()] == [AlertState.PENDING]
    # Exactly at the duration: firing.
    [firing] = alerts.evaluate(gpu_fleet(utilization=99.0), T0 + 610)
    assert firing.state is AlertState.FIRING and firing.value == 99.0
    assert firing.since == datetime.fromtimestamp(T0 + 610, UTC)
    assert firing.started == pending.started
    assert alerts.evaluate(busy, T0 + 700) == []  # still firing: no new transition
    # Back to exactly the threshold: resolved, with the value that cleared it.
    [resolved] = alerts.evaluate(gpu_fleet(utilization=95.0), T0 + 720)
    assert resolved.state is AlertState.RESOLVED and resolved.value == 95.0
    assert resolved.message.startswith("cleared after 11.8 min")
    assert [(a.state, a.since) for a in alerts.current()] == [(AlertState.RESOLVED, resolved.since)]
    # Resolved alerts stay listed for an hour.
    alerts.evaluate(gpu_fleet(utilization=10.0), T0 + 720 + 3600)
    assert len(alerts.current()) == 1
    alerts.evaluate(gpu_fleet(utilization=10.0), T0 + 720 + 3601)
    assert alerts.current() == []


def test_a_pending_alert_that_clears_resolves_without_firing() -> None:
    alerts = engine(gpu_saturated=AlertRule(threshold=95.0, for_seconds=600))
    alerts.evaluate(gpu_fleet(utilization=100.0), T0)
    [resolved] = alerts.evaluate(gpu_fleet(utilization=20.0), T0 + 599)
    assert resolved.state is AlertState.RESOLVED
    assert "pending, never fired" in resolved.message
    assert alerts.current() == []  # never fired: not among the recently resolved
    # It starts over: a new pending period.
    [again] = alerts.evaluate(gpu_fleet(utilization=100.0), T0 + 650)
    assert again.state is AlertState.PENDING
    assert again.started == datetime.fromtimestamp(T0 + 650, UTC)


def test_idle_counts_only_allocated_gpus_and_is_strictly_below() -> None:
    alerts = engine(gpu_idle=AlertRule(threshold=5.0, for_seconds=1800))
    assert alerts.evaluate(gpu_fleet(utilization=5.0), T0) == []
    [pending] = alerts.evaluate(gpu_fleet(utilization=4.9), T0)
    assert pending.subject.name == "gpu-node-0000/gpu1"  # gpu0 is free: never "idle"
    assert alerts.evaluate(gpu_fleet(utilization=0.0), T0 + 1799) == []
    [firing] = alerts.evaluate(gpu_fleet(utilization=0.0), T0 + 1800)
    assert firing.state is AlertState.FIRING


def test_a_subject_no_longer_observed_resolves() -> None:
    alerts = engine(gpu_idle=AlertRule(threshold=5.0, for_seconds=0))
    [firing] = alerts.evaluate(gpu_fleet(utilization=1.0), T0)
    assert firing.state is AlertState.FIRING  # for 0: at once
    [resolved] = alerts.evaluate(gpu_fleet(utilization=None), T0 + 15)
    assert resolved.value is None and "no longer observed" in resolved.message


def test_xid_fires_at_once_and_hot_uses_the_hot_temperature() -> None:
    alerts = AlertEngine(configured_rules(DEFAULT_ALERT_RULES, HOT))
    found = alerts.evaluate(gpu_fleet(last_xid=79, temperature_c=HOT), T0)
    assert states(found) == [
        ("gpu_xid", "firing", "gpu-node-0000/gpu1"),
        ("gpu_hot", "pending", "gpu-node-0000/gpu1"),
    ]
    assert found[0].message.startswith("XID 79")
    assert found[0].severity.value == "critical"
    assert "GPU temperature 85 °C >= 85 °C for 5 min" in found[1].message


def test_disabled_rules_are_not_evaluated() -> None:
    rules = {**DEFAULT_ALERT_RULES, "gpu_xid": AlertRule(threshold=0, for_seconds=0, enabled=False)}
    assert AlertEngine(configured_rules(rules, HOT)).evaluate(gpu_fleet(last_xid=79), T0) == []


def stub_inputs(
    *,
    tenants: Sequence[Tenant] = (),
    workloads: Sequence[Workload] = (),
    nodes: Sequence[Node] = (),
    endpoints: Sequence[EndpointHealth] = (),
    completed_at: float | None = T0,
) -> AlertInputs:
    """Inputs with the model's lists given directly (the rules read only those)."""
    model = SimpleNamespace(
        gpus=SimpleNamespace(items=[]),
        tenants=SimpleNamespace(items=list(tenants)),
        workloads=SimpleNamespace(items=list(workloads)),
        nodes=SimpleNamespace(items=list(nodes)),
        endpoints=SimpleNamespace(items=list(endpoints)),
    )
    telemetry = TelemetrySnapshot(completed_at=completed_at, failures={"http://x:9400": "refused"})
    return AlertInputs(cast(FleetModel, model), telemetry)


def tenant(used: int, pending: int, nominal: int = 8) -> Tenant:
    quota = TenantQuota(gpu_model="H100", nominal=nominal, used=used, pending=pending)
    return Tenant(name="team-a", namespaces=["team-a"], quota_mode=QuotaMode.KUEUE, quotas=[quota])


def test_tenant_starving_means_pending_work_while_under_quota() -> None:
    alerts = engine(tenant_starving=AlertRule(threshold=0, for_seconds=600))
    assert alerts.evaluate(stub_inputs(tenants=[tenant(used=8, pending=4)]), T0) == []  # at quota
    assert alerts.evaluate(stub_inputs(tenants=[tenant(used=2, pending=0)]), T0) == []
    [pending] = alerts.evaluate(stub_inputs(tenants=[tenant(used=2, pending=4)]), T0)
    assert pending.subject.kind is AlertSubjectKind.TENANT and pending.subject.tenant == "team-a"
    assert pending.message.startswith("4 GPUs pending while under quota")
    assert "H100: 2 of 8 used" in pending.message
    [firing] = alerts.evaluate(stub_inputs(tenants=[tenant(used=3, pending=1)]), T0 + 600)
    assert firing.state is AlertState.FIRING and firing.value == 1.0


def test_rollout_stuck_names_the_workload() -> None:
    progress = RolloutProgress(desired=4, updated=2, available=1, done=False, stuck=True)
    workload = Workload(
        namespace="team-a",
        name="llm",
        kind=WorkloadKind.DEPLOYMENT,
        tenant="team-a",
        status=WorkloadStatus.DEGRADED,
        rollout=progress,
    )
    alerts = engine(rollout_stuck=AlertRule(threshold=0, for_seconds=0))
    [firing] = alerts.evaluate(stub_inputs(workloads=[workload]), T0)
    subject = firing.subject
    assert (subject.namespace, subject.workload_kind, subject.workload) == (
        "team-a",
        "Deployment",
        "llm",
    )
    assert "2/4 updated, 1 available" in firing.message
    unstuck = workload.model_copy(update={"rollout": progress.model_copy(update={"stuck": False})})
    [resolved] = alerts.evaluate(stub_inputs(workloads=[unstuck]), T0 + 30)
    assert resolved.state is AlertState.RESOLVED and resolved.value == 0.0


def endpoint(**stats: Any) -> EndpointHealth:
    return EndpointHealth(
        namespace="team-g",
        name="llama-8b-prod",
        kind=WorkloadKind.DEPLOYMENT,
        tenant="team-g",
        request_rate=4.0,
        **stats,
    )


def test_an_endpoint_error_rate_fires_only_above_its_threshold() -> None:
    alerts = engine(endpoint_errors=AlertRule(threshold=1.0, for_seconds=300))
    assert alerts.evaluate(stub_inputs(endpoints=[endpoint(error_rate=0.01)]), T0) == []  # 1 %
    assert alerts.evaluate(stub_inputs(endpoints=[endpoint(error_rate=None)]), T0) == []
    [pending] = alerts.evaluate(stub_inputs(endpoints=[endpoint(error_rate=0.08)]), T0)
    subject = pending.subject
    assert (subject.kind, subject.workload_kind, subject.workload, subject.tenant) == (
        AlertSubjectKind.WORKLOAD,
        "Deployment",
        "llama-8b-prod",
        "team-g",
    )
    assert pending.message.startswith("error rate 8% > 1% for 5 min (4 requests/s)")
    [firing] = alerts.evaluate(stub_inputs(endpoints=[endpoint(error_rate=0.08)]), T0 + 300)
    assert firing.state is AlertState.FIRING
    [resolved] = alerts.evaluate(stub_inputs(endpoints=[endpoint(error_rate=0.002)]), T0 + 330)
    assert resolved.state is AlertState.RESOLVED


def test_p99_over_the_workloads_objective() -> None:
    alerts = engine(endpoint_slow=AlertRule(threshold=1.0, for_seconds=0))
    at_slo = endpoint(p99_seconds=2.0, slo_p99_seconds=2.0)
    assert alerts.evaluate(stub_inputs(endpoints=[at_slo]), T0) == []  # exactly at it: met
    no_slo = endpoint(p99_seconds=9.0)
    assert alerts.evaluate(stub_inputs(endpoints=[no_slo]), T0) == []  # nothing to judge by
    [firing] = alerts.evaluate(
        stub_inputs(endpoints=[endpoint(p99_seconds=3.0, slo_p99_seconds=2.0)]), T0
    )
    assert firing.state is AlertState.FIRING and firing.value == 1.5
    assert firing.message == ("p99 latency 1.5× its objective (p99 3.00 s, objective 2 s)")


def test_telemetry_missing_for_a_gpu_node_without_samples() -> None:
    nodes = [Node(name="gpu-1", gpus_capacity=8), Node(name="cpu-1", gpus_capacity=0)]
    alerts = engine(telemetry_missing=AlertRule(threshold=1, for_seconds=300))
    # Before telemetry's first round nothing can be judged.
    assert alerts.evaluate(stub_inputs(nodes=nodes, completed_at=None), T0) == []
    [pending] = alerts.evaluate(stub_inputs(nodes=nodes), T0)
    assert pending.subject.kind is AlertSubjectKind.NODE and pending.subject.node == "gpu-1"
    assert "1 telemetry source(s) failing" in pending.message
    [firing] = alerts.evaluate(stub_inputs(nodes=nodes), T0 + 300)
    assert firing.state is AlertState.FIRING


def test_rule_settings_override_single_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCONSOLE_ALERT_RULES__GPU_IDLE__FOR_SECONDS", "3600")
    settings = Settings()
    assert settings.alert_rules["gpu_idle"] == AlertRule(threshold=5.0, for_seconds=3600)
    assert settings.alert_rules["gpu_saturated"] == DEFAULT_ALERT_RULES["gpu_saturated"]
    monkeypatch.setenv("OPSCONSOLE_ALERT_RULES", '{"gpu_hot": {"threshold": 90}}')
    monkeypatch.delenv("OPSCONSOLE_ALERT_RULES__GPU_IDLE__FOR_SECONDS")
    assert Settings().alert_rules["gpu_hot"].threshold == 90.0
    with pytest.raises(ValueError, match="unknown alert rule 'gpu_sad'"):
        Settings(alert_rules={"gpu_sad": {"threshold": 1}})


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'alerts.db'}"
    return str(request.getfixturevalue("postgres_url"))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


async def test_history_keeps_a_row_per_transition(database_url: str) -> None:
    upgrade(database_url)
    db = create_db_engine(database_url)
    clock = Clock()
    try:
        monitor = AlertMonitor(
            engine(gpu_saturated=AlertRule(threshold=95.0, for_seconds=600)),
            AlertHistoryStore(db),
            clock=clock,
        )
        busy, calm = gpu_fleet(utilization=97.0), gpu_fleet(utilization=30.0)
        for at, inputs in [(0, busy), (300, busy), (600, busy), (900, calm)]:
            clock.now = T0 + at
            await monitor.evaluate(inputs.model, inputs.telemetry)
        start = datetime.fromtimestamp(T0, UTC)
        rows = await monitor.since(start, None, None, 100)
        assert [(r.state.value, r.since.timestamp() - T0, r.value) for r in rows] == [
            ("resolved", 900, 30.0),
            ("firing", 600, 97.0),
            ("pending", 0, 97.0),
        ]
        assert rows[0].message.startswith("cleared after 15 min")
        assert rows[0].started == start
        firing = await monitor.since(start, AlertState.FIRING, None, 100)
        assert [r.state for r in firing] == [AlertState.FIRING]
        # Scoped: team-a's GPU is seen by team-a, not by team-b.
        assert len(await monitor.since(start, None, frozenset({"team-a"}), 100)) == 3
        assert await monitor.since(start, None, frozenset({"team-b"}), 100) == []
        later = datetime.fromtimestamp(T0 + 601, UTC)
        assert [r.state for r in await monitor.since(later, None, None, 100)] == [
            AlertState.RESOLVED
        ]
        # History older than the retention is dropped at the next write.
        monitor.retention = 100.0
        clock.now = T0 + 1000
        await monitor.evaluate(busy.model, busy.telemetry)
        assert [r.state for r in await monitor.since(start, None, None, 100)] == [
            AlertState.PENDING,
            AlertState.RESOLVED,
        ]
    finally:
        db.dispose()


async def test_the_monitor_evaluates_on_a_new_model_and_every_interval() -> None:
    """A ``for:`` must run out on a fleet that does not change: evaluations come every
    interval, and at once when woken by a new model."""
    inputs = gpu_fleet(utilization=99.0)
    clock = Clock()
    monitor = AlertMonitor(
        engine(gpu_saturated=AlertRule(threshold=95.0, for_seconds=600)),
        None,
        interval=0.05,
        settle=0.05,
        clock=clock,
    )
    latest: list[Any] = [None]
    await monitor.start(lambda: (latest[0], inputs.telemetry))
    try:
        await asyncio.sleep(0.2)
        assert monitor.evaluations == 0  # no model yet: nothing to evaluate
        latest[0] = inputs.model
        await wait(lambda: monitor.evaluations >= 1)
        assert [a.state for a in monitor.view.alerts] == [AlertState.PENDING]
        clock.now = T0 + 600  # time passes, the fleet does not change
        await wait(lambda: monitor.view.alerts[0].state is AlertState.FIRING)
        monitor.interval = 3600.0
        await asyncio.sleep(0.1)  # the loop is now waiting for an hour, or for a wake
        count = monitor.evaluations
        monitor.wake()
        await wait(lambda: monitor.evaluations > count)
    finally:
        await monitor.stop()


async def test_wakes_within_the_settle_time_make_one_evaluation() -> None:
    """A telemetry round enters the model in steps, each waking the monitor: the wakes that
    come within ``settle`` of an evaluation are answered by one evaluation after it."""
    inputs = gpu_fleet(utilization=99.0)
    monitor = AlertMonitor(
        engine(gpu_saturated=AlertRule(threshold=95.0, for_seconds=600)),
        None,
        interval=3600.0,
        settle=0.5,
        clock=Clock(),
    )
    await monitor.start(lambda: (inputs.model, inputs.telemetry))
    try:
        monitor.wake()
        await wait(lambda: monitor.evaluations == 1)
        for _ in range(5):
            monitor.wake()
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        assert monitor.evaluations == 1  # still settling
        await wait(lambda: monitor.evaluations == 2)
        await asyncio.sleep(0.7)
        assert monitor.evaluations == 2  # the five wakes made one evaluation
    finally:
        await monitor.stop()


async def wait(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)
