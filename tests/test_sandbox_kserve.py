"""KServe InferenceServices in the sandbox: revisions, canary split, rollback with 0, promotion."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from backend.sandbox.clock import Clock
from backend.sandbox.controllers import Controllers
from backend.sandbox.controllers.kserve import REVISION_LABEL
from backend.sandbox.fleet_tenants import (
    InferenceServiceSpec,
    TenantSpec,
    create_inference_services,
    create_resource_flavors,
    create_tenants,
    inference_service,
)
from backend.sandbox.gpusim import L40S
from backend.sandbox.store import DEPLOYMENT, EVENT, INFERENCE_SERVICE, NODE, POD, Store

FROZEN = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
NS = "team-serve"


class Cluster:
    def __init__(self) -> None:
        self.clock = Clock(frozen=FROZEN)
        self.store = Store()
        for i in range(2):
            self.store.create(NODE, _node(f"l40s-{i:02d}"))
        create_resource_flavors(self.store, self.clock)
        self.ctl = Controllers(self.store, self.clock, settle_seconds=0.0, seed=5)
        create_tenants(
            self.store,
            self.clock,
            [TenantSpec(name=NS, namespaces=(NS,), quota={"l40s": 16}, cohort=None)],
        )
        self.now = 1000.0
        self.settle()

    def settle(self) -> None:
        for _ in range(6):
            self.now += 1.0
            self.ctl.tick(self.now)

    def isvc(self, name: str = "chat") -> dict:
        return self.store.get(INFERENCE_SERVICE, NS, name)

    def predictor(self, name: str = "chat") -> dict:
        return self.isvc(name)["status"]["components"]["predictor"]

    def edit(self, change, name: str = "chat") -> None:
        obj = copy.deepcopy(self.isvc(name))
        change(obj["spec"]["predictor"])
        self.store.update(INFERENCE_SERVICE, obj, subresource="main")
        self.settle()

    def traffic(self, name: str = "chat") -> list[tuple[str, int, str | None]]:
        return [
            (t["revisionName"], t["percent"], t.get("tag")) for t in self.predictor(name)["traffic"]
        ]

    def running_pods(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for pod in self.store.list(POD, NS):
            if pod["status"].get("phase") == "Running" and pod["spec"].get("nodeName"):
                rev = pod["metadata"]["labels"][REVISION_LABEL]
                counts[rev] = counts.get(rev, 0) + 1
        return counts


def _node(name: str) -> dict:
    return {
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": L40S.product}},
        "spec": {},
        "status": {
            "capacity": {"nvidia.com/gpu": "8", "cpu": "64", "memory": "512Gi", "pods": "110"},
            "allocatable": {"nvidia.com/gpu": "8", "cpu": "62", "memory": "500Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def _spec(**kw: Any) -> InferenceServiceSpec:
    values: dict[str, Any] = {
        "namespace": NS,
        "name": "chat",
        "tenant": NS,
        "storage_uris": ("s3://models/chat/v1",),
        "gpu_product": L40S.product,
        "gpus": 1,
        "min_replicas": 2,
    }
    values.update(kw)
    return InferenceServiceSpec(**values)


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


def _condition(obj: dict, kind: str) -> str:
    return next(c["status"] for c in obj["status"]["conditions"] if c["type"] == kind)


def test_first_revision_rolls_out_with_all_traffic(cluster):
    cluster.store.create(
        INFERENCE_SERVICE, inference_service(cluster.clock, _spec(), "s3://models/chat/v1")
    )
    cluster.settle()
    pred = cluster.predictor()
    assert pred["latestCreatedRevision"] == "chat-predictor-00001"
    assert pred["latestReadyRevision"] == "chat-predictor-00001"
    assert pred["latestRolledoutRevision"] == "chat-predictor-00001"
    assert "previousRolledoutRevision" not in pred
    assert cluster.traffic() == [("chat-predictor-00001", 100, "latest")]
    status = cluster.isvc()["status"]
    assert status["url"] == f"http://chat.{NS}.example.com"
    assert status["address"]["url"] == f"http://chat.{NS}.svc.cluster.local"
    assert _condition(cluster.isvc(), "Ready") == "True"
    assert _condition(cluster.isvc(), "PredictorReady") == "True"
    pods = cluster.store.list(POD, NS)
    assert len(pods) == 2
    pod = pods[0]
    assert pod["metadata"]["name"].startswith("chat-predictor-00001-deployment-")
    assert pod["metadata"]["labels"]["serving.kserve.io/inferenceservice"] == "chat"
    assert pod["metadata"]["labels"]["component"] == "predictor"
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": L40S.product}
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    reasons = {e["reason"] for e in cluster.store.list(EVENT, NS)}
    assert {"Created", "InferenceServiceReady"} <= reasons


def test_canary_split_rollback_and_promote(cluster):
    cluster.store.create(
        INFERENCE_SERVICE, inference_service(cluster.clock, _spec(), "s3://models/chat/v1")
    )
    cluster.settle()

    def canary(p):
        p["model"]["storageUri"] = "s3://models/chat/v2"
        p["canaryTrafficPercent"] = 10

    cluster.edit(canary)
    pred = cluster.predictor()
    assert pred["latestCreatedRevision"] == "chat-predictor-00002"
    assert pred["latestReadyRevision"] == "chat-predictor-00002"
    assert pred["latestRolledoutRevision"] == "chat-predictor-00001"
    assert cluster.traffic() == [
        ("chat-predictor-00002", 10, "latest"),
        ("chat-predictor-00001", 90, "prev"),
    ]
    assert pred["traffic"][0]["latestRevision"] is True
    assert pred["traffic"][1]["latestRevision"] is False
    assert cluster.running_pods() == {"chat-predictor-00001": 2, "chat-predictor-00002": 2}

    cluster.edit(lambda p: p.update(canaryTrafficPercent=0))  # rollback: pin the previous
    assert cluster.traffic() == [
        ("chat-predictor-00002", 0, "latest"),
        ("chat-predictor-00001", 100, "prev"),
    ]
    assert cluster.predictor()["latestRolledoutRevision"] == "chat-predictor-00001"
    assert len(cluster.store.list(DEPLOYMENT, NS)) == 2  # no new revision for a traffic change

    cluster.edit(lambda p: p.pop("canaryTrafficPercent"))  # promote
    pred = cluster.predictor()
    assert cluster.traffic() == [("chat-predictor-00002", 100, "latest")]
    assert pred["latestRolledoutRevision"] == "chat-predictor-00002"
    assert pred["previousRolledoutRevision"] == "chat-predictor-00001"
    old = cluster.store.get(DEPLOYMENT, NS, "chat-predictor-00001-deployment")
    assert old["spec"]["replicas"] == 0
    assert cluster.running_pods() == {"chat-predictor-00002": 2}


def test_canary_of_100_promotes_like_no_canary(cluster):
    cluster.store.create(
        INFERENCE_SERVICE, inference_service(cluster.clock, _spec(), "s3://models/chat/v1")
    )
    cluster.settle()

    def full(p):
        p["model"]["storageUri"] = "s3://models/chat/v2"
        p["canaryTrafficPercent"] = 100

    cluster.edit(full)
    assert cluster.traffic() == [("chat-predictor-00002", 100, "latest")]
    assert cluster.predictor()["previousRolledoutRevision"] == "chat-predictor-00001"


def test_fleet_builder_makes_an_inference_service_mid_canary(cluster):
    spec = _spec(
        name="rank",
        storage_uris=("s3://m/rank/v1", "s3://m/rank/v2", "s3://m/rank/v3"),
        canary_percent=10,
        min_replicas=1,
    )
    create_inference_services(cluster.store, cluster.clock, [spec])
    cluster.settle()
    pred = cluster.predictor("rank")
    assert pred["latestCreatedRevision"] == "rank-predictor-00003"
    assert pred["latestRolledoutRevision"] == "rank-predictor-00002"
    assert pred["previousRolledoutRevision"] == "rank-predictor-00001"
    assert cluster.traffic("rank") == [
        ("rank-predictor-00003", 10, "latest"),
        ("rank-predictor-00002", 90, "prev"),
    ]
    assert cluster.isvc("rank")["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert cluster.running_pods() == {"rank-predictor-00002": 1, "rank-predictor-00003": 1}


def test_deleting_the_inference_service_removes_its_revisions(cluster):
    cluster.store.create(
        INFERENCE_SERVICE, inference_service(cluster.clock, _spec(), "s3://models/chat/v1")
    )
    cluster.settle()
    cluster.store.delete(INFERENCE_SERVICE, NS, "chat")
    cluster.settle()
    assert cluster.store.list(DEPLOYMENT, NS) == []
    assert cluster.store.list(POD, NS) == []


def test_a_revision_that_cannot_start_keeps_traffic_on_the_old_one(cluster):
    cluster.store.create(
        INFERENCE_SERVICE, inference_service(cluster.clock, _spec(), "s3://models/chat/v1")
    )
    cluster.settle()

    def too_big(p):
        p["model"]["storageUri"] = "s3://models/chat/v2"
        for key in ("requests", "limits"):
            p["model"]["resources"][key]["nvidia.com/gpu"] = "8"

    cluster.edit(too_big)  # 2 pods x 8 GPUs: only 14 of the 16 GPUs are free
    pred = cluster.predictor()
    assert pred["latestCreatedRevision"] == "chat-predictor-00002"
    assert pred["latestReadyRevision"] == "chat-predictor-00001"
    assert cluster.traffic() == [("chat-predictor-00001", 100, "latest")]
    isvc = cluster.isvc()
    assert _condition(isvc, "Ready") == "True"
    assert _condition(isvc, "LatestDeploymentReady") == "False"
    assert isvc["status"]["modelStatus"]["transitionStatus"] == "InProgress"


def test_scale_to_zero_predictor_is_ready_without_pods(cluster):
    spec = _spec(name="batch", min_replicas=0)
    cluster.store.create(
        INFERENCE_SERVICE, inference_service(cluster.clock, spec, "s3://models/batch/v1")
    )
    cluster.settle()
    assert cluster.traffic("batch") == [("batch-predictor-00001", 100, "latest")]
    assert _condition(cluster.isvc("batch"), "Ready") == "True"
    assert cluster.running_pods() == {}


def test_rollback_after_a_promotion_goes_to_the_revision_rolled_out_before(cluster):
    cluster.store.create(
        INFERENCE_SERVICE, inference_service(cluster.clock, _spec(), "s3://models/chat/v1")
    )
    cluster.settle()
    cluster.edit(lambda p: p["model"].update(storageUri="s3://models/chat/v2"))  # promoted at once
    pred = cluster.predictor()
    assert pred["latestRolledoutRevision"] == "chat-predictor-00002"
    assert pred["previousRolledoutRevision"] == "chat-predictor-00001"
    assert cluster.running_pods() == {"chat-predictor-00002": 2}

    cluster.edit(lambda p: p.update(canaryTrafficPercent=0))
    assert cluster.traffic() == [
        ("chat-predictor-00002", 0, "latest"),
        ("chat-predictor-00001", 100, "prev"),
    ]
    assert cluster.running_pods() == {"chat-predictor-00001": 2, "chat-predictor-00002": 2}
    assert _condition(cluster.isvc(), "Ready") == "True"

    cluster.edit(lambda p: p.pop("canaryTrafficPercent"))  # and forward again
    assert cluster.traffic() == [("chat-predictor-00002", 100, "latest")]
    assert cluster.predictor()["previousRolledoutRevision"] == "chat-predictor-00001"
