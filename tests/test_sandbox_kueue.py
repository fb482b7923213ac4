"""Kueue in the sandbox: Workloads, admission against nominal quota and cohort borrowing, status.

Also the ResourceQuota half of quota: ``check_quota``'s admission message and ``status.used``.
Everything runs at the store level with the real controller manager (frozen clock, no settling).
"""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime

import pytest

from backend.conventions import QUEUE_LABEL
from backend.sandbox.clock import Clock
from backend.sandbox.controllers import Controllers
from backend.sandbox.controllers.quota import check_quota
from backend.sandbox.fleet_tenants import (
    KUEUE_MODE,
    LOCAL_QUEUE_NAME,
    RESOURCEQUOTA_MODE,
    TenantSpec,
    create_resource_flavors,
    create_tenants,
    make_tenant_specs,
)
from backend.sandbox.gpusim import H100
from backend.sandbox.store import (
    CLUSTER_QUEUE,
    DEPLOYMENT,
    EVENT,
    JOB,
    LOCAL_QUEUE,
    NODE,
    POD,
    RESOURCE_QUOTA,
    WORKLOAD,
    Store,
)
from tests.support.sandbox import sandbox_ca

FROZEN = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


class Cluster:
    """A store with GPU nodes, flavors and the controller manager, settled on demand."""

    def __init__(self, nodes: int = 4) -> None:
        self.clock = Clock(frozen=FROZEN)
        self.store = Store()
        for i in range(nodes):
            self.store.create(NODE, _node(f"h100-{i:02d}"))
        create_resource_flavors(self.store, self.clock)
        self.ctl = Controllers(self.store, self.clock, settle_seconds=0.0, seed=3)
        self.now = 1000.0
        self._stamp = 0

    def tenants(self, *specs: TenantSpec) -> None:
        create_tenants(self.store, self.clock, specs)
        self.settle()

    def settle(self) -> None:
        for _ in range(4):
            self.now += 1.0
            self.ctl.tick(self.now)

    def job(self, ns: str, name: str, gpus: int, parallelism: int = 1) -> None:
        """A queued GPU Job, created suspended as kubectl users do for Kueue."""
        self._stamp += 1
        self.store.create(
            JOB,
            {
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": {QUEUE_LABEL: LOCAL_QUEUE_NAME},
                    "creationTimestamp": f"2026-11-29T08:{self._stamp:02d}:00Z",
                },
                "spec": {
                    "suspend": True,
                    "parallelism": parallelism,
                    "completions": parallelism,
                    "template": _pod_template(gpus, "Never"),
                },
            },
        )

    def workload(self, ns: str, owner: str) -> dict:
        found = [
            w
            for w in self.store.list(WORKLOAD, ns)
            if w["metadata"]["ownerReferences"][0]["name"] == owner
        ]
        assert len(found) == 1, found
        return found[0]

    def cq(self, name: str) -> dict:
        return self.store.get(CLUSTER_QUEUE, "", name)


