"""The product's rollback against the real ``kubectl rollout undo``.

Two identical Deployments (same name, same history, in two namespaces of one sandbox) are rolled
back, one by kubectl and one by the product's patch sent with the official kubernetes client; the
resulting Deployments and ReplicaSets must agree field for field, and kubectl's reports and
refusals must be the product's, word for word.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from backend.k8s.annotations import CHANGE_CAUSE_ANNOTATION, LAST_APPLIED_ANNOTATION
from backend.k8s.rollout import RollbackError, plan_undo, with_resource_version
from tests.support.sandbox import SandboxThread

KUBECTL = shutil.which("kubectl")
if KUBECTL is None and os.environ.get("CI"):
    raise RuntimeError("kubectl is not installed: CI must install it (.ci/run does)")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

BY_KUBECTL, BY_PRODUCT = "via-kubectl", "via-product"
# Fields that differ between any two objects (identity, timing) or that a real API server does
# not store as written (an empty field is no field in its typed objects).
IGNORED = frozenset(
    {"uid", "resourceVersion", "creationTimestamp", "namespace", "managedFields"}
    | {"lastTransitionTime", "lastUpdateTime"}
)


class Cluster:
    """A sandbox with the same Deployment history in two namespaces."""

    def __init__(self, running: SandboxThread) -> None:
        self.running = running
        self.client = running.api_client()
        self.apps = kubernetes.client.AppsV1Api(self.client)
        self.core = kubernetes.client.CoreV1Api(self.client)

    def settle(self) -> None:
        self.running.settle()

    def release(self, namespace: str, image: str, annotations: dict[str, str]) -> None:
        """Create the Deployment or change its image, as an operator would."""
        body = {
            "metadata": {"name": "web", "annotations": annotations},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "server", "image": image}]},
                },
            },
        }
        if self.apps.list_namespaced_deployment(namespace).items:
            self.apps.patch_namespaced_deployment("web", namespace, body)
        else:
            self.apps.create_namespaced_deployment(
                namespace, kubernetes.client.V1Deployment.model_validate(body)
            )
        self.settle()

    def both(self, image: str, annotations: dict[str, str]) -> None:
        for namespace in (BY_KUBECTL, BY_PRODUCT):
            self.release(namespace, image, annotations)

    def read(self, namespace: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The Deployment and every ReplicaSet of the namespace, as plain JSON."""
        deploy = self.apps.read_namespaced_deployment("web", namespace)
        sets = self.apps.list_namespaced_replica_set(namespace).items
        return self.client.sanitize_for_serialization((deploy, sets))

    def kubectl_undo(self, *args: str) -> str:
        """``kubectl rollout undo``'s report, or its error message."""
        command = [KUBECTL or "kubectl", "--kubeconfig", str(self.running.kubeconfig_path)]
        command += ["-n", BY_KUBECTL, "rollout", "undo", "deployment/web", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        self.settle()
        if done.returncode:
            return done.stderr.strip().removeprefix("error: ")
        return done.stdout.strip()

    def product_undo(self, to_revision: int = 0) -> str:
        """The product's undo: its patch, conditional on the Deployment just read."""
        deploy, sets = self.read(BY_PRODUCT)
        try:
            undo = plan_undo(deploy, sets, to_revision)
        except RollbackError as err:
            return str(err)
        if undo.patch is not None:
            patch = with_resource_version(undo.patch, deploy["metadata"]["resourceVersion"])
            self.apps.patch_namespaced_deployment("web", BY_PRODUCT, patch)
            self.settle()
        return f"deployment.apps/web {undo.message}"

    def assert_same(self) -> None:
        kubectl_side, product_side = self.read(BY_KUBECTL), self.read(BY_PRODUCT)
        assert comparable(product_side) == comparable(kubectl_side)


def comparable(value: Any) -> Any:
    """``value`` without the ignored fields and empty ones; ReplicaSets sorted by name."""
    if isinstance(value, dict):
        pruned = {k: comparable(v) for k, v in value.items() if k not in IGNORED}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list | tuple):
        items = [comparable(v) for v in value]
        if all(isinstance(v, dict) and "metadata" in v for v in items):
            items.sort(key=lambda v: v["metadata"]["name"])
        return items
    return value


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    path = tmp_path_factory.mktemp("kubectl") / "kubeconfig"
    running = SandboxThread(path, fleet="empty", settle_seconds=0.0)
    try:
        cluster = Cluster(running)
        for namespace in (BY_KUBECTL, BY_PRODUCT):
            meta = kubernetes.client.V1ObjectMeta(name=namespace)
            cluster.core.create_namespace(kubernetes.client.V1Namespace(metadata=meta))
        yield cluster
    finally:
        running.close()


def test_undo_agrees_with_kubectl(cluster: Cluster) -> None:
    """One ordered story: refusals and skips before and after each real rollback."""
    cluster.both("vllm:0.5", {CHANGE_CAUSE_ANNOTATION: "first", "team": "inference"})
    expect_same(cluster, "no rollout history found")

    cluster.both(
        "vllm:0.6",
        {CHANGE_CAUSE_ANNOTATION: "second", "extra": "b", LAST_APPLIED_ANNOTATION: "{}"},
    )
    cluster.both("vllm:0.7", {CHANGE_CAUSE_ANNOTATION: "third"})
    cluster.assert_same()

    expect_same(cluster, "unable to find specified revision 9 in history", 9)
    expect_same(cluster, "skipped rollback (current template already matches revision 3)", 3)

    expect_same(cluster, "deployment.apps/web rolled back")  # back to revision 2
    cluster.assert_same()
    expect_same(cluster, "deployment.apps/web rolled back", 1)
    cluster.assert_same()

    for namespace in (BY_KUBECTL, BY_PRODUCT):
        cluster.apps.patch_namespaced_deployment("web", namespace, {"spec": {"paused": True}})
    cluster.settle()
    expect_same(cluster, "you cannot rollback a paused deployment", 3)
    cluster.assert_same()


def expect_same(cluster: Cluster, expected: str, to_revision: int = 0) -> None:
    """kubectl and the product report the same thing, which contains ``expected``."""
    args = [f"--to-revision={to_revision}"] if to_revision else []
    by_kubectl = cluster.kubectl_undo(*args)
    assert expected in by_kubectl
    assert cluster.product_undo(to_revision) == by_kubectl
