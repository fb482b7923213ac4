"""The change path against a sandbox over HTTP: plan, intent, apply with preconditions, outcome,
refusals recorded, all-or-nothing writes, recovery after a crash, and failing closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import sqlalchemy as sa

from backend.audit.chain import record_hash
from backend.audit.log import AuditLog, AuditUnavailable
from backend.audit.store import AuditStore
from backend.changes.head import ConfigMapHead
from backend.changes.kube import ClusterClient, Conflict, KubeError, ObjectRef, Unreachable
from backend.changes.path import ChangePath
from backend.changes.plan import FieldChange, ObjectChange, Plan
from backend.changes.request import Actor, ChangeDenied, ChangeInvalid, StalePlan
from backend.changes.rollout import DeploymentUndo
from backend.db.engine import create_db_engine
from backend.db.migrate import upgrade
from backend.schemas import AuditEntry, AuditFilter, AuditOutcome, AuditRecord, AuditStage
from tests.pg_fixture import PgServer, private_pg  # noqa: F401
from tests.support.sandbox import SandboxThread

NS = "team-a"
ALICE = Actor("alice", "admin", source_address="127.0.0.1", ssh_client="10.0.0.9 5122 10.0.0.1 22")


def release(apps: kubernetes.client.AppsV1Api, image: str, cause: str) -> None:
    body = {
        "metadata": {"name": "llm", "annotations": {"kubernetes.io/change-cause": cause}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "llm"}},
            "template": {
                "metadata": {"labels": {"app": "llm"}},
                "spec": {"containers": [{"name": "vllm", "image": image}]},
            },
        },
    }
    if apps.list_namespaced_deployment(NS).items:
        apps.patch_namespaced_deployment("llm", NS, body)
    else:
        apps.create_namespaced_deployment(NS, kubernetes.client.V1Deployment.model_validate(body))


class Cluster:
    """A sandbox with namespace team-a (tenant a), a Deployment at revision 3, two ConfigMaps."""

    def __init__(self, running: SandboxThread) -> None:
        self.running = running
        self.api = running.api_client()
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.apps = kubernetes.client.AppsV1Api(self.api)
        # The backend's own namespace ("opsconsole") the sandbox has from deploy/rbac.yaml.
        meta = kubernetes.client.V1ObjectMeta(name=NS, labels={"opsconsole.io/tenant": "a"})
        self.core.create_namespace(kubernetes.client.V1Namespace(metadata=meta))
        for n, image in enumerate(("vllm:0.5", "vllm:0.6", "vllm:0.7-bad"), start=1):
            release(self.apps, image, f"release {n}")
            self.settle()
        for name in ("left", "right"):
            config_map = kubernetes.client.V1ConfigMap(
                metadata=kubernetes.client.V1ObjectMeta(name=name), data={"gpus": "4"}
            )
            self.core.create_namespaced_config_map(NS, config_map)

    def settle(self) -> None:
        self.running.settle()

    def deployment(self) -> dict[str, Any]:
        return self.api.sanitize_for_serialization(self.apps.read_namespaced_deployment("llm", NS))

    def image(self) -> str:
        return self.deployment()["spec"]["template"]["spec"]["containers"][0]["image"]

    def config(self, name: str) -> str:
        data = self.core.read_namespaced_config_map(name, NS).data
        assert data is not None
        return data["gpus"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    path = tmp_path_factory.mktemp("changes") / "kubeconfig"
    running = SandboxThread(path, fleet="empty", settle_seconds=0.0)
    try:
        yield Cluster(running)
    finally:
        running.close()


def make_store(tmp_path: Path) -> AuditStore:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    return AuditStore(create_db_engine(url))


class SetConfigMaps:
    """A change of two ConfigMaps at once, to exercise the all-or-nothing machinery."""

    action = "test.configmaps"

    def plan(self, parameters: Mapping[str, Any], cluster: ClusterClient) -> Plan:
        objects = []
        for name in ("left", "right"):
            ref = ObjectRef("", "v1", "configmaps", "ConfigMap", NS, name)
            current = cluster.get(ref)
            before = current["data"]["gpus"]
            field = FieldChange("/data/gpus", before, str(parameters[name]))
            objects.append(ObjectChange(ref, current["metadata"]["resourceVersion"], (field,)))
        return Plan(self.action, "configmaps", ["a"], dict(parameters), objects)


@pytest.fixture
def cache_seen() -> list[dict[str, Any]]:
    """The objects the change path handed to the cache."""
    return []


@pytest.fixture
async def path(
    cluster: Cluster, tmp_path: Path, cache_seen: list[dict[str, Any]]
) -> AsyncIterator[ChangePath]:
    client = ClusterClient(cluster.api)
    head = ConfigMapHead(
        client, "opsconsole", name=f"head-{tmp_path.name}"[:63].lower().replace("_", "-")
    )
    audit = AuditLog(make_store(tmp_path), head=head)
    await audit.start()
    change_path = ChangePath(
        [DeploymentUndo(), SetConfigMaps()], client, audit, cache_update=cache_seen.append
    )
    try:
        yield change_path
    finally:
        await audit.stop()


def records(path: ChangePath) -> list[AuditRecord]:
    return list(path.audit.store.export(AuditFilter()))


UNDO = {"namespace": NS, "name": "llm"}


async def test_plan_is_kubectls_undo_and_writes_nothing(cluster: Cluster, path: ChangePath) -> None:
    before = cluster.deployment()
    plan = await path.plan("rollout.undo", UNDO, ALICE)
    assert plan.details["target_revision"] == 2 and plan.details["current_revision"] == 3
    assert plan.target == f"deployment/{NS}/llm" and plan.tenants == ["a"]
    [obj] = plan.objects
    assert obj.resource_version == before["metadata"]["resourceVersion"]
    paths = [f.path for f in obj.fields]
    assert paths == ["/spec/template", "/metadata/annotations"]
    template = obj.fields[0].after
    assert template["spec"]["containers"][0]["image"] == "vllm:0.6"
    assert "pod-template-hash" not in template["metadata"].get("labels", {})
    assert obj.fields[1].after["kubernetes.io/change-cause"] == "release 2"
    assert (
        cluster.deployment()["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    )
    assert records(path) == []  # planning is not a change


async def test_apply_rolls_back_and_records_intent_then_outcome(
    cluster: Cluster, path: ChangePath, cache_seen: list[dict[str, Any]]
) -> None:
    plan = await path.plan("rollout.undo", UNDO, ALICE)
    result = await path.apply("rollout.undo", UNDO, plan.fingerprint, "  p99 doubled  ", ALICE)
    assert result.outcome == AuditOutcome.SUCCEEDED and result.error is None
    cluster.settle()
    assert cluster.image() == "vllm:0.6"
    assert (
        cluster.deployment()["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"
    )
    intent, outcome = records(path)
    assert (intent.stage, outcome.stage) == ("intent", "outcome")
    assert intent.change_id == outcome.change_id == result.change_id
    assert outcome.outcome == "succeeded" and intent.outcome is None
    assert (outcome.actor, outcome.role, outcome.reason) == ("alice", "admin", "p99 doubled")
    assert outcome.ssh_client == ALICE.ssh_client and outcome.source_address == "127.0.0.1"
    assert outcome.action == "rollout.undo" and outcome.tenants == ["a"]
    assert outcome.parameters["fingerprint"] == plan.fingerprint
    assert isinstance(outcome.before, list) and isinstance(outcome.after, list)
    [before] = outcome.before
    assert before["fields"]["/spec/template"]["spec"]["containers"][0]["image"] == "vllm:0.7-bad"
    assert (
        outcome.after[0]["fields"]["/spec/template"]["spec"]["containers"][0]["image"] == "vllm:0.6"
    )
    written_rv = result.written[0]["metadata"]["resourceVersion"]
    assert outcome.resource_versions[f"deployment/{NS}/llm (after)"] == written_rv
    # The cache got the object the API server returned; the head went outside the database.
    assert [o["metadata"]["resourceVersion"] for o in cache_seen] == [written_rv]
    assert path.audit.head is not None
    head = path.audit.head.read()
    assert head is not None and head.seq == outcome.seq and head.hash == outcome.hash
    assert (await path.audit.verify()).ok
    # Undo of the undo returns to the start, as kubectl's does.
    plan = await path.plan("rollout.undo", UNDO, ALICE)
    assert plan.details["target_revision"] == 3
    await path.apply("rollout.undo", UNDO, plan.fingerprint, "back", ALICE)
    cluster.settle()
    assert cluster.image() == "vllm:0.7-bad"


async def test_a_stale_plan_is_refused_and_recorded(cluster: Cluster, path: ChangePath) -> None:
    plan = await path.plan("rollout.undo", UNDO, ALICE)
    # The undo writes the annotations: someone else's annotation is a change to what was reviewed.
    cluster.apps.patch_namespaced_deployment("llm", NS, {"metadata": {"annotations": {"x": "y"}}})
    rv = cluster.deployment()["metadata"]["resourceVersion"]
    with pytest.raises(StalePlan) as caught:
        await path.apply("rollout.undo", UNDO, plan.fingerprint, "why", ALICE)
    assert caught.value.plan.objects[0].resource_version == rv
    assert cluster.deployment()["metadata"]["resourceVersion"] == rv  # nothing written
    [record] = records(path)
    assert (record.stage, record.outcome) == ("outcome", "failed")
    assert "changed since the plan" in (record.error or "")


async def test_a_write_outside_the_reviewed_fields_does_not_make_the_plan_stale(
    cluster: Cluster, path: ChangePath
) -> None:
    plan = await path.plan("rollout.undo", UNDO, ALICE)
    cluster.apps.patch_namespaced_deployment("llm", NS, {"metadata": {"labels": {"x": "y"}}})
    moved = cluster.deployment()["metadata"]["resourceVersion"]
    assert moved != plan.objects[0].resource_version

    result = await path.apply("rollout.undo", UNDO, plan.fingerprint, "why", ALICE)

    assert result.outcome == "succeeded"
    assert result.plan.objects[0].resource_version == moved  # the precondition is the new version
    intent, outcome = records(path)
    assert intent.parameters["confirmed_fingerprint"] == plan.fingerprint
    assert intent.parameters["fingerprint"] == result.plan.fingerprint != plan.fingerprint
    assert outcome.resource_versions[f"deployment/{NS}/llm"] == moved


@pytest.mark.parametrize(
    ("parameters", "reason", "message"),
    [
        ({**UNDO, "to_revision": 42}, "r", "unable to find specified revision 42 in history"),
        ({"namespace": NS, "name": "nope"}, "r", 'deployments.apps "nope" not found'),
        ({**UNDO, "to_revision": -1}, "r", "to_revision must be a whole number"),
        ({**UNDO, "to_revision": "2"}, "r", "to_revision must be a whole number"),
        (UNDO, "   ", "a reason is required"),
        (UNDO, "x" * 1001, "the reason is over 1000"),
    ],
)
async def test_invalid_changes_write_nothing_and_are_recorded(
    cluster: Cluster, path: ChangePath, parameters: dict, reason: str, message: str
) -> None:
    rv = cluster.deployment()["metadata"]["resourceVersion"]
    with pytest.raises(ChangeInvalid, match=message):
        await path.apply("rollout.undo", parameters, "0" * 64 + "." + "0" * 64, reason, ALICE)
    assert cluster.deployment()["metadata"]["resourceVersion"] == rv
    [record] = records(path)
    assert (record.outcome, record.action, record.actor) == ("invalid", "rollout.undo", "alice")
    assert message in (record.error or "")


async def test_a_skipped_rollback_writes_nothing(cluster: Cluster, path: ChangePath) -> None:
    plan = await path.plan("rollout.undo", {**UNDO, "to_revision": 0}, ALICE)
    current = plan.details["current_revision"]
    plan = await path.plan("rollout.undo", {**UNDO, "to_revision": current}, ALICE)
    assert plan.noop == f"skipped rollback (current template already matches revision {current})"
    assert plan.objects == []
    rv = cluster.deployment()["metadata"]["resourceVersion"]
    result = await path.apply(
        "rollout.undo", {**UNDO, "to_revision": current}, plan.fingerprint, "check", ALICE
    )
    assert result.outcome == "succeeded" and result.written == []
    assert cluster.deployment()["metadata"]["resourceVersion"] == rv
    [record] = records(path)
    assert record.outcome == "succeeded"


async def test_denied_changes_are_recorded(cluster: Cluster, path: ChangePath) -> None:
    class TenantB:
        def denial(self, actor: Actor, plan: Plan) -> str | None:
            return "operator rights on tenant a are required"

    path.authorizer = TenantB()
    with pytest.raises(ChangeDenied, match="tenant a"):
        await path.plan("rollout.undo", UNDO, ALICE)
    [record] = records(path)
    assert (record.outcome, record.target) == ("denied", f"deployment/{NS}/llm")


class BetweenTenants(SetConfigMaps):
    """Shaped like a quota transfer: one change of two tenants' objects."""

    action = "quota.transfer"

    def plan(self, parameters: Mapping[str, Any], cluster: ClusterClient) -> Plan:
        plan = super().plan(parameters, cluster)
        plan.tenants = ["a", "b"]
        return plan