def _node(name: str) -> dict:
    return {
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": H100.product}},
        "spec": {},
        "status": {
            "capacity": {"nvidia.com/gpu": "8", "cpu": "192", "memory": "2Ti", "pods": "110"},
            "allocatable": {"nvidia.com/gpu": "8", "cpu": "190", "memory": "2Ti", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def _pod_template(gpus: int, restart: str = "Always") -> dict:
    return {
        "metadata": {"labels": {"app": "x"}},
        "spec": {
            "restartPolicy": restart,
            "nodeSelector": {"nvidia.com/gpu.product": H100.product},
            "containers": [
                {
                    "name": "main",
                    "image": "trainer:1",
                    "resources": {
                        "requests": {"nvidia.com/gpu": str(gpus)},
                        "limits": {"nvidia.com/gpu": str(gpus)},
                    },
                }
            ],
        },
    }


def _condition(obj: dict, kind: str) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


def _usage(cq: dict, key: str = "flavorsUsage") -> dict:
    (flavor,) = [f for f in cq["status"][key] if f["name"] == "h100"]
    return flavor["resources"][0]


def _tenant(name: str, nominal: int, **kw) -> TenantSpec:
    return TenantSpec(name=name, namespaces=(name,), quota={"h100": nominal}, **kw)


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


def test_admits_within_nominal_quota_and_unsuspends_the_job(cluster):
    cluster.tenants(_tenant("team-a", 8, cohort=None))
    cluster.job("team-a", "train", gpus=4, parallelism=2)
    cluster.settle()
    wl = cluster.workload("team-a", "train")
    assert wl["metadata"]["name"].startswith("job-train-")
    assert wl["spec"]["queueName"] == LOCAL_QUEUE_NAME
    assert wl["spec"]["podSets"][0]["count"] == 2
    assert _condition(wl, "Admitted")["status"] == "True"
    assert _condition(wl, "QuotaReserved")["message"] == "Quota reserved in ClusterQueue team-a"
    assignment = wl["status"]["admission"]["podSetAssignments"][0]
    assert assignment["flavors"] == {"nvidia.com/gpu": "h100"}
    assert assignment["resourceUsage"] == {"nvidia.com/gpu": "8"}
    assert cluster.store.get(JOB, "team-a", "train")["spec"]["suspend"] is False
    started = [
        e
        for e in cluster.store.list(EVENT, "team-a")
        if e["reason"] == "Started" and e["involvedObject"]["kind"] == "Job"
    ]
    assert started[0]["message"] == "Admitted by clusterQueue team-a"
    pods = cluster.store.list(POD, "team-a")
    assert len(pods) == 2 and all(p["spec"].get("nodeName") for p in pods)
    cq = cluster.cq("team-a")
    assert _usage(cq) == {"name": "nvidia.com/gpu", "total": "8", "borrowed": "0"}
    assert _usage(cq, "flavorsReservation")["total"] == "8"
    assert cq["status"]["admittedWorkloads"] == 1
    assert cq["status"]["reservingWorkloads"] == 1
    assert cq["status"]["pendingWorkloads"] == 0
    assert _condition(cq, "Active")["status"] == "True"
    lq = cluster.store.get(LOCAL_QUEUE, "team-a", LOCAL_QUEUE_NAME)
    assert lq["status"]["admittedWorkloads"] == 1
    assert lq["status"]["flavorsUsage"][0]["resources"][0]["total"] == "8"


def test_over_quota_stays_pending_with_kueues_message(cluster):
    cluster.tenants(_tenant("team-a", 8, cohort=None))
    cluster.job("team-a", "first", gpus=8)
    cluster.job("team-a", "second", gpus=8)
    cluster.settle()
    second = cluster.workload("team-a", "second")
    reserved = _condition(second, "QuotaReserved")
    assert reserved["status"] == "False"
    assert reserved["reason"] == "Pending"
    assert reserved["message"] == (
        "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu "
        "in flavor h100, 8 more needed"
    )
    assert not any(c["type"] == "Admitted" for c in second["status"]["conditions"])
    assert cluster.store.get(JOB, "team-a", "second")["spec"]["suspend"] is True
    cq = cluster.cq("team-a")
    assert cq["status"]["pendingWorkloads"] == 1
    assert cq["status"]["admittedWorkloads"] == 1
    assert (
        cluster.store.get(LOCAL_QUEUE, "team-a", LOCAL_QUEUE_NAME)["status"]["pendingWorkloads"]
        == 1
    )
    events = [e for e in cluster.store.list(EVENT, "team-a") if e["reason"] == "Pending"]
    assert events and events[0]["involvedObject"]["kind"] == "Workload"


def test_request_beyond_maximum_capacity_says_so(cluster):
    cluster.tenants(_tenant("team-a", 8, cohort=None))
    cluster.job("team-a", "huge", gpus=8, parallelism=3)
    cluster.settle()
    message = _condition(cluster.workload("team-a", "huge"), "QuotaReserved")["message"]
    assert message.endswith(
        "insufficient quota for nvidia.com/gpu in flavor h100, request > maximum capacity (24 > 8)"
    )


def test_deleting_the_owner_releases_quota_for_the_next_in_line(cluster):
    cluster.tenants(_tenant("team-a", 8, cohort=None))
    cluster.job("team-a", "first", gpus=8)
    cluster.job("team-a", "second", gpus=8)
    cluster.settle()
    cluster.store.delete(JOB, "team-a", "first")
    cluster.settle()
    assert [w["metadata"]["ownerReferences"][0]["name"] for w in cluster.store.list(WORKLOAD)] == [
        "second"
    ]
    assert _condition(cluster.workload("team-a", "second"), "Admitted")["status"] == "True"
    assert cluster.store.get(JOB, "team-a", "second")["spec"]["suspend"] is False
    assert cluster.cq("team-a")["status"]["pendingWorkloads"] == 0


def test_fifo_by_creation_time_but_best_effort(cluster):
    cluster.tenants(_tenant("team-a", 8, cohort=None))
    cluster.job("team-a", "big", gpus=6)
    cluster.job("team-a", "bigger", gpus=4)
    cluster.job("team-a", "small", gpus=2)
    cluster.settle()
    assert _condition(cluster.workload("team-a", "big"), "Admitted")["status"] == "True"
    bigger = _condition(cluster.workload("team-a", "bigger"), "QuotaReserved")
    assert bigger["status"] == "False" and bigger["message"].endswith("4 more needed")
    # BestEffortFIFO: a head that does not fit does not block a smaller workload behind it.
    assert _condition(cluster.workload("team-a", "small"), "Admitted")["status"] == "True"
    cluster.store.delete(JOB, "team-a", "big")
    cluster.settle()
    assert _condition(cluster.workload("team-a", "bigger"), "Admitted")["status"] == "True"


def test_strict_fifo_blocks_behind_the_head(cluster):
    cluster.tenants(_tenant("team-a", 8, cohort=None))
    cq = copy.deepcopy(cluster.cq("team-a"))
    cq["spec"]["queueingStrategy"] = "StrictFIFO"
    cluster.store.update(CLUSTER_QUEUE, cq, subresource="main")
    cluster.job("team-a", "big", gpus=6)
    cluster.job("team-a", "bigger", gpus=4)
    cluster.job("team-a", "small", gpus=2)
    cluster.settle()
    assert _condition(cluster.workload("team-a", "small"), "QuotaReserved")["status"] == "False"
    assert cluster.cq("team-a")["status"]["pendingWorkloads"] == 2


def test_borrows_unused_quota_of_the_cohort_up_to_the_borrowing_limit(cluster):
    cluster.tenants(_tenant("team-a", 8, borrowing_limit=4), _tenant("team-b", 16))
    cluster.job("team-a", "wide", gpus=4, parallelism=3)  # 12 = 8 nominal + 4 borrowed
    cluster.job("team-a", "more", gpus=2)
    cluster.settle()
    assert _condition(cluster.workload("team-a", "wide"), "Admitted")["status"] == "True"
    assert _usage(cluster.cq("team-a")) == {
        "name": "nvidia.com/gpu",
        "total": "12",
        "borrowed": "4",
    }
    more = _condition(cluster.workload("team-a", "more"), "QuotaReserved")
    assert more["message"].endswith(
        "insufficient unused quota for nvidia.com/gpu in flavor h100, 2 more needed"
    )
    # team-b lent 4 of its 16: a 16-GPU job does not fit until team-a gives them back.
    cluster.job("team-b", "full", gpus=8, parallelism=2)
    cluster.settle()
    full = _condition(cluster.workload("team-b", "full"), "QuotaReserved")
    assert full["status"] == "False" and "4 more needed" in full["message"]
    cluster.store.delete(JOB, "team-a", "wide")
    cluster.settle()
    assert _condition(cluster.workload("team-b", "full"), "Admitted")["status"] == "True"
    assert _usage(cluster.cq("team-b"))["borrowed"] == "0"


def test_lending_limit_caps_what_a_queue_lends(cluster):
    cluster.tenants(_tenant("team-a", 8), _tenant("team-b", 16, lending_limit=2))
    cluster.job("team-a", "wide", gpus=4, parallelism=3)
    cluster.job("team-a", "fits", gpus=2)
    cluster.settle()
    wide = _condition(cluster.workload("team-a", "wide"), "QuotaReserved")
    assert wide["status"] == "False"
    assert wide["message"].endswith("request > maximum capacity (12 > 10)")
    assert _condition(cluster.workload("team-a", "fits"), "Admitted")["status"] == "True"
    assert _usage(cluster.cq("team-a"))["borrowed"] == "0"


def test_lowering_nominal_quota_turns_admitted_workloads_into_borrowers(cluster):
    cluster.tenants(_tenant("team-a", 8, cohort=None))
    cluster.job("team-a", "train", gpus=8)
    cluster.settle()
    cq = copy.deepcopy(cluster.cq("team-a"))
    cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]["nominalQuota"] = 4
    cluster.store.update(CLUSTER_QUEUE, cq, subresource="main")
    cluster.settle()
    assert _condition(cluster.workload("team-a", "train"), "Admitted")["status"] == "True"
    assert cluster.store.get(JOB, "team-a", "train")["spec"]["suspend"] is False
    assert _usage(cluster.cq("team-a")) == {"name": "nvidia.com/gpu", "total": "8", "borrowed": "4"}
    cluster.job("team-a", "next", gpus=1)
    cluster.settle()
    assert _condition(cluster.workload("team-a", "next"), "QuotaReserved")["status"] == "False"


def test_replicaset_pod_group_is_gated_until_admitted(cluster):
    cluster.tenants(_tenant("team-a", 4, cohort=None))
    template = _pod_template(2)
    template["metadata"]["labels"][QUEUE_LABEL] = LOCAL_QUEUE_NAME
    deploy = {
        "metadata": {"name": "llm", "namespace": "team-a"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "x"}},
            "template": template,
        },
    }
    cluster.job("team-a", "hog", gpus=4)
    cluster.settle()
    cluster.store.create(DEPLOYMENT, deploy)
    cluster.settle()
    pods = [p for p in cluster.store.list(POD, "team-a") if p["metadata"]["name"].startswith("llm")]
    assert len(pods) == 2
    assert all(p["spec"]["schedulingGates"] == [{"name": "kueue.x-k8s.io/admission"}] for p in pods)
    assert all(not p["spec"].get("nodeName") for p in pods)
    (wl,) = [
        w
        for w in cluster.store.list(WORKLOAD, "team-a")
        if w["metadata"]["name"].startswith("replicaset-llm-")
    ]
    assert wl["spec"]["podSets"][0]["count"] == 2
    assert "4 more needed" in _condition(wl, "QuotaReserved")["message"]
    cluster.store.delete(JOB, "team-a", "hog")
    cluster.settle()
    pods = [p for p in cluster.store.list(POD, "team-a") if p["metadata"]["name"].startswith("llm")]
    assert all(not p["spec"].get("schedulingGates") for p in pods)
    assert all(p["spec"].get("nodeName") for p in pods)
    assert _usage(cluster.cq("team-a"))["total"] == "4"


