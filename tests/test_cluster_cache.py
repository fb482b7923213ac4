"""The list+watch cache against a real sandbox over HTTP, through the official client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from backend.cluster.cache import (
    ABSENT,
    KIND_SPECS,
    LISTED,
    WATCHED,
    CacheOptions,
    ClusterCache,
    KindSpec,
    _Expired,
    _KindWatcher,
)
from backend.cluster.kubeconfig import ClusterAccess, ClusterAccessError, load_cluster_access
from backend.cluster.slim import slim
from backend.sandbox.server import Sandbox
from backend.telemetry.discovery import auth_headers

FAST = CacheOptions(watch_timeout=5, backoff_initial=0.05, backoff_max=0.3, absent_retry=60)
DEADLINE = 10.0


async def eventually(predicate: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Poll until ``predicate`` holds (no timing assertion: the deadline only bounds a failure)."""
    end = time.monotonic() + deadline
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def gpu_pod(name: str, namespace: str = "team-a") -> client.V1Pod:
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": "llm"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
        },
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
            "containers": [
                {
                    "name": "server",
                    "image": "vllm:1",
                    "resources": {"limits": {"nvidia.com/gpu": "2"}},
                    "env": [{"name": "SECRET", "value": "not-kept"}],
                }
            ],
            "volumes": [{"name": "v", "emptyDir": {}}],
        },
    }
    return client.V1Pod.model_validate(manifest)


def namespace(name: str) -> client.V1Namespace:
    return client.V1Namespace(metadata=client.V1ObjectMeta(name=name))


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with Sandbox(fleet="empty", controllers=False, bookmark_seconds=0.5) as sb:
        yield sb


@pytest.fixture
def access(sandbox: Sandbox, tmp_path: Path) -> ClusterAccess:
    return load_cluster_access(sandbox.write_kubeconfig(tmp_path / "kubeconfig"))


@pytest.fixture
async def cache(access: ClusterAccess) -> AsyncIterator[ClusterCache]:
    c = ClusterCache(access, options=FAST)
    await c.start()
    assert await c.wait_synced(DEADLINE)
    yield c
    await c.stop()


def core(access: ClusterAccess) -> client.CoreV1Api:
    return client.CoreV1Api(access.api_client)


async def test_first_sync_lists_every_kind_and_slims(access: ClusterAccess) -> None:
    api = core(access)
    await asyncio.to_thread(api.create_namespace, namespace("team-a"))
    await asyncio.to_thread(api.create_namespaced_pod, "team-a", gpu_pod("p0"))
    c = ClusterCache(access, options=FAST)
    assert not c.synced
    await c.start()
    try:
        assert await c.wait_synced(DEADLINE)
        assert c.kind_states() == dict.fromkeys(WATCHED, LISTED)
        assert c.last_contact is not None and c.version > 0
        pod = c.objects("pods")[("team-a", "p0")]
        assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
        assert "managedFields" not in pod["metadata"]
        assert pod["metadata"]["labels"] == {"app": "llm"}
        assert pod["spec"]["containers"] == [
            {
                "name": "server",
                "image": "vllm:1",
                "resources": {"limits": {"nvidia.com/gpu": "2"}},
            }
        ]
        assert "volumes" not in pod["spec"]
        assert ("", "team-a") in c.objects("namespaces")
        await eventually(lambda: c.cluster_version is not None, "the cluster version")
        await eventually(lambda: c.live, "every watch stream open")
    finally:
        await c.stop()