async def test_roles_and_tenant_scopes_decide_who_may_change_what(
    cluster: Cluster, path: ChangePath
) -> None:
    path.kinds[BetweenTenants.action] = BetweenTenants()
    params = {"left": 1, "right": 2}
    cases = [
        ("test.configmaps", Actor("vi", "viewer"), "role viewer may not change anything"),
        ("test.configmaps", Actor("op", "operator", frozenset({"a", "c"})), None),
        ("test.configmaps", Actor("op", "operator"), None),
        (
            "test.configmaps",
            Actor("ob", "operator", frozenset({"b", "c"})),
            "role operator may not change tenant a: your token's tenants are b, c",
        ),
        (
            "quota.transfer",
            Actor("ot", "operator", frozenset({"a", "b"})),
            "role operator may not move quota between tenants a, b: that needs role admin",
        ),
        ("quota.transfer", Actor("ad", "admin", frozenset({"z"})), None),
        ("quota.transfer", Actor("ad", "admin"), None),
    ]
    for action, actor, denial in cases:
        if denial is None:
            await path.plan(action, params, actor)
            continue
        with pytest.raises(ChangeDenied) as refused:
            await path.plan(action, params, actor)
        assert str(refused.value).startswith(denial)
    denied = [r for r in records(path) if r.outcome == "denied"]
    assert [(r.actor, r.role) for r in denied] == [
        ("vi", "viewer"),
        ("ob", "operator"),
        ("ot", "operator"),
    ]