def test_resource_quota_status_and_admission_message(cluster):
    cluster.tenants(
        TenantSpec(
            name="team-q",
            namespaces=("team-q",),
            quota={"h100": 8},
            cohort=None,
            mode=RESOURCEQUOTA_MODE,
        )
    )
    rq = cluster.store.get(RESOURCE_QUOTA, "team-q", "gpu-quota")
    assert rq["status"]["hard"]["requests.nvidia.com/gpu"] == "8"
    assert rq["status"]["used"]["requests.nvidia.com/gpu"] == "0"
    cluster.store.create(
        DEPLOYMENT,
        {
            "metadata": {"name": "svc", "namespace": "team-q"},
            "spec": {
                "replicas": 5,
                "selector": {"matchLabels": {"app": "x"}},
                "template": _pod_template(2),
            },
        },
    )
    cluster.settle()
    rq = cluster.store.get(RESOURCE_QUOTA, "team-q", "gpu-quota")
    assert rq["status"]["used"] == {"requests.nvidia.com/gpu": "8", "pods": "4"}
    assert check_quota(cluster.store, "team-q", 2) == (
        "exceeded quota: gpu-quota, requested: requests.nvidia.com/gpu=2, "
        "used: requests.nvidia.com/gpu=8, limited: requests.nvidia.com/gpu=8"
    )
    failed = [e for e in cluster.store.list(EVENT, "team-q") if e["reason"] == "FailedCreate"]
    assert failed and "is forbidden: exceeded quota: gpu-quota" in failed[0]["message"]
    assert check_quota(cluster.store, "team-a-nonexistent", 2) is None


