"""The sandbox fleets: the demo fleet's shape, determinism for a seed, the large fleet's size."""

from __future__ import annotations

import copy
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from backend.conventions import GPU_PRODUCT_LABEL, ISVC_LABEL, MODEL_LABEL, TENANT_LABEL
from backend.k8s.annotations import CHANGE_CAUSE_ANNOTATION, REVISION_ANNOTATION
from backend.sandbox.clock import Clock
from backend.sandbox.controllers import Controllers
from backend.sandbox.controllers.base import gpu_request
from backend.sandbox.controllers.deployments import revision_of
from backend.sandbox.decoding import STRICT, decode_body
from backend.sandbox.defaults import apply_defaults
from backend.sandbox.fleet import build_fleet
from backend.sandbox.store import (
    DEPLOYMENT,
    EVENT,
    INFERENCE_SERVICE,
    JOB,
    NAMESPACE,
    NODE,
    POD,
    REPLICA_SET,
    RESOURCE_TYPES,
    REVIEWS,
    WORKLOAD,
    Store,
)
from backend.sandbox.validation import validate

FROZEN = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _build(fleet: str, seed: int = 1) -> tuple[Store, Controllers]:
    clock = Clock(frozen=FROZEN)
    store = Store(clock=clock.rfc3339)
    controllers = Controllers(store, clock, 3.0, seed)  # as the Sandbox does: controllers first
    build_fleet(store, fleet, seed, clock)
    controllers.reconcile_all()
    return store, controllers


@pytest.fixture(scope="module")
def demo() -> tuple[Store, Controllers]:
    return _build("demo")


def _owned_replica_sets(store: Store, deploy: dict) -> list[dict]:
    uid = deploy["metadata"]["uid"]
    return [
        rs
        for rs in store.list(REPLICA_SET, deploy["metadata"]["namespace"])
        if any(r.get("uid") == uid for r in rs["metadata"].get("ownerReferences") or ())
    ]


def _model_releases(store: Store) -> list[dict]:
    """Deployments that are model releases (not KServe's own predictor Deployments)."""
    return [
        d
        for d in store.list(DEPLOYMENT)
        if MODEL_LABEL in (d["metadata"].get("labels") or {})
        and ISVC_LABEL not in (d["metadata"].get("labels") or {})
    ]


def test_demo_nodes(demo: tuple[Store, Controllers]) -> None:
    store, _ = demo
    nodes = store.list(NODE)
    assert len(nodes) == 12
    models = Counter(n["metadata"]["labels"][GPU_PRODUCT_LABEL] for n in nodes)
    assert set(models) == {"NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB", "NVIDIA-L40S"}
    for node in nodes:
        labels = node["metadata"]["labels"]
        assert labels["nvidia.com/gpu.count"] == "8"
        assert labels["kubernetes.io/hostname"] == node["metadata"]["name"]
        assert int(labels["nvidia.com/gpu.memory"]) > 40_000
        assert node["status"]["capacity"]["nvidia.com/gpu"] == "8"
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert sum(1 for n in nodes if n["spec"].get("unschedulable")) == 1
    not_ready = [
        n
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] != "True" for c in n["status"]["conditions"])
    ]
    assert len(not_ready) == 1


def test_demo_tenants_and_exporters(demo: tuple[Store, Controllers]) -> None:
    store, _ = demo
    tenants = {
        ns["metadata"]["labels"][TENANT_LABEL]
        for ns in store.list(NAMESPACE)
        if TENANT_LABEL in (ns["metadata"].get("labels") or {})
    }
    assert len(tenants) >= 6
    exporters = [
        p
        for p in store.list(POD, "gpu-operator")
        if p["metadata"]["labels"].get("app") == "nvidia-dcgm-exporter"
    ]
    assert sorted(p["spec"]["nodeName"] for p in exporters) == sorted(
        n["metadata"]["name"] for n in store.list(NODE)
    )
    assert all(p["status"]["phase"] == "Running" and p["status"]["podIP"] for p in exporters)


def test_demo_workloads(demo: tuple[Store, Controllers]) -> None:
    store, controllers = demo
    releases = _model_releases(store)
    others = [
        d
        for d in store.list(DEPLOYMENT)
        if not {MODEL_LABEL, ISVC_LABEL} & set(d["metadata"].get("labels") or {})
    ]
    workloads = len(releases) + len(others) + store.count(JOB) + store.count(INFERENCE_SERVICE)
    assert 45 <= workloads <= 80
    assert len(releases) >= 12
    stages = Counter(d["metadata"]["labels"]["opsconsole.io/stage"] for d in releases)
    assert set(stages) == {"production", "staging"}
    assert any("kueue.x-k8s.io/queue-name" in d["metadata"]["labels"] for d in releases)
    for deploy in releases:
        owned = _owned_replica_sets(store, deploy)
        assert 3 <= len(owned) <= 5, deploy["metadata"]["name"]
        top = max(revision_of(rs) for rs in owned)
        assert deploy["metadata"]["annotations"][REVISION_ANNOTATION] == str(top)
        assert all(rs["metadata"]["annotations"].get(CHANGE_CAUSE_ANNOTATION) for rs in owned)
    # Several ReplicaSets of a Deployment were created at different times (a real history).
    created = {
        rs["metadata"]["creationTimestamp"] for rs in _owned_replica_sets(store, releases[0])
    }
    assert len(created) >= 2
    # Most GPUs of the ready, schedulable nodes are in use.
    used = sum(len(controllers.allocator.pods_on(n["metadata"]["name"])) for n in store.list(NODE))
    assert used >= 40