class FailingSecondWrite(ClusterClient):
    """The API server refuses the second patch of a change (a later write fails)."""

    def __init__(self, inner: ClusterClient, status: int = 500) -> None:
        super().__init__(inner.api_client)
        self.patches = 0
        self.status = status

    def patch(self, ref: ObjectRef, body: Any, patch_type: str) -> dict[str, Any]:
        self.patches += 1
        if self.patches == 2:
            error = Conflict if self.status == 409 else KubeError
            raise error(self.status, "InternalError", "etcdserver: request timed out")
        return super().patch(ref, body, patch_type)


async def test_a_failed_later_write_is_reverted(cluster: Cluster, path: ChangePath) -> None:
    plan = await path.plan("test.configmaps", {"left": 2, "right": 6}, ALICE)
    path.cluster = FailingSecondWrite(path.cluster)
    result = await path.apply(
        "test.configmaps", {"left": 2, "right": 6}, plan.fingerprint, "r", ALICE
    )
    assert result.outcome == AuditOutcome.REVERTED
    assert "configmap/team-a/right" in (result.error or "") and "put back" in (result.error or "")
    assert (cluster.config("left"), cluster.config("right")) == ("4", "4")
    intent, outcome = records(path)
    assert outcome.outcome == "reverted" and outcome.change_id == intent.change_id