def test_raising_nominal_quota_admits_what_was_pending(cluster):
    cluster.tenants(_tenant("team-a", 4, cohort=None))
    cluster.job("team-a", "train", gpus=8)
    cluster.settle()
    assert _condition(cluster.workload("team-a", "train"), "QuotaReserved")["status"] == "False"
    cq = copy.deepcopy(cluster.cq("team-a"))
    cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]["nominalQuota"] = "8"
    cluster.store.update(CLUSTER_QUEUE, cq, subresource="main")
    cluster.settle()
    assert _condition(cluster.workload("team-a", "train"), "Admitted")["status"] == "True"
    assert _usage(cluster.cq("team-a")) == {"name": "nvidia.com/gpu", "total": "8", "borrowed": "0"}


def test_finished_job_releases_its_quota(cluster):
    cluster.tenants(_tenant("team-a", 8, cohort=None))
    cluster.job("team-a", "first", gpus=8)
    cluster.job("team-a", "second", gpus=8)
    cluster.settle()
    job = copy.deepcopy(cluster.store.get(JOB, "team-a", "first"))
    job["status"] = {
        "conditions": [{"type": "Complete", "status": "True"}],
        "succeeded": 1,
        "completionTime": "2026-11-29T09:00:00Z",
    }
    cluster.store.update(JOB, job, subresource="status")
    cluster.settle()
    finished = _condition(cluster.workload("team-a", "first"), "Finished")
    assert (finished["status"], finished["reason"]) == ("True", "Succeeded")
    assert _condition(cluster.workload("team-a", "second"), "Admitted")["status"] == "True"
    assert cluster.cq("team-a")["status"]["admittedWorkloads"] == 1