def test_demo_paused_and_pending(demo: tuple[Store, Controllers]) -> None:
    store, _ = demo
    paused = [d for d in store.list(DEPLOYMENT) if d["spec"].get("paused")]
    assert len(paused) == 1
    progressing = {c["type"]: c for c in paused[0]["status"]["conditions"]}["Progressing"]
    assert progressing["reason"] == "DeploymentPaused"
    # Workloads waiting for quota: Kueue Workloads not admitted, or ResourceQuota refusals.
    waiting = [
        w
        for w in store.list(WORKLOAD)
        if not any(
            c["type"] == "Admitted" and c["status"] == "True"
            for c in (w.get("status") or {}).get("conditions") or ()
        )
    ]
    refused = [e for e in store.list(EVENT) if e["reason"] == "FailedCreate"]
    assert waiting and refused
    jobs = store.list(JOB)
    completed = [j for j in jobs if (j.get("status") or {}).get("completionTime")]
    running = [j for j in jobs if (j.get("status") or {}).get("active")]
    assert completed and running
    gpu_pods = [p for p in store.list(POD) if gpu_request(p["spec"])]
    assert all(p["spec"].get("nodeName") or p["status"]["phase"] == "Pending" for p in gpu_pods)


def test_demo_is_deterministic_for_a_seed() -> None:
    def fingerprint(store: Store) -> list[tuple]:
        rows = []
        for rt in (POD, REPLICA_SET, DEPLOYMENT, JOB, NODE):
            for obj in store.list(rt):
                meta = obj["metadata"]
                rows.append(
                    (
                        rt.kind,
                        meta.get("namespace"),
                        meta["name"],
                        (meta.get("annotations") or {}).get(REVISION_ANNOTATION),
                        obj.get("spec", {}).get("nodeName"),
                    )
                )
        return rows

    first, _ = _build("demo", seed=5)
    second, _ = _build("demo", seed=5)
    other, _ = _build("demo", seed=6)
    assert fingerprint(first) == fingerprint(second)
    assert fingerprint(first) != fingerprint(other)


def test_empty_fleet_is_empty() -> None:
    store, _ = _build("empty")
    assert store.count(NODE) == 0 and store.count(POD) == 0


def test_unknown_fleet_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fleet"):
        build_fleet(Store(), "huge", 1, Clock())


@pytest.fixture(scope="module")
def large() -> tuple[Store, Controllers]:
    return _build("large")


def test_large_fleet_counts(large: tuple[Store, Controllers]) -> None:
    store, controllers = large
    nodes = store.list(NODE)
    assert len(nodes) == 1000
    assert sum(int(n["status"]["capacity"]["nvidia.com/gpu"]) for n in nodes) == 8000
    tenants = {
        ns["metadata"]["labels"][TENANT_LABEL]
        for ns in store.list(NAMESPACE)
        if TENANT_LABEL in (ns["metadata"].get("labels") or {})
    }
    assert len(tenants) == 200
    pods = store.list(POD)
    assert len(pods) >= 20_000
    used = sum(len(controllers.allocator.pods_on(n["metadata"]["name"])) for n in nodes)
    assert used >= 6_000
    assert any(p["status"]["phase"] == "Pending" for p in pods)
    assert sum(1 for p in pods if not gpu_request(p["spec"])) >= 10_000


def test_frozen_demo_stays_still(demo: tuple[Store, Controllers]) -> None:
    """With a frozen clock nothing moves after the build: snapshot tests rely on it."""
    store, controllers = demo
    before = store.resource_version
    for step in range(20):
        controllers.tick(time.monotonic() + step * 0.5)
    assert store.resource_version == before


@pytest.mark.parametrize("fleet", ["demo", "large"])
def test_every_fleet_object_is_one_the_api_server_would_store(
    fleet: str, request: pytest.FixtureRequest
) -> None:
    """Each object decodes strictly, passes validation and already carries its defaults, as
    if written through the API: a client's write of it back (a patch of one field) then
    changes nothing else, and a controller sees no new pod template."""
    store, _ = request.getfixturevalue(fleet)
    for rt in RESOURCE_TYPES:
        if rt in REVIEWS:
            continue
        for obj in store.list(rt):
            written = copy.deepcopy(obj)
            assert decode_body(rt, written, STRICT) == []
            apply_defaults(rt, written)
            validate(rt, written)
            assert written == obj, f"{rt.kind} {obj['metadata']['name']} lacks defaults"