@pytest.mark.parametrize("second_write_fails", [False, True], ids=["applied", "reverted"])
async def test_the_answer_waits_until_reads_show_every_object_written(
    cluster: Cluster, path: ChangePath, cache_seen: list[dict[str, Any]], second_write_fails: bool
) -> None:
    """``settled`` (the backend: a model made from the cache as it is now) is awaited once every
    object written, or put back, is in the cache and the outcome is recorded, before the answer:
    reads after the answer never show half of a change."""
    seen_when_settled: list[tuple[int, int]] = []
    released = asyncio.Event()

    async def settled() -> None:
        seen_when_settled.append((len(cache_seen), len(records(path))))
        await released.wait()

    path.settled = settled
    params = {"left": 3, "right": 5}
    plan = await path.plan("test.configmaps", params, ALICE)
    if second_write_fails:
        path.cluster = FailingSecondWrite(path.cluster)
    applying = asyncio.create_task(
        path.apply("test.configmaps", params, plan.fingerprint, "r", ALICE)
    )
    await asyncio.sleep(0.5)
    assert not applying.done()  # held until the reads are made from the writes
    # Applied: both objects; reverted: the first, then the first put back. Intent and outcome.
    assert seen_when_settled == [(2, 2)]
    released.set()
    result = await applying
    assert result.outcome == (
        AuditOutcome.REVERTED if second_write_fails else AuditOutcome.SUCCEEDED
    )
    values = [obj["data"]["gpus"] for obj in cache_seen]
    assert values == (["3", "4"] if second_write_fails else ["3", "5"])
    path.settled = None
    if not second_write_fails:  # the next test's starting point
        plan = await path.plan("test.configmaps", {"left": 4, "right": 4}, ALICE)
        await path.apply("test.configmaps", {"left": 4, "right": 4}, plan.fingerprint, "r", ALICE)