def test_a_queued_job_created_running_is_suspended_until_admitted(cluster):
    cluster.tenants(_tenant("team-a", 8, cohort=None))
    cluster.job("team-a", "hog", gpus=8)
    cluster.settle()
    cluster.store.create(
        JOB,
        {
            "metadata": {
                "name": "eager",
                "namespace": "team-a",
                "labels": {QUEUE_LABEL: LOCAL_QUEUE_NAME},
            },
            "spec": {"parallelism": 1, "completions": 1, "template": _pod_template(4, "Never")},
        },
    )
    cluster.settle()
    assert cluster.store.get(JOB, "team-a", "eager")["spec"]["suspend"] is True
    assert _condition(cluster.workload("team-a", "eager"), "QuotaReserved")["status"] == "False"
    assert not [
        p
        for p in cluster.store.list(POD, "team-a")
        if p["metadata"]["name"].startswith("eager") and p["spec"].get("nodeName")
    ]


def test_scaling_an_admitted_pod_group_follows_its_size(cluster):
    cluster.tenants(_tenant("team-a", 4, cohort=None))
    template = _pod_template(2)
    template["metadata"]["labels"][QUEUE_LABEL] = LOCAL_QUEUE_NAME
    cluster.store.create(
        DEPLOYMENT,
        {
            "metadata": {"name": "llm", "namespace": "team-a"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "x"}},
                "template": template,
            },
        },
    )
    cluster.settle()
    deploy = copy.deepcopy(cluster.store.get(DEPLOYMENT, "team-a", "llm"))
    deploy["spec"]["replicas"] = 1
    cluster.store.update(DEPLOYMENT, deploy, subresource="main")
    cluster.settle()
    (wl,) = cluster.store.list(WORKLOAD, "team-a")
    assert wl["status"]["admission"]["podSetAssignments"][0]["count"] == 1
    assert wl["status"]["admission"]["podSetAssignments"][0]["resourceUsage"] == {
        "nvidia.com/gpu": "2"
    }
    assert _usage(cluster.cq("team-a"))["total"] == "2"


