"""``GET /api/v1/alerts``, the firing count of ``/info`` and the firing alerts among the
overview's problems, through the real app, for an admin and for a tenant-scoped viewer.

The generated fleet (seed-free, regular): gpu-node-0000/gpu0 is free and has XID 79 (firing at
once); gpu1, gpu2 and gpu4 are held by team-b, team-c and team-e at 1, 2 and 4 % (idle: pending
for 30 min)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from backend.fleet.model import build_fleet_model
from backend.schemas import API_PREFIX, AlertList, Overview
from tests.conftest import LiveCluster
from tests.support.alerts import Alerting
from tests.support.backend import FleetBackend
from tests.support.fleets import SAMPLED_AT, generated_fleet
from tests.support.tokens import bearer

IDLE = ["gpu-node-0000/gpu1", "gpu-node-0000/gpu2", "gpu-node-0000/gpu4"]
XID = "gpu-node-0000/gpu0"


@pytest.fixture
async def alerting(tmp_path: Path) -> AsyncIterator[Alerting]:
    fleet = generated_fleet()
    fake = FleetBackend(fleet)
    alerting = Alerting(fake, fleet, tmp_path)
    await alerting.evaluate(0)
    yield alerting
    alerting.close()


def client(fake: FleetBackend, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=fake.transport(), base_url="http://fake-backend", headers=bearer(token)
    )


async def alerts(http: httpx.AsyncClient, **params: str) -> AlertList:
    answer = await http.get(f"{API_PREFIX}/alerts", params=params)
    assert answer.status_code == 200, answer.text
    return AlertList.model_validate_json(answer.content)


def subjects(found: AlertList) -> list[tuple[str, str, str]]:
    return [(a.state.value, a.rule, a.subject.name) for a in found.items]


async def test_current_alerts_by_state(alerting: Alerting) -> None:
    async with client(alerting.fake, alerting.fake.token) as http:
        firing = await alerts(http)
        assert subjects(firing) == [("firing", "gpu_xid", XID)]
        assert (firing.firing, firing.pending) == (1, 3)
        assert firing.evaluated_at is not None and firing.evaluated_at.timestamp() == SAMPLED_AT
        pending = await alerts(http, state="pending")
        assert sorted(s for _, _, s in subjects(pending)) == IDLE
        every = await alerts(http, state="all")
        assert [s for s, _, _ in subjects(every)] == ["firing", "pending", "pending", "pending"]
        assert (await http.get(f"{API_PREFIX}/alerts", params={"state": "loud"})).status_code == 422
        info = (await http.get(f"{API_PREFIX}/info")).json()
        assert info["alerts_firing"] == 1
        metrics = (await http.get("/metrics")).text
        assert 'opsconsole_alerts{rule="gpu_xid",state="firing"} 1.0' in metrics
        assert 'opsconsole_alerts{rule="gpu_idle",state="pending"} 3.0' in metrics
        assert 'opsconsole_work_cpu_seconds_total{work="alerts"}' in metrics


async def test_a_tenant_scope_sees_its_alerts_and_those_of_no_tenant(alerting: Alerting) -> None:
    token = alerting.fake.issue("bob", "viewer", frozenset({"team-b"}))
    async with client(alerting.fake, token) as http:
        every = await alerts(http, state="all")
        assert subjects(every) == [
            ("firing", "gpu_xid", XID),
            ("pending", "gpu_idle", "gpu-node-0000/gpu1"),
        ]
        assert (every.firing, every.pending) == (1, 1)
        history = await alerts(http, since="2026-11-29T00:00:00Z")
        assert sorted(s for _, _, s in subjects(history)) == [XID, "gpu-node-0000/gpu1"]


async def test_history_since_a_time(alerting: Alerting) -> None:
    await alerting.evaluate(1800)  # the idle GPUs have been idle for 30 min: firing
    async with client(alerting.fake, alerting.fake.token) as http:
        history = await alerts(http, since="2026-11-29T12:00:00Z")
        assert [s for s, _, _ in subjects(history)][:3] == ["firing"] * 3
        assert len(history.items) == 7  # 1 XID firing, 3 idle pending then firing
        later = await alerts(http, since="2026-11-29T12:00:01", state="firing")
        assert sorted(s for _, _, s in subjects(later)) == IDLE  # a time without zone is UTC
        current = await alerts(http)
        assert current.firing == 4


async def test_firing_alerts_join_the_overview_problems_once(alerting: Alerting) -> None:
    fake = alerting.fake
    async with client(fake, fake.token) as http:
        before = Overview.model_validate((await http.get(f"{API_PREFIX}/overview")).json())
        # The XID alert says what the XID problem already says: listed once.
        assert [p.subject for p in before.problems if p.kind == "xid"] == [XID]
        assert not [p for p in before.problems if p.kind == "gpu-idle"]
        await alerting.evaluate(1800)
        after = Overview.model_validate((await http.get(f"{API_PREFIX}/overview")).json())
        idle = [p for p in after.problems if p.kind == "gpu-idle"]
        assert sorted(p.subject for p in idle) == IDLE
        assert "allocated GPU utilization 1% < 5% for 30 min" in idle[0].message
    token = fake.issue("bob", "viewer", frozenset({"team-b"}))
    async with client(fake, token) as http:
        scoped = Overview.model_validate((await http.get(f"{API_PREFIX}/overview")).json())
        assert [p.subject for p in scoped.problems if p.kind == "gpu-idle"] == [IDLE[0]]


async def test_each_evaluation_answers_its_own_alerts(alerting: Alerting) -> None:
    """The answers rendered when an evaluation is made are never those of an earlier one: a
    new sample (the XID cleared) and time running out (the idle GPUs' 30 min) both show."""
    fleet, source = alerting.fleet, alerting.fake.source
    async with client(alerting.fake, alerting.fake.token) as http:
        assert subjects(await alerts(http)) == [("firing", "gpu_xid", XID)]
        assert len((await alerts(http, state="all")).items) == 4
        xid_gpu = next(uuid for uuid, s in fleet.samples.items() if s.last_xid)
        fleet.samples[xid_gpu] = replace(fleet.samples[xid_gpu], last_xid=0)
        source.model = build_fleet_model(fleet.cluster, fleet.telemetry(), now=SAMPLED_AT)
        await alerting.evaluate(1800)
        firing = await alerts(http)
        assert sorted(s for _, _, s in subjects(firing)) == IDLE
        assert (firing.firing, firing.pending) == (3, 0)
        assert firing.evaluated_at is not None
        assert firing.evaluated_at.timestamp() == SAMPLED_AT + 1800
        every = await alerts(http, state="all")
        assert [s for s, _, _ in subjects(every)] == ["firing"] * 3 + ["resolved"]


async def test_no_alerts_yet_answers_503() -> None:
    fake = FleetBackend()
    async with client(fake, fake.token) as http:
        answer = await http.get(f"{API_PREFIX}/alerts")
        assert answer.status_code == 503
        assert (await http.get(f"{API_PREFIX}/info")).json()["alerts_firing"] is None


def test_the_backend_evaluates_the_demo_fleet_and_keeps_the_history(
    live_cluster: LiveCluster,
) -> None:
    """On the demo sandbox: node-12/gpu7's XID fires at once (``for: 0``), the saturated GPUs
    of node-09 are pending; the firing alert is in the history and in ``/info``."""
    with httpx.Client(
        base_url=live_cluster.backend_url, timeout=10.0, headers=live_cluster.headers
    ) as http:
        # Alerts are evaluated at most every few seconds: the one after the settled model.
        deadline = time.monotonic() + 30.0
        while True:
            firing = AlertList.model_validate(http.get(f"{API_PREFIX}/alerts").json())
            if ("firing", "gpu_xid", "node-12/gpu7") in subjects(firing):
                break
            assert time.monotonic() < deadline, subjects(firing)
            time.sleep(0.2)
        pending = AlertList.model_validate(
            http.get(f"{API_PREFIX}/alerts", params={"state": "pending"}).json()
        )
        assert ("pending", "gpu_saturated", "node-09/gpu0") in subjects(pending)
        history = AlertList.model_validate(
            http.get(
                f"{API_PREFIX}/alerts", params={"since": "2026-01-01T00:00:00Z", "limit": 1000}
            ).json()
        )
        assert ("firing", "gpu_xid", "node-12/gpu7") in subjects(history)
        assert http.get(f"{API_PREFIX}/info").json()["alerts_firing"] == firing.firing