async def test_a_conflicting_first_write_fails_cleanly(cluster: Cluster, path: ChangePath) -> None:
    params = {"left": 1, "right": 7}
    plan = await path.plan("test.configmaps", params, ALICE)

    class Racer(ClusterClient):
        """Another operator changes ``left`` between our re-plan and our write."""

        def patch(self, ref: ObjectRef, body: Any, patch_type: str) -> dict[str, Any]:
            cluster.core.patch_namespaced_config_map(ref.name, NS, {"data": {"gpus": "5"}})
            return super().patch(ref, body, patch_type)

    path.cluster = Racer(cluster.api)
    result = await path.apply("test.configmaps", params, plan.fingerprint, "r", ALICE)
    assert result.outcome == AuditOutcome.FAILED and result.status == 409
    assert (cluster.config("left"), cluster.config("right")) == ("5", "4")  # theirs, not ours
    cluster.core.patch_namespaced_config_map("left", NS, {"data": {"gpus": "4"}})


class Crash(BaseException):
    """The backend process dies here."""


def crash_after(writes: int) -> Any:
    """A cache update that kills the backend once ``writes`` writes have landed."""
    seen = []

    def update(obj: dict[str, Any]) -> None:
        seen.append(obj)
        if len(seen) == writes:
            raise Crash

    return update


class CrashBeforeWriting(ClusterClient):
    def patch(self, ref: ObjectRef, body: Any, patch_type: str) -> dict[str, Any]:
        raise Crash