async def test_changes_through_the_api_reach_the_cache(
    cache: ClusterCache, access: ClusterAccess
) -> None:
    api = core(access)
    await asyncio.to_thread(api.create_namespace, namespace("team-a"))
    await asyncio.to_thread(api.create_namespaced_pod, "team-a", gpu_pod("p1"))
    await eventually(lambda: ("team-a", "p1") in cache.objects("pods"), "the new pod")

    before = cache.version
    await asyncio.to_thread(
        api.patch_namespaced_pod, "p1", "team-a", {"metadata": {"labels": {"stage": "prod"}}}
    )
    await eventually(
        lambda: (
            cache.objects("pods")[("team-a", "p1")]["metadata"]["labels"].get("stage") == "prod"
        ),
        "the patched label",
    )
    assert cache.version > before
    assert ("pods", ("team-a", "p1")) in (cache.changes_since(before) or set())
    assert cache.changes_since(cache.version) == set()

    apps = client.AppsV1Api(access.api_client)
    deployment = {
        "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }
    body = client.V1Deployment.model_validate(deployment)
    await asyncio.to_thread(apps.create_namespaced_deployment, "team-a", body)
    await eventually(lambda: ("team-a", "web") in cache.objects("deployments"), "the deployment")

    before = cache.version
    await asyncio.to_thread(api.delete_namespaced_pod, "p1", "team-a")
    await eventually(lambda: ("team-a", "p1") not in cache.objects("pods"), "the deletion")
    assert ("pods", ("team-a", "p1")) in (cache.changes_since(before) or set())
    assert cache.changes_since(-1) is None  # from before the first lists: not known


async def test_bookmarks_keep_contact_fresh(cache: ClusterCache) -> None:
    first = cache.last_contact
    assert first is not None
    await eventually(
        lambda: cache.last_contact is not None and cache.last_contact > first, "a bookmark"
    )


async def test_expired_watch_relists(tmp_path: Path) -> None:
    # Watches end every second, so each resumes from its last resourceVersion; after a
    # compaction that version is too old: the server answers 410 and the cache must relist.
    # (No bookmarks here: they would move the version forward and avoid the 410.)
    sandbox = Sandbox(fleet="empty", controllers=False)
    await sandbox.start()
    access = load_cluster_access(sandbox.write_kubeconfig(tmp_path / "kubeconfig"))
    options = CacheOptions(watch_timeout=1, backoff_initial=0.05, backoff_max=0.3)
    c = ClusterCache(access, options=options)
    await c.start()
    try:
        assert await c.wait_synced(DEADLINE)
        api = core(access)
        await asyncio.to_thread(api.create_namespace, namespace("team-a"))
        await asyncio.to_thread(api.create_namespaced_pod, "team-a", gpu_pod("p2"))
        await eventually(lambda: ("team-a", "p2") in c.objects("pods"), "the pod")
        await asyncio.to_thread(api.create_namespace, namespace("team-b"))
        sandbox.store.compact()
        await eventually(lambda: c.watch_restarts >= 1, "a restart after 410")
        # Relisted, not emptied, and still following changes.
        assert ("team-a", "p2") in c.objects("pods")
        await asyncio.to_thread(api.delete_namespaced_pod, "p2", "team-a")
        await eventually(lambda: ("team-a", "p2") not in c.objects("pods"), "the deletion")
    finally:
        await c.stop()
        await sandbox.stop()


async def test_reconnects_after_the_server_restarts(tmp_path: Path) -> None:
    first = Sandbox(fleet="empty", controllers=False)
    await first.start()
    port = int(first.url.rsplit(":", 1)[1])
    access = load_cluster_access(first.write_kubeconfig(tmp_path / "kubeconfig"))
    await asyncio.to_thread(core(access).create_namespace, namespace("old-team"))
    c = ClusterCache(access, options=FAST)
    await c.start()
    second: Sandbox | None = None
    try:
        assert await c.wait_synced(DEADLINE)
        assert ("", "old-team") in c.objects("namespaces")
        await first.stop()
        await eventually(lambda: c.watch_restarts >= 1, "a failed reconnect being counted")
        assert not c.live
        # A new server (new storage) on the same address: the cache relists from scratch.
        second = Sandbox(fleet="empty", controllers=False, port=port)
        await second.start()
        await asyncio.to_thread(core(access).create_namespace, namespace("new-team"))
        await eventually(
            lambda: (
                ("", "new-team") in c.objects("namespaces")
                and ("", "old-team") not in c.objects("namespaces")
            ),
            "the new server's objects",
        )
        await eventually(lambda: c.live, "watch streams open again")
    finally:
        await c.stop()
        if second is not None:
            await second.stop()


async def test_absent_apis_are_marked_and_do_not_block_sync(access: ClusterAccess) -> None:
    missing = KindSpec("widgets", "Widget", "widgets.example.invalid", ("v1",))
    older = KindSpec("clusterqueues", "ClusterQueue", "kueue.x-k8s.io", ("v1beta9", "v1beta2"))
    c = ClusterCache(access, kinds=("namespaces", missing, older), options=FAST)
    await c.start()
    try:
        assert await c.wait_synced(DEADLINE)
        states = c.kind_states()
        assert states["widgets"] == ABSENT
        assert states["clusterqueues"] == LISTED  # fell back to the served version
        assert c.objects("widgets") == {}
        assert c.pending_kinds() == []
    finally:
        await c.stop()


def test_slim_keeps_only_what_the_model_reads() -> None:
    node = {
        "metadata": {"name": "n1", "managedFields": [{}], "labels": {"a": "b"}},
        "status": {"images": [{"names": ["x"]}], "capacity": {"nvidia.com/gpu": "8"}},
    }
    slimmed = slim(node, "v1", "Node")
    assert slimmed == {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1", "labels": {"a": "b"}},
        "status": {"capacity": {"nvidia.com/gpu": "8"}},
    }
    event = {
        "metadata": {"name": "e1", "namespace": "ns"},
        "involvedObject": {"kind": "Pod", "name": "p"},
        "reason": "FailedScheduling",
        "message": "0/8 nodes are available",
    }
    assert slim(event, "v1", "Event")["reason"] == "FailedScheduling"
    pod = slim(
        {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "command": ["x"]}], "tolerations": []},
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {"name": "c", "ready": True, "restartCount": 2, "imageID": "x"}
                ],
                "hostIP": "10.0.0.1",
            },
        },
        "v1",
        "Pod",
    )
    assert pod["spec"] == {"containers": [{"name": "c"}]}
    assert pod["status"] == {
        "phase": "Running",
        "containerStatuses": [{"name": "c", "ready": True, "restartCount": 2}],
    }


