"""The sandbox's workload controllers: revisions as kube-controller-manager numbers them,
rollouts, pruning, pausing, scheduling with the real FitError text, pod settling and Jobs.

Most tests drive the controllers synchronously on a store (``reconcile_all``/``tick``), so they
need no timing; one test checks the revision sequence through the official kubernetes client over
HTTP against a running sandbox.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kubernetes
import pytest

from backend.k8s.annotations import (
    CHANGE_CAUSE_ANNOTATION,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
)
from backend.k8s.rollout import plan_undo, with_resource_version
from backend.sandbox.clock import Clock
from backend.sandbox.controllers import Controllers
from backend.sandbox.controllers.base import GpuAllocator
from backend.sandbox.controllers.deployments import revision_of
from backend.sandbox.controllers.podstatus import RUNTIME_ANNOTATION
from backend.sandbox.store import (
    DEPLOYMENT,
    EVENT,
    JOB,
    NAMESPACE,
    NODE,
    POD,
    REPLICA_SET,
    RESOURCE_QUOTA,
    Store,
)
from tests.support.sandbox import SandboxThread

NS = "team-a"
H100 = "NVIDIA-H100-80GB-HBM3"
L40S = "NVIDIA-L40S"
A100 = "NVIDIA-A100-SXM4-80GB"
FROZEN = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _node(name: str, product: str, *, cordoned: bool = False) -> dict:
    spec: dict = {}
    if cordoned:
        spec = {
            "unschedulable": True,
            "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}],
        }
    return {
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}},
        "spec": spec,
        "status": {
            "capacity": {"nvidia.com/gpu": "8"},
            "allocatable": {"nvidia.com/gpu": "8"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


class Cluster:
    """A store with four GPU nodes (two H100, one L40S, one cordoned A100) and controllers."""

    def __init__(self, settle_seconds: float = 0.0) -> None:
        self.clock = Clock(frozen=FROZEN)
        self.store = Store(clock=self.clock.rfc3339)
        for node in (
            _node("node-1", H100),
            _node("node-2", H100),
            _node("node-3", L40S),
            _node("node-4", A100, cordoned=True),
        ):
            self.store.create(NODE, node)
        self.store.create(NAMESPACE, {"metadata": {"name": NS}})
        self.controllers = Controllers(self.store, self.clock, settle_seconds, seed=1)
        self.controllers.reconcile_all()

    def deployment(self, name: str = "web") -> dict:
        return self.store.get(DEPLOYMENT, NS, name)

    def replica_sets(self, name: str = "web") -> list[dict]:
        owned = [
            rs
            for rs in self.store.list(REPLICA_SET, NS)
            if rs["metadata"]["ownerReferences"][0]["name"] == name
        ]
        return sorted(owned, key=revision_of)

    def pods(self, prefix: str = "") -> list[dict]:
        return [p for p in self.store.list(POD, NS) if p["metadata"]["name"].startswith(prefix)]

    def apply(self, image: str, cause: str, name: str = "web", **spec: object) -> None:
        """Create or change a Deployment the way ``kubectl apply``/``set image`` does."""
        body = deployment_body(name, image, cause, **spec)
        current = self.store.find(DEPLOYMENT, NS, name)
        if current is None:
            self.store.create(DEPLOYMENT, body)
        else:
            annotations = {
                **current["metadata"].get("annotations", {}),
                CHANGE_CAUSE_ANNOTATION: cause,
            }
            body["metadata"] = {**current["metadata"], "annotations": annotations}
            body["spec"] = {**current["spec"], "template": body["spec"]["template"], **spec}
            self.store.update(DEPLOYMENT, body, subresource="main")
        self.controllers.reconcile_all()

    def settle_all(self) -> None:
        """Let every settling pod finish (as if the settle time had passed)."""
        self.controllers.tick(time.monotonic() + 3600)


def deployment_body(name: str, image: str, cause: str, **spec: object) -> dict:
    labels = {"app": name}
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "annotations": {CHANGE_CAUSE_ANNOTATION: cause},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"nvidia.com/gpu.product": H100},
                    "containers": [
                        {
                            "name": "server",
                            "image": image,
                            "resources": {"limits": {"nvidia.com/gpu": "1"}},
                        }
                    ],
                },
            },
            **spec,
        },
    }


def _revisions(cluster: Cluster) -> dict[str, tuple[int, str | None]]:
    """image -> (revision, revision-history) of each ReplicaSet."""
    out = {}
    for rs in cluster.replica_sets():
        image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
        annotations = rs["metadata"]["annotations"]
        out[image] = (
            int(annotations[REVISION_ANNOTATION]),
            annotations.get(REVISION_HISTORY_ANNOTATION),
        )
    return out


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


# -- revisions -----------------------------------------------------------------------------------
def test_revisions_through_changes_and_returns(cluster: Cluster) -> None:
    """A→B→C→A→B: reused ReplicaSets get max+1 and remember their old numbers."""
    for image, cause in (("a", "ca"), ("b", "cb"), ("c", "cc"), ("a", "back to a"), ("b", "b2")):
        cluster.apply(image, cause)
    assert _revisions(cluster) == {"c": (3, None), "a": (4, "1"), "b": (5, "2")}
    assert cluster.deployment()["metadata"]["annotations"][REVISION_ANNOTATION] == "5"
    assert len(cluster.replica_sets()) == 3


def test_template_equal_but_for_empty_fields_reuses_its_replica_set(cluster: Cluster) -> None:
    """``kubectl rollout undo`` sends ``resources: {}`` where the stored template has none: the
    real controller compares typed structs, so the old ReplicaSet is reused, not copied."""
    cluster.apply("a", "ca")
    cluster.apply("b", "cb")
    body = deployment_body("web", "a", "undo")
    body["spec"]["template"]["spec"]["containers"][0]["env"] = []
    body["spec"]["template"]["metadata"]["annotations"] = {}
    current = cluster.deployment()
    body["metadata"] = current["metadata"]
    cluster.store.update(DEPLOYMENT, body, subresource="main")
    cluster.controllers.reconcile_all()
    assert _revisions(cluster) == {"b": (2, None), "a": (3, "1")}
    assert len(cluster.replica_sets()) == 2


def test_revision_history_accumulates(cluster: Cluster) -> None:
    """A→B→A→B→A: each return appends the number the ReplicaSet had before."""
    for i, image in enumerate(("a", "b", "a", "b", "a")):
        cluster.apply(image, f"step {i}")
    assert _revisions(cluster) == {"b": (4, "2"), "a": (5, "1,3")}
    assert cluster.deployment()["metadata"]["annotations"][REVISION_ANNOTATION] == "5"


def test_change_cause_and_annotations_copied_but_not_bookkeeping(cluster: Cluster) -> None:
    cluster.apply("a", "first")
    deploy = cluster.deployment()
    deploy = {
        **deploy,
        "metadata": {
            **deploy["metadata"],
            "annotations": {
                **deploy["metadata"]["annotations"],
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "opsconsole.io/owner": "alice",
            },
        },
    }
    cluster.store.update(DEPLOYMENT, deploy, subresource="main")
    cluster.controllers.reconcile_all()
    cluster.apply("b", "second")
    old, new = cluster.replica_sets()
    assert old["metadata"]["annotations"][CHANGE_CAUSE_ANNOTATION] == "first"
    assert new["metadata"]["annotations"][CHANGE_CAUSE_ANNOTATION] == "second"
    assert new["metadata"]["annotations"]["opsconsole.io/owner"] == "alice"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in new["metadata"]["annotations"]
    assert new["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
    # Going back to "a" takes the Deployment's current change-cause onto the reused set.
    cluster.apply("a", "undo to a")
    reused = cluster.replica_sets()[-1]
    assert reused["metadata"]["name"] == old["metadata"]["name"]
    assert reused["metadata"]["annotations"][CHANGE_CAUSE_ANNOTATION] == "undo to a"
    assert reused["metadata"]["annotations"][REVISION_HISTORY_ANNOTATION] == "1"


def test_replica_set_shape(cluster: Cluster) -> None:
    cluster.apply("a", "first")
    (rs,) = cluster.replica_sets()
    pod_hash = rs["spec"]["template"]["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {
        "app": "web",
        POD_TEMPLATE_HASH_LABEL: pod_hash,
    }
    assert rs["metadata"]["labels"] == {"app": "web", POD_TEMPLATE_HASH_LABEL: pod_hash}
    ref = rs["metadata"]["ownerReferences"][0]
    assert ref["kind"] == "Deployment" and ref["controller"] is True
    assert ref["uid"] == cluster.deployment()["metadata"]["uid"]
    # The same template in another cluster hashes the same.
    other = Cluster()
    other.apply("a", "first")
    assert other.replica_sets()[0]["metadata"]["name"] == rs["metadata"]["name"]


def test_revision_history_limit_prunes_lowest_revisions(cluster: Cluster) -> None:
    for image in ("a", "b", "c", "d", "e"):
        cluster.apply(image, image, revisionHistoryLimit=2)
    assert _revisions(cluster) == {"c": (3, None), "d": (4, None), "e": (5, None)}


def test_default_history_limit_is_ten(cluster: Cluster) -> None:
    for i in range(13):
        cluster.apply(f"v{i}", f"v{i}")
    assert [revision_of(rs) for rs in cluster.replica_sets()] == list(range(3, 14))


def test_paused_deployment_creates_no_replica_set(cluster: Cluster) -> None:
    cluster.apply("a", "first")
    cluster.apply("b", "second", paused=True)
    assert [revision_of(rs) for rs in cluster.replica_sets()] == [1]
    status = cluster.deployment()["status"]
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "DeploymentPaused"
    assert progressing["message"] == "Deployment is paused"
    assert progressing["status"] == "Unknown"
    cluster.apply("b", "second", paused=False)
    assert _revisions(cluster) == {"a": (1, None), "b": (2, None)}


# -- rollout and status --------------------------------------------------------------------------
def test_rollout_waits_for_new_pods_then_scales_old_down() -> None:
    cluster = Cluster(settle_seconds=3.0)
    cluster.apply("a", "first")
    cluster.settle_all()
    first = cluster.replica_sets()[0]["metadata"]["name"]
    cluster.apply("b", "second")
    # New pods are still ContainerCreating: both ReplicaSets run, the rollout is progressing.
    by_name = {rs["metadata"]["name"]: rs for rs in cluster.replica_sets()}
    assert by_name[first]["spec"]["replicas"] == 2
    new = next(rs for name, rs in by_name.items() if name != first)
    assert new["spec"]["replicas"] == 2
    progressing = next(
        c for c in cluster.deployment()["status"]["conditions"] if c["type"] == "Progressing"
    )
    assert progressing["reason"] == "ReplicaSetUpdated"
    cluster.settle_all()
    by_name = {rs["metadata"]["name"]: rs for rs in cluster.replica_sets()}
    assert by_name[first]["spec"]["replicas"] == 0
    status = cluster.deployment()["status"]
    assert status["replicas"] == status["updatedReplicas"] == status["availableReplicas"] == 2
    assert status["observedGeneration"] == cluster.deployment()["metadata"]["generation"]
    reasons = {c["type"]: c["reason"] for c in status["conditions"]}
    assert reasons == {
        "Available": "MinimumReplicasAvailable",
        "Progressing": "NewReplicaSetAvailable",
    }
    messages = [
        e["message"] for e in cluster.store.list(EVENT, NS) if e["reason"] == "ScalingReplicaSet"
    ]
    assert f"Scaled down replica set {first} from 2 to 0" in " ".join(messages) or any(
        m.startswith(f"Scaled down replica set {first}") for m in messages
    )
    assert any(m.startswith("Scaled up replica set web-") for m in messages)


def test_recreate_strategy_stops_old_pods_before_creating_the_new_set(cluster: Cluster) -> None:
    cluster.apply("a", "first", replicas=8, strategy={"type": "Recreate"})
    cluster.apply("b", "second", replicas=8)
    old, new = cluster.replica_sets()
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 8)
    assert new["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
    assert all(p["status"]["phase"] == "Running" for p in cluster.pods("web-"))
    scaling = sorted(
        (int(e["metadata"]["resourceVersion"]), e["message"])
        for e in cluster.store.list(EVENT, NS)
        if e["reason"] == "ScalingReplicaSet"
    )
    messages = [m for _, m in scaling]
    down = messages.index(f"Scaled down replica set {old['metadata']['name']} from 8 to 0")
    assert messages.index(f"Scaled up replica set {new['metadata']['name']} from 0 to 8") > down


def test_stuck_rollout_passes_its_progress_deadline(cluster: Cluster) -> None:
    cluster.apply("a", "first", replicas=17, progressDeadlineSeconds=300)  # 16 H100 GPUs exist
    progressing = _condition(cluster.deployment(), "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "ReplicaSetUpdated")
    cluster.clock.frozen = FROZEN + timedelta(minutes=6)
    cluster.controllers.tick(time.monotonic() + 3600)
    progressing = _condition(cluster.deployment(), "Progressing")
    rs_name = cluster.replica_sets()[0]["metadata"]["name"]
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"] == f'ReplicaSet "{rs_name}" has timed out progressing.'


def _condition(obj: dict, type_: str) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def test_deleting_a_deployment_deletes_its_replica_sets_and_pods(cluster: Cluster) -> None:
    cluster.apply("a", "first")
    assert cluster.pods("web-")
    cluster.store.delete(DEPLOYMENT, NS, "web")
    cluster.controllers.reconcile_all()
    assert cluster.replica_sets() == [] and cluster.pods("web-") == []
    assert cluster.controllers.allocator.free("node-1") == 8


# -- scheduling ----------------------------------------------------------------------------------
def test_pending_pods_get_the_real_fit_error() -> None:
    cluster = Cluster()
    cluster.apply("a", "first", replicas=17)  # 16 H100 GPUs exist
    pending = [p for p in cluster.pods("web-") if not p["spec"].get("nodeName")]
    assert len(pending) == 1
    condition = pending[0]["status"]["conditions"][0]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )
    assert condition["message"] == (
        "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) were unschedulable, 2 Insufficient nvidia.com/gpu. preemption: 0/4 nodes are "
        "available: 2 No preemption victims found for incoming pod, 2 Preemption is not helpful "
        "for scheduling."
    )
    events = [e for e in cluster.store.list(EVENT, NS) if e["reason"] == "FailedScheduling"]
    assert events and events[0]["message"] == condition["message"]
    assert events[0]["involvedObject"]["name"] == pending[0]["metadata"]["name"]
    assert events[0]["type"] == "Warning"


def test_freed_gpus_bind_a_pending_pod(cluster: Cluster) -> None:
    blocker = {
        "metadata": {"name": "blocker", "namespace": NS},
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": H100},
            "containers": [
                {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "8"}}}
            ],
        },
    }
    cluster.store.create(POD, blocker)
    cluster.controllers.reconcile_all()
    cluster.apply("a", "first", replicas=9)
    (pending,) = [p for p in cluster.pods("web-") if not p["spec"].get("nodeName")]
    cluster.store.delete(POD, NS, "blocker")
    cluster.controllers.reconcile_all()
    pod = cluster.store.get(POD, NS, pending["metadata"]["name"])
    assert pod["spec"]["nodeName"] in ("node-1", "node-2")
    assert pod["status"]["phase"] == "Running"


def test_gpu_pods_go_to_nodes_of_their_model_with_gpu_indices(cluster: Cluster) -> None:
    cluster.apply("a", "first", replicas=3)
    pods = cluster.pods("web-")
    assert {p["spec"]["nodeName"] for p in pods} <= {"node-1", "node-2"}
    held = cluster.controllers.allocator.pods_on("node-1")
    assert sorted(held) == [0, 1, 2]
    assert {entry[1] for entry in held.values()} == {p["metadata"]["name"] for p in pods}
    assert {entry[2] for entry in held.values()} == {"server"}


def test_gated_pods_are_never_bound(cluster: Cluster) -> None:
    pod = {
        "metadata": {"name": "gated", "namespace": NS},
        "spec": {
            "schedulingGates": [{"name": "kueue.x-k8s.io/admission"}],
            "containers": [{"name": "c", "image": "x"}],
        },
    }
    cluster.store.create(POD, pod)
    cluster.controllers.reconcile_all()
    stored = cluster.store.get(POD, NS, "gated")
    assert "nodeName" not in stored["spec"]
    assert stored["status"]["conditions"][0]["reason"] == "SchedulingGated"
    ungated = {
        **stored,
        "spec": {k: v for k, v in stored["spec"].items() if k != "schedulingGates"},
    }
    cluster.store.update(POD, ungated)
    cluster.controllers.reconcile_all()
    assert cluster.store.get(POD, NS, "gated")["spec"]["nodeName"]


# -- pod lifecycle -------------------------------------------------------------------------------
def test_pods_settle_after_settle_seconds() -> None:
    cluster = Cluster(settle_seconds=3.0)
    cluster.apply("a", "first", replicas=1)
    (pod,) = cluster.pods("web-")
    assert pod["status"]["phase"] == "Pending"
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ContainerCreating"
    assert cluster.deployment()["status"]["availableReplicas"] == 0
    cluster.controllers.tick(time.monotonic() + 1.0)  # not yet
    assert cluster.pods("web-")[0]["status"]["phase"] == "Pending"
    cluster.settle_all()
    (pod,) = cluster.pods("web-")
    status = pod["status"]
    assert status["phase"] == "Running"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    assert status["podIP"] and status["startTime"] and status["hostIP"]
    assert status["containerStatuses"][0]["ready"] is True
    assert "running" in status["containerStatuses"][0]["state"]
    assert cluster.deployment()["status"]["availableReplicas"] == 1


def test_settle_zero_runs_at_once(cluster: Cluster) -> None:
    cluster.apply("a", "first")
    assert [p["status"]["phase"] for p in cluster.pods("web-")] == ["Running", "Running"]


# -- jobs ----------------------------------------------------------------------------------------
def _job(name: str, *, suspend: bool = False, runtime: int = 600) -> dict:
    return {
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "parallelism": 2,
            "completions": 2,
            "suspend": suspend,
            "template": {
                "metadata": {"annotations": {RUNTIME_ANNOTATION: str(runtime)}},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {"nvidia.com/gpu.product": L40S},
                    "containers": [
                        {
                            "name": "trainer",
                            "image": "t",
                            "resources": {"limits": {"nvidia.com/gpu": "4"}},
                        }
                    ],
                },
            },
        },
    }


def test_job_runs_and_completes(cluster: Cluster) -> None:
    cluster.store.create(JOB, _job("train"))
    cluster.controllers.reconcile_all()
    job = cluster.store.get(JOB, NS, "train")
    assert job["status"]["active"] == 2 and job["status"]["startTime"]
    assert cluster.controllers.allocator.free("node-3") == 0
    pods = cluster.pods("train-")
    assert all(p["metadata"]["labels"]["job-name"] == "train" for p in pods)
    cluster.clock.frozen = FROZEN + timedelta(minutes=11)
    cluster.controllers.tick()
    job = cluster.store.get(JOB, NS, "train")
    assert job["status"]["succeeded"] == 2 and job["status"]["active"] == 0
    assert job["status"]["completionTime"]
    complete = {c["type"]: c for c in job["status"]["conditions"]}["Complete"]
    assert complete["status"] == "True" and complete["reason"] == "CompletionsReached"
    assert {p["status"]["phase"] for p in cluster.pods("train-")} == {"Succeeded"}
    assert cluster.controllers.allocator.free("node-3") == 8


def test_job_suspend_and_resume(cluster: Cluster) -> None:
    cluster.store.create(JOB, _job("queued", suspend=True))
    cluster.controllers.reconcile_all()
    job = cluster.store.get(JOB, NS, "queued")
    assert cluster.pods("queued-") == [] and job["status"]["active"] == 0
    suspended = {c["type"]: c for c in job["status"]["conditions"]}["Suspended"]
    assert (suspended["status"], suspended["reason"]) == ("True", "JobSuspended")
    cluster.store.update(JOB, {**job, "spec": {**job["spec"], "suspend": False}})
    cluster.controllers.reconcile_all()
    job = cluster.store.get(JOB, NS, "queued")
    assert job["status"]["active"] == 2
    resumed = {c["type"]: c for c in job["status"]["conditions"]}["Suspended"]
    assert (resumed["status"], resumed["reason"]) == ("False", "JobResumed")


# -- quota ---------------------------------------------------------------------------------------
def test_resource_quota_refusal_is_a_failed_create(cluster: Cluster) -> None:
    quota = {
        "metadata": {"name": "gpu-quota", "namespace": NS},
        "spec": {"hard": {"requests.nvidia.com/gpu": "2"}},
    }
    cluster.store.create(RESOURCE_QUOTA, quota)
    cluster.controllers.reconcile_all()
    cluster.apply("a", "first", replicas=3)
    assert len(cluster.pods("web-")) == 2
    failed = [e for e in cluster.store.list(EVENT, NS) if e["reason"] == "FailedCreate"]
    assert failed
    message = failed[0]["message"]
    assert message.startswith('Error creating: pods "web-')
    assert "is forbidden: exceeded quota: gpu-quota, requested: requests.nvidia.com/gpu=1" in (
        message
    )
    (rs,) = cluster.replica_sets()
    failure = {c["type"]: c for c in rs["status"]["conditions"]}["ReplicaFailure"]
    assert failure["reason"] == "FailedCreate" and failure["message"] == message
    # Retries refused alike change nothing (the frozen demo fleet stays the same); once the
    # quota has room, the retry creates the missing pod.
    cluster.controllers.tick(time.monotonic() + 3600)
    failed = [e for e in cluster.store.list(EVENT, NS) if e["reason"] == "FailedCreate"]
    assert len(failed) == 1 and len(cluster.pods("web-")) == 2
    quota = cluster.store.get(RESOURCE_QUOTA, NS, "gpu-quota")
    roomy = {**quota, "spec": {"hard": {"requests.nvidia.com/gpu": "4"}}}
    cluster.store.update(RESOURCE_QUOTA, roomy)
    cluster.controllers.reconcile_all()
    cluster.controllers.tick(time.monotonic() + 7200)
    assert len(cluster.pods("web-")) == 3
    (rs,) = cluster.replica_sets()
    assert all(c["type"] != "ReplicaFailure" for c in rs["status"].get("conditions", []))


# -- building blocks -----------------------------------------------------------------------------
def test_events_aggregate_repeats(cluster: Cluster) -> None:
    cluster.apply("a", "first", replicas=1)
    deploy = cluster.deployment()
    ctx = cluster.controllers.ctx
    ctx.record_event(deploy, "Warning", "Odd", "same message")
    ctx.record_event(deploy, "Warning", "Odd", "same message")
    (event,) = [e for e in cluster.store.list(EVENT, NS) if e["reason"] == "Odd"]
    assert event["count"] == 2
    assert event["involvedObject"]["kind"] == "Deployment"
    assert event["involvedObject"]["uid"] == deploy["metadata"]["uid"]
    assert event["firstTimestamp"] and event["lastTimestamp"] and event["type"] == "Warning"


def test_gpu_allocator() -> None:
    alloc = GpuAllocator()
    alloc.set_capacity("n", 4)
    assert alloc.assign("n", ("ns", "a"), 3, "c") == [0, 1, 2]
    assert alloc.assign("n", ("ns", "b"), 2) is None
    assert alloc.free("n") == 1
    assert alloc.pods_on("n")[1] == ("ns", "a", "c")
    alloc.release(("ns", "a"))
    assert alloc.free("n") == 4 and alloc.pods_on("n") == {}


# -- through the official client over HTTP -------------------------------------------------------
def test_revision_sequence_over_http(tmp_path: Path) -> None:
    """A→B→C→A→B applied with the kubernetes client against a running sandbox."""
    running = SandboxThread(tmp_path / "kubeconfig", fleet="empty", settle_seconds=0.0)
    try:
        api = kubernetes.client.AppsV1Api(running.api_client())
        core = kubernetes.client.CoreV1Api(api.api_client)
        core.create_namespace(
            kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=NS))
        )
        body = kubernetes.client.V1Deployment.model_validate(deployment_body("web", "a", "ca"))
        api.create_namespaced_deployment(NS, body)
        _wait_for_revision(api, "1")
        for number, (image, cause) in enumerate(
            (("b", "cb"), ("c", "cc"), ("a", "back to a"), ("b", "b again")), start=2
        ):
            patch = {
                "metadata": {"annotations": {CHANGE_CAUSE_ANNOTATION: cause}},
                "spec": {
                    "template": {"spec": {"containers": [{"name": "server", "image": image}]}}
                },
            }
            api.patch_namespaced_deployment("web", NS, patch)
            _wait_for_revision(api, str(number))
        sets = api.list_namespaced_replica_set(NS).items
        seen = {}
        for rs in sets:
            assert rs.spec is not None and rs.spec.template is not None
            assert rs.spec.template.spec is not None
            annotations = _annotations(rs)
            seen[rs.spec.template.spec.containers[0].image] = (
                annotations[REVISION_ANNOTATION],
                annotations.get(REVISION_HISTORY_ANNOTATION),
                annotations.get(CHANGE_CAUSE_ANNOTATION),
            )
        assert seen == {
            "c": ("3", None, "cc"),
            "a": ("4", "1", "back to a"),
            "b": ("5", "2", "b again"),
        }
        # ``kubectl rollout undo --to-revision=3``: the client's JSON patch of the template and
        # annotations from ReplicaSet "c" makes the controller reuse it at revision 6.
        deploy = api.api_client.sanitize_for_serialization(
            api.read_namespaced_deployment("web", NS)
        )
        owned = api.api_client.sanitize_for_serialization(sets)
        undo = plan_undo(deploy, owned, to_revision=3)
        assert undo.patch is not None
        undo_patch = with_resource_version(undo.patch, deploy["metadata"]["resourceVersion"])
        api.patch_namespaced_deployment("web", NS, undo_patch)
        _wait_for_revision(api, "6")
        reused = _annotations(api.read_namespaced_replica_set(undo.target["metadata"]["name"], NS))
        assert reused[REVISION_ANNOTATION] == "6"
        assert reused[REVISION_HISTORY_ANNOTATION] == "3"
        assert reused[CHANGE_CAUSE_ANNOTATION] == "cc"
        assert len(api.list_namespaced_replica_set(NS).items) == 3
    finally:
        running.close()


def _annotations(rs: kubernetes.client.V1ReplicaSet) -> dict[str, str]:
    assert rs.metadata is not None and rs.metadata.annotations is not None
    return rs.metadata.annotations


def _wait_for_revision(
    api: kubernetes.client.AppsV1Api, revision: str, timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deploy = api.read_namespaced_deployment("web", NS)
        assert deploy.metadata is not None
        if (deploy.metadata.annotations or {}).get(REVISION_ANNOTATION) == revision:
            return
        time.sleep(0.05)
    raise AssertionError(f"the deployment never reached revision {revision}")
