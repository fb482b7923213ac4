"""The sandbox's Kubernetes API through the official client (sync and asyncio), over real HTTP."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import urlsplit

import kubernetes
import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from kubernetes.watch import Watch

from backend.k8s.selectors import match_label_selector
from backend.sandbox.patch import json_patch, merge_patch, strategic_merge_patch
from backend.sandbox.selectors import parse_field_selector, parse_label_selector
from backend.sandbox.store import NAMESPACE, ApiError, Store
from backend.sandbox.tables import human_duration
from tests.support.sandbox import ADMIN_HEADERS, SandboxThread, kube, sandbox_thread, tls_context

__all__ = ["kube", "sandbox_thread"]  # fixtures, imported for pytest

KUEUE = ("kueue.x-k8s.io", "v1beta2")
KSERVE = ("serving.kserve.io", "v1beta1")


def status_of(exc: ApiException) -> dict[str, Any]:
    """The ``Status`` body of a failed call, checked to be one."""
    assert exc.body is not None
    body = json.loads(exc.body)
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


def make_namespace(api: k8s.ApiClient, name: str) -> str:
    k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    return name


def pod_manifest(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "main", "image": "registry.local/app:1"}], **spec},
    }


def pod_body(name: str, labels: dict[str, str] | None = None, **spec: Any) -> k8s.V1Pod:
    """``pod_manifest`` as the client's model (the client turns a dict body into it anyway)."""
    return k8s.V1Pod.model_validate(pod_manifest(name, labels, **spec))


def deployment_body(
    name: str, replicas: int = 2, labels: dict[str, str] | None = None
) -> k8s.V1Deployment:
    labels = labels or {"app": name}
    manifest = {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "registry.local/server:1",
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        },
                        {"name": "sidecar", "image": "registry.local/sidecar:1"},
                    ]
                },
            },
        },
    }
    return k8s.V1Deployment.model_validate(manifest)


class Meta(Protocol):
    @property
    def name(self) -> str | None: ...


class Named(Protocol):
    """An object of the typed clients (which declare every field optional)."""

    @property
    def metadata(self) -> Meta | None: ...


def names_of(objects: Iterable[Named]) -> list[str]:
    """The names of listed objects, in order; each must have one."""
    names = []
    for obj in objects:
        assert obj.metadata is not None and obj.metadata.name is not None
        names.append(obj.metadata.name)
    return names


def pod_spec(deploy: k8s.V1Deployment) -> k8s.V1PodSpec:
    """A Deployment's pod template spec (every stored Deployment has one)."""
    assert deploy.spec is not None and deploy.spec.template.spec is not None
    return deploy.spec.template.spec


def list_version(core: k8s.CoreV1Api, ns: str) -> str | None:
    """The resourceVersion of a list of the namespace's pods: where a watch from now starts."""
    listed = core.list_namespaced_pod(ns)
    assert listed.metadata is not None
    return listed.metadata.resource_version