@pytest.mark.parametrize(
    ("landed", "outcome", "after", "words"),
    [
        (1, AuditOutcome.REVERTED, ("4", "4"), "put back"),
        (2, AuditOutcome.SUCCEEDED, ("3", "5"), "every write had landed"),
        (0, AuditOutcome.FAILED, ("4", "4"), "nothing was written"),
    ],
)
async def test_recovery_after_a_crash_during_a_change(
    cluster: Cluster,
    path: ChangePath,
    landed: int,
    outcome: AuditOutcome,
    after: tuple[str, str],
    words: str,
) -> None:
    params = {"left": 3, "right": 5}
    plan = await path.plan("test.configmaps", params, ALICE)
    healthy = path.cluster
    if landed:
        path.cache_update = crash_after(landed)
    else:
        path.cluster = CrashBeforeWriting(healthy.api_client)
    with pytest.raises(Crash):
        await path.apply("test.configmaps", params, plan.fingerprint, "r", ALICE)
    path.cluster, path.cache_update = healthy, None  # the restarted backend
    [intent] = path.audit.store.unfinished()

    [result] = await path.recover()
    assert result.outcome == outcome and result.change_id == intent.change_id
    assert words in (result.error or "")
    assert (cluster.config("left"), cluster.config("right")) == after
    assert [r.outcome for r in path.audit.store.change(intent.change_id)] == [None, outcome]
    assert await path.recover() == []  # finished changes stay finished
    for name in ("left", "right"):
        cluster.core.patch_namespaced_config_map(name, NS, {"data": {"gpus": "4"}})


async def test_no_intent_no_change_when_the_database_is_stopped(
    cluster: Cluster,
    private_pg: PgServer,  # noqa: F811
) -> None:
    url = private_pg.create_database()
    upgrade(url)
    audit = AuditLog(AuditStore(create_db_engine(url)))
    await audit.start()
    change_path = ChangePath([DeploymentUndo()], ClusterClient(cluster.api), audit)
    try:
        plan = await change_path.plan("rollout.undo", UNDO, ALICE)
        rv = cluster.deployment()["metadata"]["resourceVersion"]
        private_pg.stop()
        with pytest.raises(AuditUnavailable, match="audit log cannot be written"):
            await change_path.apply("rollout.undo", UNDO, plan.fingerprint, "r", ALICE)
        assert cluster.deployment()["metadata"]["resourceVersion"] == rv
        assert audit.backlog == 0  # the intent was refused, not queued
        private_pg.start()
        # Back up: the same change goes through.
        result = await change_path.apply("rollout.undo", UNDO, plan.fingerprint, "r", ALICE)
        assert result.outcome == "succeeded"
        cluster.settle()
    finally:
        await audit.stop()


async def test_an_outcome_that_cannot_be_written_is_kept_and_retried(
    cluster: Cluster,
    private_pg: PgServer,  # noqa: F811
) -> None:
    url = private_pg.create_database()
    upgrade(url)
    store = AuditStore(create_db_engine(url))
    audit = AuditLog(store, retry_interval=0.2)
    await audit.start()
    change_path = ChangePath([SetConfigMaps()], ClusterClient(cluster.api), audit)

    class StopDatabaseOnWrite(ClusterClient):
        def patch(self, ref: ObjectRef, body: Any, patch_type: str) -> dict[str, Any]:
            private_pg.stop()  # after the intent, before the outcome
            return super().patch(ref, body, patch_type)

    try:
        params = {"left": 6, "right": 6}
        plan = await change_path.plan("test.configmaps", params, ALICE)
        change_path.cluster = StopDatabaseOnWrite(cluster.api)
        result = await change_path.apply("test.configmaps", params, plan.fingerprint, "r", ALICE)
        assert result.outcome == "succeeded"
        assert audit.backlog == 1 and audit.last_error
        private_pg.start()
        for _ in range(100):
            if audit.backlog == 0:
                break
            await asyncio.sleep(0.1)
        assert audit.backlog == 0
        assert [r.outcome for r in store.change(result.change_id)] == [None, "succeeded"]
        assert store.verify().ok
    finally:
        await audit.stop()
        for name in ("left", "right"):
            cluster.core.patch_namespaced_config_map(name, NS, {"data": {"gpus": "4"}})