async def test_quota_moves_over_http_with_the_official_client():
    """What the product does to move quota: patch a ClusterQueue; Kueue status follows."""
    import asyncio

    from kubernetes import client as k8s

    from backend.sandbox.server import Sandbox

    sandbox = Sandbox(fleet="empty", seed=3, frozen_time=FROZEN, settle_seconds=0.0)
    store, clock = sandbox.store, sandbox.clock
    store.create(NODE, _node("h100-00"))
    create_resource_flavors(store, clock)
    create_tenants(store, clock, [_tenant("team-a", 8, cohort=None)])
    async with sandbox:
        config = k8s.Configuration(host=sandbox.url)
        config.api_key = {"authorization": "Bearer sandbox-admin"}
        config.ssl_ca_cert = sandbox_ca()
        api = k8s.CustomObjectsApi(k8s.ApiClient(config))
        batch = k8s.BatchV1Api(api.api_client)
        job = k8s.V1Job(
            metadata=k8s.V1ObjectMeta(name="train", labels={QUEUE_LABEL: LOCAL_QUEUE_NAME}),
            spec=k8s.V1JobSpec(
                suspend=True,
                template=k8s.V1PodTemplateSpec(
                    spec=k8s.V1PodSpec(
                        restart_policy="Never",
                        containers=[
                            k8s.V1Container(
                                name="main",
                                image="trainer:1",
                                resources=k8s.V1ResourceRequirements(
                                    limits={"nvidia.com/gpu": "8"}
                                ),
                            )
                        ],
                    )
                ),
            ),
        )
        await asyncio.to_thread(batch.create_namespaced_job, "team-a", job)

        async def cq_usage() -> dict:
            cq = await asyncio.to_thread(
                api.get_cluster_custom_object,
                "kueue.x-k8s.io",
                "v1beta2",
                "clusterqueues",
                "team-a",
            )
            usage = (cq.get("status") or {}).get("flavorsUsage") or [{"resources": [{}]}]
            return usage[0]["resources"][0]

        async def wait_for(expected: dict) -> dict:
            for _ in range(100):
                usage = await cq_usage()
                if usage == expected:
                    break
                await asyncio.sleep(0.1)
            return usage

        admitted = {"name": "nvidia.com/gpu", "total": "8", "borrowed": "0"}
        assert await wait_for(admitted) == admitted
        patch = {
            "spec": {
                "resourceGroups": [
                    {
                        "coveredResources": ["nvidia.com/gpu"],
                        "flavors": [
                            {
                                "name": "h100",
                                "resources": [{"name": "nvidia.com/gpu", "nominalQuota": 6}],
                            }
                        ],
                    }
                ]
            }
        }
        await asyncio.to_thread(
            api.patch_cluster_custom_object,
            "kueue.x-k8s.io",
            "v1beta2",
            "clusterqueues",
            "team-a",
            patch,
        )
        borrowing = {"name": "nvidia.com/gpu", "total": "8", "borrowed": "2"}
        assert await wait_for(borrowing) == borrowing


def test_tenant_specs_are_deterministic_and_share_the_fleet():
    fleet = {"h100": 64, "a100": 32, "l40s": 32}
    first = make_tenant_specs(random.Random(9), 8, fleet, resourcequota_tenants=2)
    assert first == make_tenant_specs(random.Random(9), 8, fleet, resourcequota_tenants=2)
    assert [t.name for t in first] == [f"team-{c}" for c in "abcdefgh"]
    assert [t.mode for t in first].count(KUEUE_MODE) == 6
    assert all(t.cohort is None for t in first if t.mode == RESOURCEQUOTA_MODE)
    for flavor, total in fleet.items():
        assert sum(t.quota.get(flavor, 0) for t in first) <= total * 1.4