def http_get(url: str) -> tuple[int, str, bytes]:
    """GET with the admin's token."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=ADMIN_HEADERS), timeout=10, context=tls_context()
        ) as resp:
            return resp.status, resp.headers.get("content-type", ""), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("content-type", ""), err.read()


# -- discovery -----------------------------------------------------------------------------------


def test_discovery(kube: k8s.ApiClient, sandbox_thread: SandboxThread) -> None:
    assert k8s.VersionApi(kube).get_code().git_version == "v1.31.4"
    assert k8s.CoreApi(kube).get_api_versions().versions == ["v1"]
    core = {r.name: r for r in k8s.CoreV1Api(kube).get_api_resources().resources}
    assert core["pods"].namespaced and core["pods"].kind == "Pod"
    assert core["pods"].short_names == ["po"] and core["pods"].singular_name == "pod"
    assert "watch" in core["pods"].verbs
    assert not core["nodes"].namespaced
    assert "pods/status" in core and "pods/proxy" in core
    groups = {g.name: g for g in k8s.ApisApi(kube).get_api_versions().groups}
    preferred = groups["kueue.x-k8s.io"].preferred_version
    assert preferred is not None and preferred.version == "v1beta2"
    assert set(groups) >= {"apps", "batch", "serving.kserve.io"}
    apps = {r.name: r for r in k8s.AppsV1Api(kube).get_api_resources().resources}
    assert apps["deployments"].kind == "Deployment" and apps["deployments"].short_names == [
        "deploy"
    ]
    status, _, body = http_get(f"{sandbox_thread.url}/apis/kueue.x-k8s.io/v1beta2")
    kinds = {r["kind"] for r in json.loads(body)["resources"]}
    assert status == 200 and {"ClusterQueue", "LocalQueue", "Workload"} <= kinds
    # kubectl reads /openapi/v3 to learn that the server validates fields (fieldValidation).
    index = json.loads(http_get(f"{sandbox_thread.url}/openapi/v3")[2])
    doc_url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    doc = json.loads(http_get(sandbox_thread.url + doc_url)[2])
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    for probe in ("/healthz", "/readyz", "/livez"):
        assert http_get(sandbox_thread.url + probe)[0] == 200


def test_unknown_paths_and_methods_answer_status(sandbox_thread: SandboxThread) -> None:
    for path in ("/api/v1/widgets", "/apis/example.com/v1/things", "/nope"):
        status, ctype, body = http_get(sandbox_thread.url + path)
        assert status == 404 and ctype.startswith("application/json")
        assert json.loads(body)["reason"] == "NotFound"
    request = urllib.request.Request(
        f"{sandbox_thread.url}/api/v1/namespaces/default/pods/x",
        data=b"{}",
        method="POST",
        headers={**ADMIN_HEADERS, "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10, context=tls_context())
    assert err.value.code == 405
    assert json.loads(err.value.read())["reason"] == "MethodNotAllowed"


# -- CRUD ----------------------------------------------------------------------------------------


def test_core_crud(kube: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(kube)
    ns = make_namespace(kube, "crud")
    created = core.create_namespaced_pod(ns, pod_body("web-0", {"app": "web"}))
    meta = created.metadata
    assert meta is not None and created.status is not None
    assert meta.uid and meta.resource_version and meta.creation_timestamp
    assert meta.namespace == ns and created.status.phase == "Pending"
    got = core.read_namespaced_pod("web-0", ns)
    assert got.metadata is not None and got.metadata.uid == meta.uid

    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(ns, pod_body("web-0"))
    body = status_of(err.value)
    assert err.value.status == 409 and body["reason"] == "AlreadyExists"
    assert body["message"] == 'pods "web-0" already exists'
    assert body["details"] == {"name": "web-0", "group": "", "kind": "pods"}

    replaced = core.replace_namespaced_pod("web-0", ns, pod_body("web-0", {"app": "web", "v": "2"}))
    assert replaced.metadata is not None and replaced.metadata.labels is not None
    assert replaced.metadata.labels["v"] == "2"
    assert replaced.metadata.resource_version is not None
    assert int(replaced.metadata.resource_version) > int(meta.resource_version)
    assert replaced.metadata.uid == meta.uid

    deleted = core.delete_namespaced_pod("web-0", ns)
    assert deleted.metadata is not None and deleted.metadata.name == "web-0"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("web-0", ns)
    body = status_of(err.value)
    assert err.value.status == 404 and body["message"] == 'pods "web-0" not found'

    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("no-such-namespace", pod_body("x"))
    assert err.value.status == 404
    assert status_of(err.value)["message"] == 'namespaces "no-such-namespace" not found'


def test_namespace_in_body_must_match_path(kube: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(kube)
    ns = make_namespace(kube, "mismatch")
    body = pod_manifest("p")
    body["metadata"]["namespace"] = "default"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(ns, k8s.V1Pod.model_validate(body))
    assert err.value.status == 400 and status_of(err.value)["reason"] == "BadRequest"


def test_generate_name_and_dry_run(kube: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(kube)
    ns = make_namespace(kube, "gen")
    body = pod_manifest("")
    body["metadata"] = {"generateName": "worker-"}
    pod = core.create_namespaced_pod(ns, k8s.V1Pod.model_validate(body))
    assert pod.metadata is not None and pod.metadata.name is not None
    assert pod.metadata.name.startswith("worker-") and len(pod.metadata.name) == 12
    dry = core.create_namespaced_pod(ns, pod_body("ghost"), dry_run="All")
    assert dry.metadata is not None and dry.metadata.name == "ghost"
    assert names_of(core.list_namespaced_pod(ns).items) == [pod.metadata.name]


def test_apps_and_batch_crud(kube: k8s.ApiClient) -> None:
    apps, batch = k8s.AppsV1Api(kube), k8s.BatchV1Api(kube)
    ns = make_namespace(kube, "workloads")
    dep = apps.create_namespaced_deployment(ns, deployment_body("llm"))
    assert dep.metadata is not None and dep.spec is not None
    assert dep.metadata.generation == 1 and dep.spec.replicas == 2
    dep.spec.replicas = 3
    dep = apps.replace_namespaced_deployment("llm", ns, dep)
    assert dep.metadata is not None and dep.spec is not None
    assert dep.spec.replicas == 3 and dep.metadata.generation == 2
    assert names_of(apps.list_namespaced_deployment(ns).items) == ["llm"]
    deleted = apps.delete_namespaced_deployment("llm", ns)
    assert isinstance(deleted, dict) and deleted["metadata"]["name"] == "llm"

    job = {
        "metadata": {"name": "train"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "t", "image": "registry.local/train:1"}],
                }
            }
        },
    }
    created = batch.create_namespaced_job(ns, k8s.V1Job.model_validate(job))
    assert created.kind == "Job" and created.api_version == "batch/v1"
    assert created.metadata is not None
    read = batch.read_namespaced_job("train", ns)
    assert read.metadata is not None and read.metadata.uid == created.metadata.uid
    assert names_of(batch.list_job_for_all_namespaces().items) == ["train"]


def test_custom_objects(kube: k8s.ApiClient) -> None:
    custom = k8s.CustomObjectsApi(kube)
    ns = make_namespace(kube, "team-a")
    cq = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": "team-a", "labels": {"opsconsole.io/tenant": "team-a"}},
        "spec": {
            "cohortName": "gpus",
            "resourceGroups": [
                {
                    "coveredResources": ["nvidia.com/gpu"],
                    "flavors": [
                        {
                            "name": "h100",
                            "resources": [{"name": "nvidia.com/gpu", "nominalQuota": 8}],
                        }
                    ],
                }
            ],
        },
    }
    created = custom.create_cluster_custom_object(*KUEUE, "clusterqueues", cq)
    assert isinstance(created, dict)
    assert created["metadata"]["uid"] and "namespace" not in created["metadata"]
    patched = custom.patch_cluster_custom_object(
        *KUEUE, "clusterqueues", "team-a", {"metadata": {"labels": {"tier": "gold"}}}
    )
    assert isinstance(patched, dict)
    assert patched["metadata"]["labels"] == {"opsconsole.io/tenant": "team-a", "tier": "gold"}
    listed = custom.list_cluster_custom_object(*KUEUE, "clusterqueues", label_selector="tier=gold")
    assert isinstance(listed, dict)
    assert [o["metadata"]["name"] for o in listed["items"]] == ["team-a"]
    assert listed["kind"] == "ClusterQueueList"

    lq = {"metadata": {"name": "default"}, "spec": {"clusterQueue": "team-a"}}
    custom.create_namespaced_custom_object(*KUEUE, ns, "localqueues", lq)
    got = custom.get_namespaced_custom_object(*KUEUE, ns, "localqueues", "default")
    assert isinstance(got, dict)
    assert got["kind"] == "LocalQueue" and got["metadata"]["namespace"] == ns

    isvc = {
        "metadata": {"name": "chat"},
        "spec": {
            "predictor": {"canaryTrafficPercent": 10, "model": {"modelFormat": {"name": "x"}}}
        },
    }
    custom.create_namespaced_custom_object(*KSERVE, ns, "inferenceservices", isvc)
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(
            *KSERVE,
            ns,
            "inferenceservices",
            "chat",
            {"spec": {"predictor": {"canaryTrafficPercent": 150}}},
        )
    body = status_of(err.value)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.predictor.canaryTrafficPercent"
    # Custom resources take no strategic merge patch, as on a real cluster.
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(
            *KSERVE,
            ns,
            "inferenceservices",
            "chat",
            {"metadata": {"labels": {"a": "b"}}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert err.value.status == 415
    deleted = custom.delete_namespaced_custom_object(*KSERVE, ns, "inferenceservices", "chat")
    assert isinstance(deleted, dict) and deleted["metadata"]["name"] == "chat"


# -- validation ----------------------------------------------------------------------------------


def test_invalid_objects_are_422(kube: k8s.ApiClient) -> None:
    apps, core = k8s.AppsV1Api(kube), k8s.CoreV1Api(kube)
    custom = k8s.CustomObjectsApi(kube)
    ns = make_namespace(kube, "invalid")
    cases: list[tuple[Any, str]] = [
        (lambda: core.create_namespaced_pod(ns, pod_body("Bad_Name")), "metadata.name"),
        (
            lambda: apps.create_namespaced_deployment(ns, deployment_body("neg", -1)),
            "spec.replicas",
        ),
        (
            lambda: apps.create_namespaced_deployment(ns, deployment_body("sel", 1, {"app": "x"})),
            "spec.template.metadata.labels",
        ),
        (
            lambda: custom.create_cluster_custom_object(
                *KUEUE,
                "clusterqueues",
                {
                    "metadata": {"name": "neg"},
                    "spec": {
                        "resourceGroups": [
                            {
                                "flavors": [
                                    {
                                        "name": "f",
                                        "resources": [
                                            {"name": "nvidia.com/gpu", "nominalQuota": "-2"}
                                        ],
                                    }
                                ]
                            }
                        ]
                    },
                },
            ),
            "spec.resourceGroups[0].flavors[0].resources[0].nominalQuota",
        ),
    ]
    for call, field in cases:
        with pytest.raises(ApiException) as err:
            call()
        body = status_of(err.value)
        assert err.value.status == 422 and body["reason"] == "Invalid"
        assert body["details"]["causes"][0]["field"] == field
        assert " is invalid: " + field in body["message"]
    apps.create_namespaced_deployment(ns, deployment_body("ok"))
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("ok", ns, {"spec": {"replicas": -3}})
    assert err.value.status == 422
    unchanged = apps.read_namespaced_deployment("ok", ns).spec
    assert unchanged is not None and unchanged.replicas == 2
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment(
            "ok",
            ns,
            {
                "spec": {
                    "selector": {
                        "matchLabels": None,
                        "matchExpressions": [{"key": "app", "operator": "Exists"}],
                    }
                }
            },
        )
    assert err.value.status == 422
    assert status_of(err.value)["details"]["causes"][0]["field"] == "spec.selector"


# -- selectors and paging ------------------------------------------------------------------------


def test_label_selectors(kube: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(kube)
    ns = make_namespace(kube, "labels")
    for name, labels in [
        ("a", {"app": "web", "tier": "front"}),
        ("b", {"app": "web", "tier": "back"}),
        ("c", {"app": "db"}),
        ("d", {}),
    ]:
        core.create_namespaced_pod(ns, pod_body(name, labels))

    def names(selector: str) -> list[str]:
        return names_of(core.list_namespaced_pod(ns, label_selector=selector).items)

    assert names("app=web") == ["a", "b"]
    assert names("app==web,tier=back") == ["b"]
    assert names("app!=web") == ["c", "d"]
    assert names("tier in (front, back)") == ["a", "b"]
    assert names("app notin (web)") == ["c", "d"]
    assert names("tier") == ["a", "b"]
    assert names("!tier") == ["c", "d"]
    assert names("app in (web,db),!tier") == ["c"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod(ns, label_selector="app in (web")
    assert err.value.status == 400 and status_of(err.value)["reason"] == "BadRequest"


def test_field_selectors(kube: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(kube)
    ns = make_namespace(kube, "fields")
    core.create_namespaced_pod(ns, pod_body("on-n1", nodeName="node-1"))
    core.create_namespaced_pod(ns, pod_body("on-n2", nodeName="node-2"))
    core.patch_namespaced_pod_status("on-n2", ns, {"status": {"phase": "Running"}})

    def names(selector: str, all_namespaces: bool = False) -> list[str]:
        if all_namespaces:
            items = core.list_pod_for_all_namespaces(field_selector=selector).items
        else:
            items = core.list_namespaced_pod(ns, field_selector=selector).items
        return names_of(items)

    assert names("spec.nodeName=node-1") == ["on-n1"]
    assert names("status.phase=Running") == ["on-n2"]
    assert names("status.phase!=Running") == ["on-n1"]
    assert names("metadata.name==on-n2") == ["on-n2"]
    assert names(f"metadata.namespace={ns},spec.nodeName=node-2", all_namespaces=True) == ["on-n2"]
    assert names("spec.containers=x") == []
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod(ns, field_selector="spec.nodeName~node")
    assert err.value.status == 400


def test_paging_with_limit_and_continue(kube: k8s.ApiClient, sandbox_thread: SandboxThread) -> None:
    core = k8s.CoreV1Api(kube)
    ns = make_namespace(kube, "paging")
    for i in range(25):
        core.create_namespaced_pod(ns, pod_body(f"p-{i:02d}", {"even": str(i % 2 == 0).lower()}))
    first = core.list_namespaced_pod(ns, limit=10)
    assert first.metadata is not None
    assert len(first.items) == 10 and first.metadata.remaining_item_count == 15
    seen = names_of(first.items)
    token = first.metadata._continue
    while token:
        page = core.list_namespaced_pod(ns, limit=10, _continue=token)
        assert page.metadata is not None
        assert page.metadata.resource_version == first.metadata.resource_version
        seen += names_of(page.items)
        token = page.metadata._continue
    assert seen == [f"p-{i:02d}" for i in range(25)]

    even = core.list_namespaced_pod(ns, limit=5, label_selector="even=true")
    assert even.metadata is not None
    assert len(even.items) == 5 and even.metadata._continue
    rest = core.list_namespaced_pod(
        ns, limit=100, label_selector="even=true", _continue=even.metadata._continue
    )
    assert rest.metadata is not None
    assert len(rest.items) == 8 and not rest.metadata._continue

    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod(ns, limit=10, _continue="not-a-token")
    assert err.value.status == 400
    # A continue token from before a compaction is expired (410).
    core.create_namespaced_pod(ns, pod_body("late"))
    sandbox_thread.call(sandbox_thread.sandbox.store.compact)
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod(ns, limit=10, _continue=first.metadata._continue)
    assert err.value.status == 410 and status_of(err.value)["reason"] == "Expired"


# -- patch ---------------------------------------------------------------------------------------


def test_patch_types_and_conflicts(kube: k8s.ApiClient) -> None:
    apps = k8s.AppsV1Api(kube)
    ns = make_namespace(kube, "patching")
    dep = apps.create_namespaced_deployment(ns, deployment_body("svc"))

    # Strategic merge (the client's default for objects): containers and env merge by name.
    patched = apps.patch_namespaced_deployment(
        "svc",
        ns,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "server",
                                "image": "registry.local/server:2",
                                "env": [{"name": "B", "value": "3"}],
                            }
                        ]
                    }
                }
            }
        },
    )
    containers = {c.name: c for c in pod_spec(patched).containers}
    assert containers["server"].image == "registry.local/server:2"
    assert containers["sidecar"].image == "registry.local/sidecar:1"
    env = containers["server"].env
    assert env is not None and [(e.name, e.value) for e in env] == [("A", "1"), ("B", "3")]
    assert patched.metadata is not None and patched.metadata.generation == 2

    # JSON merge patch replaces lists wholesale.
    merged = apps.patch_namespaced_deployment(
        "svc",
        ns,
        {
            "metadata": {"annotations": {"kubernetes.io/change-cause": "v3"}},
            "spec": {"template": {"spec": {"containers": [{"name": "only", "image": "i:3"}]}}},
        },
        _content_type="application/merge-patch+json",
    )
    assert [c.name for c in pod_spec(merged).containers] == ["only"]
    assert merged.metadata is not None and merged.metadata.annotations is not None
    assert merged.metadata.annotations["kubernetes.io/change-cause"] == "v3"

    # JSON patch (a list body), including a passing and a failing test op.
    jp = apps.patch_namespaced_deployment(
        "svc",
        ns,
        [
            {"op": "test", "path": "/spec/replicas", "value": 2},
            {"op": "replace", "path": "/spec/replicas", "value": 4},
            {"op": "add", "path": "/metadata/labels", "value": {"stage": "production"}},
        ],
    )
    assert jp.spec is not None and jp.metadata is not None
    assert jp.spec.replicas == 4 and jp.metadata.labels == {"stage": "production"}
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment(
            "svc", ns, [{"op": "test", "path": "/spec/replicas", "value": 2}]
        )
    assert err.value.status == 422

    # A stale resourceVersion in a patch or a PUT is 409 Conflict.
    assert dep.metadata is not None
    stale = dep.metadata.resource_version
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment(
            "svc", ns, {"metadata": {"resourceVersion": stale}, "spec": {"replicas": 1}}
        )
    body = status_of(err.value)
    assert err.value.status == 409 and body["reason"] == "Conflict"
    assert body["message"].startswith('Operation cannot be fulfilled on deployments.apps "svc"')
    current = apps.read_namespaced_deployment("svc", ns)
    assert current.metadata is not None and current.spec is not None
    ok = apps.patch_namespaced_deployment(
        "svc",
        ns,
        {
            "metadata": {"resourceVersion": current.metadata.resource_version},
            "spec": {"replicas": 1},
        },
    )
    assert ok.spec is not None and ok.spec.replicas == 1
    current.spec.replicas = 5
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment("svc", ns, current)
    assert err.value.status == 409

    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment(
            "svc", ns, {"spec": {}}, _content_type="application/apply-patch+yaml"
        )
    assert err.value.status == 415


def test_status_subresource(kube: k8s.ApiClient) -> None:
    apps = k8s.AppsV1Api(kube)
    ns = make_namespace(kube, "status")
    apps.create_namespaced_deployment(ns, deployment_body("svc"))
    after = apps.patch_namespaced_deployment_status(
        "svc", ns, {"status": {"readyReplicas": 2, "replicas": 2}}
    )
    assert after.status is not None and after.metadata is not None
    assert after.status.ready_replicas == 2 and after.metadata.generation == 1
    # Writing the main resource keeps the status; writing status keeps the spec.
    main = apps.patch_namespaced_deployment(
        "svc", ns, {"spec": {"replicas": 3}, "status": {"readyReplicas": 0}}
    )
    assert main.spec is not None and main.status is not None
    assert main.spec.replicas == 3 and main.status.ready_replicas == 2
    read = apps.read_namespaced_deployment_status("svc", ns)
    assert read.spec is not None and read.status is not None
    read.spec.replicas = 9
    read.status.ready_replicas = 3
    replaced = apps.replace_namespaced_deployment_status("svc", ns, read)
    assert replaced.spec is not None and replaced.status is not None
    assert replaced.spec.replicas == 3 and replaced.status.ready_replicas == 3


def test_delete_namespace_removes_its_objects(kube: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(kube)
    ns = make_namespace(kube, "doomed")
    core.create_namespaced_pod(ns, pod_body("p"))
    deleted = core.delete_namespace(ns)
    assert isinstance(deleted, dict) and deleted["metadata"]["name"] == ns
    assert core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items == []


# -- watch ---------------------------------------------------------------------------------------


def test_watch_streams_changes(kube: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(kube)
    ns = make_namespace(kube, "watching")
    core.create_namespaced_pod(ns, pod_body("existing", {"app": "w"}))
    core.create_namespaced_pod(ns, pod_body("other", {"app": "x"}))
    seen: list[tuple[str, str]] = []
    watch = Watch()
    for event in watch.stream(
        core.list_namespaced_pod, ns, label_selector="app=w", timeout_seconds=10
    ):
        obj = event["object"]
        seen.append((event["type"], obj.metadata.name))
        if event["type"] == "ADDED" and obj.metadata.name == "existing":
            core.patch_namespaced_pod("existing", ns, {"metadata": {"annotations": {"k": "v"}}})
        elif event["type"] == "MODIFIED":
            core.delete_namespaced_pod("existing", ns)
        elif event["type"] == "DELETED":
            watch.stop()
    assert seen == [("ADDED", "existing"), ("MODIFIED", "existing"), ("DELETED", "existing")]


def test_watch_resumes_from_resource_version(kube: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(kube)
    ns = make_namespace(kube, "resume")
    start = list_version(core, ns)
    core.create_namespaced_pod(ns, pod_body("late"))
    core.patch_namespaced_pod_status("late", ns, {"status": {"phase": "Running"}})
    events = [
        (e["type"], e["object"].status.phase)
        for e in Watch().stream(
            core.list_namespaced_pod,
            ns,
            resource_version=start,
            timeout_seconds=1,
        )
    ]
    assert events == [("ADDED", "Pending"), ("MODIFIED", "Running")]


def test_watch_expired_resource_version_is_410(
    kube: k8s.ApiClient, sandbox_thread: SandboxThread
) -> None:
    core = k8s.CoreV1Api(kube)
    ns = make_namespace(kube, "expired")
    old = list_version(core, ns)
    core.create_namespaced_pod(ns, pod_body("p"))
    sandbox_thread.call(sandbox_thread.sandbox.store.compact)
    with pytest.raises(ApiException) as err:
        for _ in Watch().stream(
            core.list_namespaced_pod, ns, resource_version=old, timeout_seconds=5
        ):
            pass
    assert err.value.status == 410 and "too old resource version" in str(err.value.reason)


def test_watch_bookmarks_and_streaming_list(sandbox_thread: SandboxThread) -> None:
    url = (
        f"{sandbox_thread.url}/api/v1/namespaces?watch=true&allowWatchBookmarks=true"
        "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"
    )
    status, ctype, body = http_get(url)
    assert status == 200 and ctype.startswith("application/json")
    events = [json.loads(line) for line in body.splitlines() if line.strip()]
    types = [e["type"] for e in events]
    added = types.index("BOOKMARK")
    assert added > 0 and set(types[:added]) == {"ADDED"}
    assert "default" in {e["object"]["metadata"]["name"] for e in events[:added]}
    end = events[added]["object"]
    assert end["kind"] == "Namespace"
    assert end["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    periodic = [e for e in events[added + 1 :] if e["type"] == "BOOKMARK"]
    assert periodic and int(periodic[-1]["object"]["metadata"]["resourceVersion"]) > 0
    # The watch's queue is gone once the stream ended.
    assert sandbox_thread.call(sandbox_thread.sandbox.store.watcher_count, NAMESPACE) == 0


def test_closed_watch_releases_its_queue(sandbox_thread: SandboxThread) -> None:
    store = sandbox_thread.sandbox.store
    url = urlsplit(sandbox_thread.url)
    assert url.hostname is not None
    conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=10, context=tls_context())
    conn.request("GET", "/api/v1/namespaces?watch=1", headers=ADMIN_HEADERS)
    response = conn.getresponse()
    first = json.loads(response.readline())
    assert first["type"] == "ADDED" and first["object"]["kind"] == "Namespace"
    assert sandbox_thread.call(store.watcher_count, NAMESPACE) == 1
    conn.close()
    deadline = time.monotonic() + 10
    while sandbox_thread.call(store.watcher_count, NAMESPACE) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_thread.call(store.watcher_count, NAMESPACE) == 0


# -- pod proxy -----------------------------------------------------------------------------------


def test_pod_proxy(kube: k8s.ApiClient, sandbox_thread: SandboxThread) -> None:
    core = k8s.CoreV1Api(kube)
    ns = make_namespace(kube, "gpu-operator")
    exporter = pod_manifest("nvidia-dcgm-exporter-abc", {"app": "nvidia-dcgm-exporter"})
    exporter["spec"]["containers"][0]["ports"] = [{"name": "metrics", "containerPort": 9400}]
    core.create_namespaced_pod(ns, k8s.V1Pod.model_validate(exporter))
    calls: list[tuple[str, str, str]] = []

    def handler(pod: dict, port: str, path: str) -> tuple[int, str, bytes]:
        calls.append((pod["metadata"]["name"], port, path))
        return 200, "text/plain; version=0.0.4", b'DCGM_FI_DEV_GPU_UTIL{gpu="0"} 42\n'

    store = sandbox_thread.sandbox.store
    original = store.proxy_handler
    with pytest.raises(ApiException) as err:  # Pending: nothing listens yet
        core.connect_get_namespaced_pod_proxy_with_path("nvidia-dcgm-exporter-abc", ns, "metrics")
    assert err.value.status == 503 and status_of(err.value)["reason"] == "ServiceUnavailable"

    sandbox_thread.call(setattr, store, "proxy_handler", handler)
    try:
        with pytest.raises(ApiException) as err:  # not Running yet
            core.connect_get_namespaced_pod_proxy_with_path(
                "nvidia-dcgm-exporter-abc:9400", ns, "metrics"
            )
        assert err.value.status == 503
        core.patch_namespaced_pod_status(
            "nvidia-dcgm-exporter-abc", ns, {"status": {"phase": "Running"}}
        )
        text = core.connect_get_namespaced_pod_proxy_with_path(
            "nvidia-dcgm-exporter-abc:9400", ns, "metrics"
        )
        assert 'DCGM_FI_DEV_GPU_UTIL{gpu="0"} 42' in text
        core.connect_get_namespaced_pod_proxy_with_path("nvidia-dcgm-exporter-abc", ns, "metrics")
        assert calls == [
            ("nvidia-dcgm-exporter-abc", "9400", "metrics"),
            ("nvidia-dcgm-exporter-abc", "9400", "metrics"),
        ]
    finally:
        sandbox_thread.call(setattr, store, "proxy_handler", original)


# -- asyncio client ------------------------------------------------------------------------------


async def test_aio_client(sandbox_thread: SandboxThread) -> None:
    from kubernetes.aio import client as aio_client
    from kubernetes.aio import config as aio_config
    from kubernetes.aio import watch as aio_watch

    configuration = aio_client.Configuration()
    await aio_config.load_kube_config(
        config_file=str(sandbox_thread.kubeconfig_path), client_configuration=configuration
    )
    async with aio_client.ApiClient(configuration) as api:
        core = aio_client.CoreV1Api(api)
        meta = aio_client.V1ObjectMeta(name="aio")
        await core.create_namespace(aio_client.V1Namespace(metadata=meta))
        listed = await core.list_namespaced_pod("aio")
        assert listed.metadata is not None
        version = listed.metadata.resource_version
        pod = aio_client.V1Pod.model_validate(pod_manifest("async-pod", {"app": "aio"}))
        await core.create_namespaced_pod("aio", pod)
        pods = await core.list_namespaced_pod("aio", label_selector="app=aio")
        assert names_of(pods.items) == ["async-pod"]
        events = []
        async with aio_watch.Watch() as watch:
            async for event in watch.stream(
                core.list_namespaced_pod, "aio", resource_version=version, timeout_seconds=30
            ):
                events.append((event["type"], event["object"].metadata.name))
                watch.stop()
        assert events == [("ADDED", "async-pod")]
        with pytest.raises(aio_client.ApiException) as err:
            await core.read_namespaced_pod("missing", "aio")
        assert err.value.status == 404


def test_kubeconfig_shape(sandbox_thread: SandboxThread) -> None:
    config = sandbox_thread.sandbox.kubeconfig()
    assert config["current-context"] == "opsconsole-sandbox"
    assert config["clusters"][0]["cluster"]["server"] == sandbox_thread.url
    assert config["users"][0]["user"]["token"] == "sandbox-admin"
    loaded = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(sandbox_thread.kubeconfig_path), client_configuration=loaded
    )
    assert loaded.host == sandbox_thread.url


def test_watch_with_selector_sees_objects_enter_and_leave(kube: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(kube)
    ns = make_namespace(kube, "transitions")
    start = list_version(core, ns)
    core.create_namespaced_pod(ns, pod_body("p", {"role": "idle"}))
    core.patch_namespaced_pod("p", ns, {"metadata": {"labels": {"role": "serving"}}})
    core.patch_namespaced_pod("p", ns, {"metadata": {"labels": {"role": "idle"}}})
    events = []
    watch = Watch()
    for event in watch.stream(
        core.list_namespaced_pod,
        ns,
        label_selector="role=serving",
        resource_version=start,
        timeout_seconds=30,
    ):
        events.append(event["type"])
        if event["type"] == "DELETED":
            watch.stop()
    assert events == ["ADDED", "DELETED"]


# -- building blocks -----------------------------------------------------------------------------


def test_strategic_merge_directives() -> None:
    target: dict[str, Any] = {
        "metadata": {"finalizers": ["a"], "labels": {"x": "1"}},
        "spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]},
    }
    out = strategic_merge_patch(
        target,
        {
            "metadata": {"finalizers": ["b"], "labels": {"x": None}},
            "spec": {"containers": [{"name": "a", "$patch": "delete"}, {"name": "c"}]},
        },
    )
    assert out["metadata"] == {"finalizers": ["a", "b"], "labels": {}}
    assert [c["name"] for c in out["spec"]["containers"]] == ["b", "c"]
    assert target["spec"]["containers"][0]["name"] == "a"  # the input is untouched
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None}}) == {"a": {"c": 2}}
    doc = json_patch(
        {"a": [1, 2], "b": {"c~d/e": 1}},
        [
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "move", "from": "/b/c~0d~1e", "path": "/moved"},
            {"op": "copy", "from": "/a", "path": "/copy"},
            {"op": "remove", "path": "/a/0"},
        ],
    )
    assert doc == {"a": [2, 3], "b": {}, "moved": 1, "copy": [1, 2, 3]}


def test_selector_parsing() -> None:
    pod = {"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}, "spec": {"x": True}}
    assert parse_label_selector("") is None
    in_set = parse_label_selector("a in (1, 3), b notin (3), !c")
    assert in_set is not None and in_set(pod)
    not_equal = parse_label_selector("a=1,b!=2")
    assert not_equal is not None and not not_equal(pod)
    fields = parse_field_selector("spec.x=true,metadata.name!=q")
    assert fields is not None and fields(pod)
    for bad in ("a=(", "a in (1", "=x", "a=b c"):
        with pytest.raises(ApiError):
            parse_label_selector(bad)
    selector = {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}
    assert match_label_selector(selector, {"a": "1"})
    assert not match_label_selector(selector, {"a": "2"})


def test_stalled_watcher_is_cut_off() -> None:
    async def scenario() -> list[object]:
        store = Store()
        store.watch_backlog = 3
        queue = store.open_watch(NAMESPACE)
        for i in range(5):
            store.create(NAMESPACE, {"metadata": {"name": f"ns-{i}"}})
        assert store.watcher_count(NAMESPACE) == 0
        return [queue.get_nowait() for _ in range(queue.qsize())]

    items = asyncio.run(scenario())
    assert len(items) == 4 and items[-1] is None


def test_delete_preconditions(kube: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(kube)
    ns = make_namespace(kube, "preconditions")
    pod = core.create_namespaced_pod(ns, pod_body("p"))
    stale = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(resource_version="1"))
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_pod("p", ns, body=stale)
    assert err.value.status == 409 and status_of(err.value)["reason"] == "Conflict"
    assert pod.metadata is not None
    fresh = k8s.V1DeleteOptions(
        preconditions=k8s.V1Preconditions(resource_version=pod.metadata.resource_version)
    )
    gone = core.delete_namespaced_pod("p", ns, body=fresh)
    assert gone.metadata is not None and gone.metadata.name == "p"


def test_scale_subresource(kube: k8s.ApiClient) -> None:
    apps = k8s.AppsV1Api(kube)
    ns = make_namespace(kube, "scaling")
    apps.create_namespaced_deployment(ns, deployment_body("svc"))
    scale = apps.read_namespaced_deployment_scale("svc", ns)
    assert scale.spec is not None and scale.status is not None
    assert scale.spec.replicas == 2 and scale.status.selector == "app=svc"
    patched = apps.patch_namespaced_deployment_scale("svc", ns, {"spec": {"replicas": 5}})
    assert patched.spec is not None and patched.spec.replicas == 5
    spec = apps.read_namespaced_deployment("svc", ns).spec
    assert spec is not None and spec.replicas == 5
    scale = apps.read_namespaced_deployment_scale("svc", ns)
    assert scale.spec is not None
    scale.spec.replicas = 1
    replaced = apps.replace_namespaced_deployment_scale("svc", ns, scale)
    assert replaced.spec is not None and replaced.spec.replicas == 1
    with pytest.raises(ApiException) as err:  # the read Scale's resourceVersion is stale now
        apps.replace_namespaced_deployment_scale("svc", ns, scale)
    assert err.value.status == 409
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale("svc", ns, {"spec": {"replicas": -1}})
    assert err.value.status == 422


def test_table_output_for_kubectl(kube: k8s.ApiClient, sandbox_thread: SandboxThread) -> None:
    core = k8s.CoreV1Api(kube)
    ns = make_namespace(kube, "tables")
    core.create_namespaced_pod(ns, pod_body("tabled", nodeName="node-9"))
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    request = urllib.request.Request(
        f"{sandbox_thread.url}/api/v1/namespaces/{ns}/pods",
        headers={**ADMIN_HEADERS, "Accept": accept},
    )
    with urllib.request.urlopen(request, timeout=10, context=tls_context()) as resp:
        body = json.loads(resp.read())
    assert body["kind"] == "Table"
    names = [c["name"] for c in body["columnDefinitions"]]
    assert names[:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    row = body["rows"][0]
    assert row["cells"][:4] == ["tabled", "0/1", "Pending", 0]
    assert row["cells"][names.index("Node")] == "node-9"
    assert row["object"]["metadata"]["name"] == "tabled"
    assert [human_duration(s) for s in (5, 150, 4000, 90000, 864000)] == [
        "5s",
        "2m30s",
        "66m",
        "25h",
        "10d",
    ]


def test_resource_quota_admission_is_403(kube: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(kube)
    ns = make_namespace(kube, "quota")
    quota = {"metadata": {"name": "gpu-quota"}, "spec": {"hard": {"requests.nvidia.com/gpu": "1"}}}
    core.create_namespaced_resource_quota(ns, k8s.V1ResourceQuota.model_validate(quota))
    gpu = {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}
    first = pod_manifest("gpu-0")
    first["spec"]["containers"][0]["resources"] = gpu
    core.create_namespaced_pod(ns, k8s.V1Pod.model_validate(first))
    second = pod_manifest("gpu-1")
    second["spec"]["containers"][0]["resources"] = gpu
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(ns, k8s.V1Pod.model_validate(second))
    body = status_of(err.value)
    assert err.value.status == 403 and body["reason"] == "Forbidden"
    assert body["message"].startswith('pods "gpu-1" is forbidden: exceeded quota: gpu-quota')
    core.create_namespaced_pod(ns, pod_body("cpu-only"))  # no GPUs: within the quota


def test_kueue_webhook_suspends_and_gates_queued_workloads(kube: k8s.ApiClient) -> None:
    core, batch = k8s.CoreV1Api(kube), k8s.BatchV1Api(kube)
    custom = k8s.CustomObjectsApi(kube)
    ns = make_namespace(kube, "queued")
    custom.create_namespaced_custom_object(
        *KUEUE, ns, "localqueues", {"metadata": {"name": "q"}, "spec": {"clusterQueue": "cq"}}
    )
    queued = {"kueue.x-k8s.io/queue-name": "q"}
    job = {
        "metadata": {"name": "train", "labels": queued},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "t", "image": "registry.local/train:1"}],
                }
            }
        },
    }
    suspended = batch.create_namespaced_job(ns, k8s.V1Job.model_validate(job)).spec
    assert suspended is not None and suspended.suspend is True
    pod = core.create_namespaced_pod(ns, pod_body("solo", queued))
    assert pod.spec is not None and pod.spec.scheduling_gates is not None
    assert [g.name for g in pod.spec.scheduling_gates] == ["kueue.x-k8s.io/admission"]
    plain = core.create_namespaced_pod(ns, pod_body("plain"))
    assert plain.spec is not None and not plain.spec.scheduling_gates