async def test_a_write_whose_answer_is_lost_is_checked_and_put_back(
    cluster: Cluster, path: ChangePath
) -> None:
    """The API server applied the patch but the answer never came: the path looks, sees the
    write landed, and puts it back rather than leaving half a change."""

    class LostAnswer(ClusterClient):
        lost = False

        def patch(self, ref: ObjectRef, body: Any, patch_type: str) -> dict[str, Any]:
            answer = super().patch(ref, body, patch_type)
            if not self.lost:
                self.lost = True
                raise Unreachable(0, "Unreachable", "the API server did not answer (timed out)")
            return answer

    params = {"left": 2, "right": 2}
    plan = await path.plan("test.configmaps", params, ALICE)
    path.cluster = LostAnswer(cluster.api)
    result = await path.apply("test.configmaps", params, plan.fingerprint, "r", ALICE)
    assert result.outcome == AuditOutcome.REVERTED, result.error
    assert (cluster.config("left"), cluster.config("right")) == ("4", "4")


async def test_truncation_is_caught_by_the_head_kept_in_the_cluster(
    cluster: Cluster, path: ChangePath
) -> None:
    for gpus in (5, 6):
        params = {"left": gpus, "right": gpus}
        plan = await path.plan("test.configmaps", params, ALICE)
        await path.apply("test.configmaps", params, plan.fingerprint, "r", ALICE)
    assert (await path.audit.verify()).ok
    with path.audit.store.engine.begin() as conn:  # the newest change's records vanish
        conn.execute(sa.text("DELETE FROM audit_tenant WHERE seq > 2"))
        conn.execute(sa.text("DELETE FROM audit_record WHERE seq > 2"))
    assert path.audit.store.verify().ok  # the chain alone cannot tell
    result = await path.audit.verify()
    assert (result.ok, result.broken_at) == (False, 3)
    assert "records #3 to #4 are missing" in (result.problem or "")
    assert path.audit.chain == result  # what the console shows
    for name in ("left", "right"):
        cluster.core.patch_namespaced_config_map(name, NS, {"data": {"gpus": "4"}})


async def test_a_rewritten_end_is_caught_by_the_head_kept_in_the_cluster(
    cluster: Cluster, path: ChangePath
) -> None:
    params = {"left": 7, "right": 7}
    plan = await path.plan("test.configmaps", params, ALICE)
    await path.apply("test.configmaps", params, plan.fingerprint, "r", ALICE)
    last = path.audit.store.get(2)
    assert last is not None
    fields = last.model_dump(mode="json")
    fields["reason"] = "nothing happened"
    forged = record_hash(last.prev_hash, fields)  # a forger who knows the scheme
    with path.audit.store.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE audit_record SET reason = :r, hash = :h WHERE seq = 2"),
            {"r": "nothing happened", "h": forged},
        )
    assert path.audit.store.verify().ok
    result = await path.audit.verify()
    assert (result.ok, result.broken_at) == (False, 2)
    assert "differs from the head kept outside" in (result.problem or "")
    for name in ("left", "right"):
        cluster.core.patch_namespaced_config_map(name, NS, {"data": {"gpus": "4"}})


async def test_recovery_leaves_unfinished_changes_that_are_not_the_clusters(
    path: ChangePath,
) -> None:
    """A token command that died after its intent left nothing in the cluster to finish."""
    path.audit.store.append(
        AuditEntry(
            change_id="t1",
            stage=AuditStage.INTENT,
            actor="root",
            role="admin",
            action="token.create",
            target="token/abc",
        )
    )
    assert await path.recover() == []
    assert [r.change_id for r in path.audit.store.unfinished()] == ["t1"]
