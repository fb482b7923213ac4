"""Quota changes through the change path on a demo sandbox, in both quota systems: refusals that
change nothing, a failed later write put back, a crash between writes finished on restart, two
operators on the same quota, and an audit record for every outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from backend.audit.log import AuditLog
from backend.changes.head import ConfigMapHead
from backend.changes.kube import ClusterClient
from backend.changes.path import ChangePath
from backend.changes.quota import QuotaContext, quota_kinds
from backend.changes.request import Actor, ChangeInvalid, StalePlan
from backend.schemas import AuditFilter, AuditOutcome, AuditRecord
from tests.support.sandbox import SandboxThread
from tests.test_change_path import (
    Crash,
    CrashBeforeWriting,
    FailingSecondWrite,
    crash_after,
    make_store,
)

ALICE = Actor("alice", "admin", source_address="127.0.0.1")
BOB = Actor("bob", "admin", source_address="127.0.0.2")
# Seed 7's demo fleet: team-a and team-d hold a100 quota in Kueue, team-g has a ResourceQuota.
KUEUE_TRANSFER = {"from": "team-a", "to": "team-d", "model": "a100", "gpus": 2}
MIXED_TRANSFER = {"from": "team-a", "to": "team-g", "model": "NVIDIA-A100-SXM4-80GB", "gpus": 2}


class Quotas:
    """Reads the quota numbers straight from the sandbox."""

    def __init__(self, running: SandboxThread) -> None:
        self.running = running
        self.api = running.api_client()
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.core = kubernetes.client.CoreV1Api(self.api)

    def nominal(self, queue: str, flavor: str) -> int:
        cq: Any = self.custom.get_cluster_custom_object(
            "kueue.x-k8s.io", "v1beta2", "clusterqueues", queue
        )
        for group in cq["spec"]["resourceGroups"]:
            for f in group["flavors"]:
                if f["name"] == flavor:
                    return int(f["resources"][0]["nominalQuota"])
        raise AssertionError(f"no flavor {flavor} in {queue}")

    def hard(self, namespace: str) -> str:
        rq: Any = self.core.read_namespaced_resource_quota("gpu-quota", namespace)
        return str(rq.spec.hard["requests.nvidia.com/gpu"])

    def snapshot(self) -> tuple[int, int, str]:
        return self.nominal("team-a", "a100"), self.nominal("team-d", "a100"), self.hard("team-g")


@pytest.fixture(scope="module")
def quotas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quotas]:
    path = tmp_path_factory.mktemp("quota-path") / "kubeconfig"
    running = SandboxThread(path, fleet="demo", seed=7, settle_seconds=0.0)
    try:
        running.settle()
        yield Quotas(running)
    finally:
        running.close()


@pytest.fixture
async def path(quotas: Quotas, tmp_path: Path) -> AsyncIterator[ChangePath]:
    client = ClusterClient(quotas.api)
    head = ConfigMapHead(client, "default", name=f"head-{tmp_path.name}"[:63].lower())
    audit = AuditLog(make_store(tmp_path), head=head)
    await audit.start()
    try:
        yield ChangePath(quota_kinds(QuotaContext()), client, audit)
    finally:
        await audit.stop()


def records(path: ChangePath) -> list[AuditRecord]:
    return list(path.audit.store.export(AuditFilter()))


@pytest.mark.parametrize(
    ("action", "parameters", "words"),
    [
        ("quota.set", {"tenant": "nobody", "gpus": 4}, 'unknown tenant "nobody"'),
        ("quota.set", {"tenant": "team-a", "model": "tpu-v5", "gpus": 4}, 'unknown GPU model "tpu'),
        ("quota.set", {"tenant": "team-e", "gpus": 4}, "name the model"),
        ("quota.set", {"tenant": "team-g", "namespace": "team-a", "gpus": 4}, "unknown namespace"),
        ("quota.set", {"tenant": "team-a", "gpus": -1}, "cannot be negative"),
        ("quota.set", {"tenant": "team-a", "gpus": 2.5}, "whole number"),
        ("quota.set", {"tenant": "team-g", "gpus": "500m"}, "whole number"),
        ("quota.set", {"tenant": "team-a", "gpus": 10**9}, "more than any cluster has"),
        ("quota.set", {"tenant": "team-a", "gpus": 40}, "oversubscription"),
        ("quota.transfer", {**KUEUE_TRANSFER, "gpus": 0}, "at least 1 GPU"),
        ("quota.transfer", {**KUEUE_TRANSFER, "to": "team-a"}, "to itself"),
        ("quota.transfer", {**KUEUE_TRANSFER, "gpus": 11}, "cannot move 11"),
        (
            "quota.transfer",
            {**MIXED_TRANSFER, "from": "team-g", "to": "team-a", "gpus": 21},
            "cannot move 21",
        ),
        ("quota.transfer", {"from": "team-a", "to": "team-b", "gpus": 1}, "no quota for GPU model"),
        ("quota.changeset", {"items": []}, "items is required"),
    ],
)
async def test_refusals_change_nothing_and_are_recorded(
    quotas: Quotas, path: ChangePath, action: str, parameters: dict[str, Any], words: str
) -> None:
    before = quotas.snapshot()
    with pytest.raises(ChangeInvalid, match=words):
        await path.plan(action, parameters, ALICE)
    assert quotas.snapshot() == before
    [record] = records(path)
    assert (record.action, record.outcome, record.actor) == (action, "invalid", "alice")
    assert words.split('"')[0] in (record.error or "")


@pytest.mark.parametrize("parameters", [KUEUE_TRANSFER, MIXED_TRANSFER])
async def test_a_failed_later_write_is_put_back(
    quotas: Quotas, path: ChangePath, parameters: dict[str, Any]
) -> None:
    before = quotas.snapshot()
    plan = await path.plan("quota.transfer", parameters, ALICE)
    assert len(plan.objects) == 2 and plan.tenants == sorted([parameters["from"], parameters["to"]])
    path.cluster = FailingSecondWrite(path.cluster)
    result = await path.apply("quota.transfer", parameters, plan.fingerprint, "rebalance", ALICE)
    assert result.outcome == AuditOutcome.REVERTED, result.error
    assert "put back" in (result.error or "")
    assert quotas.snapshot() == before
    intent, outcome = records(path)
    assert (intent.stage, outcome.outcome) == ("intent", "reverted")
    assert outcome.tenants == plan.tenants


@pytest.mark.parametrize(
    ("landed", "outcome", "moved"),
    [
        (1, AuditOutcome.REVERTED, False),
        (2, AuditOutcome.SUCCEEDED, True),
        (0, AuditOutcome.FAILED, False),
    ],
)
async def test_a_crash_between_writes_is_finished_on_restart(
    quotas: Quotas, path: ChangePath, landed: int, outcome: AuditOutcome, moved: bool
) -> None:
    before = quotas.snapshot()
    plan = await path.plan("quota.transfer", MIXED_TRANSFER, ALICE)
    healthy = path.cluster
    if landed:
        path.cache_update = crash_after(landed)
    else:
        path.cluster = CrashBeforeWriting(healthy.api_client)
    with pytest.raises(Crash):
        await path.apply("quota.transfer", MIXED_TRANSFER, plan.fingerprint, "r", ALICE)
    path.cluster, path.cache_update = healthy, None  # the restarted backend
    [result] = await path.recover()
    assert result.outcome == outcome
    a, d, g = before
    assert quotas.snapshot() == ((a - 2, d, str(int(g) + 2)) if moved else before)
    assert [r.outcome for r in path.audit.store.change(result.change_id)] == [None, outcome]
    if moved:  # put the fleet back for the next test
        back = {**MIXED_TRANSFER, "from": "team-g", "to": "team-a"}
        plan = await path.plan("quota.transfer", back, ALICE)
        await path.apply("quota.transfer", back, plan.fingerprint, "undo the test", ALICE)
        assert quotas.snapshot() == before


async def test_two_operators_on_the_same_quota_one_wins(quotas: Quotas, path: ChangePath) -> None:
    before = quotas.snapshot()
    alice = await path.plan("quota.transfer", KUEUE_TRANSFER, ALICE)
    bob_parameters = {"tenant": "team-a", "model": "a100", "gpus": before[0] - 1}
    bob = await path.plan("quota.set", bob_parameters, BOB)
    first = await path.apply("quota.transfer", KUEUE_TRANSFER, alice.fingerprint, "a", ALICE)
    assert first.outcome == AuditOutcome.SUCCEEDED
    with pytest.raises(StalePlan) as stale:
        await path.apply("quota.set", bob_parameters, bob.fingerprint, "b", BOB)
    assert stale.value.plan.objects[0].fields[0].before == before[0] - 2
    assert quotas.snapshot()[:2] == (before[0] - 2, before[1] + 2)
    outcomes = [(r.actor, r.outcome) for r in records(path) if r.stage == "outcome"]
    assert outcomes == [("alice", "succeeded"), ("bob", "failed")]
    back = {**KUEUE_TRANSFER, "from": "team-d", "to": "team-a"}
    plan = await path.plan("quota.transfer", back, ALICE)
    await path.apply("quota.transfer", back, plan.fingerprint, "undo the test", ALICE)
    assert quotas.snapshot() == before