# -- finding the cluster, as kubectl does ------------------------------------------------------


def _kubeconfig(path: Path, name: str, server: str, current: str | None) -> Path:
    config: dict = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server}}],
        "users": [{"name": name, "user": {"token": f"token-{name}"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
    }
    if current:
        config["current-context"] = current
    path.write_text(yaml.safe_dump(config))
    return path


def test_kubeconfig_list_is_merged_and_the_first_current_context_wins(tmp_path: Path) -> None:
    first = _kubeconfig(tmp_path / "a.yaml", "a", "http://127.0.0.1:1", "a")
    second = _kubeconfig(tmp_path / "b.yaml", "b", "http://127.0.0.1:2", "b")
    env = {"KUBECONFIG": f"{tmp_path / 'missing.yaml'}:{first}:{second}"}
    access = load_cluster_access(environ=env)
    assert (access.context, access.server) == ("a", "http://127.0.0.1:1")
    assert auth_headers(access.api_client) == {"authorization": "Bearer token-a"}
    other = load_cluster_access(context="b", environ=env)
    assert (other.context, other.server) == ("b", "http://127.0.0.1:2")
    explicit = load_cluster_access(kubeconfig=second, environ=env)
    assert explicit.context == "b"


def test_kubeconfig_errors_are_sentences(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ClusterAccessError, match="does not exist"):
        load_cluster_access(kubeconfig=tmp_path / "nope.yaml", environ={})
    with pytest.raises(ClusterAccessError, match="no Kubernetes cluster configured"):
        load_cluster_access(environ={})
    config = _kubeconfig(tmp_path / "c.yaml", "c", "http://127.0.0.1:3", None)
    with pytest.raises(ClusterAccessError, match="no current-context"):
        load_cluster_access(kubeconfig=config, environ={})
    with pytest.raises(ClusterAccessError, match="'missing'"):
        load_cluster_access(kubeconfig=config, context="missing", environ={})


def test_an_expired_error_event_means_relist() -> None:
    # Inside an open watch, 410 arrives as an ERROR event whose object is a Status.
    api_client = client.ApiClient(client.Configuration(host="http://127.0.0.1:9"))
    access = ClusterAccess(api_client, "http://127.0.0.1:9", None, "test")
    watcher = _KindWatcher(ClusterCache(access, kinds=("pods",)), KIND_SPECS["pods"])
    status = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
    with pytest.raises(_Expired):
        watcher._handle({"type": "ERROR", "object": status})
    with pytest.raises(RuntimeError, match="watch error"):
        watcher._handle({"type": "ERROR", "object": {**status, "code": 500}})
    bookmark = {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "42"}}}
    assert watcher._handle(bookmark) == "42"
