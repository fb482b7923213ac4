"""The backend on a real sandbox, end to end over HTTP: what an operator's console relies on."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from backend.schemas import Gpu, Overview, Page, Tenant, Workload, WorkloadDetail
from tests.conftest import LiveCluster


@pytest.fixture(scope="module")
def api(live_cluster: LiveCluster) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=live_cluster.backend_url, timeout=10.0, headers=live_cluster.headers
    ) as http:
        yield http


def all_items(http: httpx.Client, path: str, **params: Any) -> list[dict]:
    """Follow ``next`` cursors to the end of a list."""
    items: list[dict] = []
    cursor = None
    while True:
        query = {**params, "limit": 7, **({"cursor": cursor} if cursor else {})}
        page = http.get(path, params=query).json()
        items.extend(page["items"])
        cursor = page["next"]
        if cursor is None:
            assert len(items) == page["total"]
            return items


def test_overview_adds_up(api: httpx.Client) -> None:
    overview = Overview.model_validate(api.get("/api/v1/overview").json())
    nodes = all_items(api, "/api/v1/nodes")
    assert overview.totals.nodes == len(nodes) >= 12
    assert overview.totals.gpus == sum(n["gpus_capacity"] for n in nodes)
    assert overview.totals.gpus == sum(m.total for m in overview.gpu_models)
    assert len(overview.gpu_models) == 3
    for model in overview.gpu_models:
        assert model.allocated + model.free == model.total
        assert model.in_use + model.idle == model.allocated
    assert overview.freshness.synced
    kinds = {p.kind for p in overview.problems}
    assert {"pending", "xid", "hot"} <= kinds


def test_tenants_have_quota_and_usage(api: httpx.Client) -> None:
    tenants = [Tenant.model_validate(t) for t in all_items(api, "/api/v1/tenants")]
    assert len(tenants) >= 6
    kueue = [t for t in tenants if t.quota_mode == "kueue"]
    assert kueue, "the demo fleet has Kueue tenants"
    for tenant in kueue:
        assert tenant.cluster_queue and tenant.cohort
        assert tenant.gpu_quota == sum(q.nominal for q in tenant.quotas)
        assert tenant.gpu_used == sum(q.used for q in tenant.quotas)
    one = api.get(f"/api/v1/tenants/{tenants[0].name}").json()
    assert one["name"] == tenants[0].name
    assert api.get("/api/v1/tenants/no-such-team").status_code == 404


def test_every_gpu_is_identified(api: httpx.Client) -> None:
    gpus = [Gpu.model_validate(g) for g in all_items(api, "/api/v1/gpus")]
    assert len(gpus) == Overview.model_validate(api.get("/api/v1/overview").json()).totals.gpus
    assert len({g.uuid for g in gpus}) == len(gpus)
    held = [g for g in gpus if g.pod]
    assert held and all(g.tenant and g.namespace for g in held)
    node = gpus[0].node
    on_node = all_items(api, "/api/v1/gpus", node=node)
    assert on_node and all(g["node"] == node for g in on_node)


def test_workloads_releases_and_revisions(api: httpx.Client) -> None:
    workloads = [Workload.model_validate(w) for w in all_items(api, "/api/v1/workloads")]
    by_kind = {w.kind for w in workloads}
    assert by_kind == {"Deployment", "InferenceService", "Job"}
    assert any(w.status == "Paused" for w in workloads)
    assert any(w.status == "Pending" for w in workloads)
    assert any(w.canary_percent not in (None, 100) for w in workloads)

    deployment = next(w for w in workloads if w.kind == "Deployment" and w.model)
    detail = WorkloadDetail.model_validate(
        api.get(f"/api/v1/workloads/{deployment.namespace}/deployment/{deployment.name}").json()
    )
    numbers = [int(r.revision) for r in detail.revisions]
    assert 3 <= len(numbers) <= 10
    assert numbers == sorted(numbers, reverse=True)
    assert detail.revisions[0].current
    assert str(numbers[0]) == detail.revision

    canary = next(w for w in workloads if w.canary_percent not in (None, 100))
    assert canary.canary_percent is not None
    isvc = WorkloadDetail.model_validate(
        api.get(f"/api/v1/workloads/{canary.namespace}/inferenceservice/{canary.name}").json()
    )
    traffic = {r.tag: r.traffic_percent for r in isvc.revisions if r.traffic_percent}
    assert traffic == {"latest": canary.canary_percent, "prev": 100 - canary.canary_percent}


def test_filters_and_bad_input(api: httpx.Client) -> None:
    tenant = api.get("/api/v1/tenants", params={"limit": 1}).json()["items"][0]["name"]
    page = Page[Workload].model_validate(
        api.get("/api/v1/workloads", params={"tenant": tenant}).json()
    )
    assert page.total > 0 and all(w.tenant == tenant for w in page.items)
    assert api.get("/api/v1/workloads", params={"limit": 0}).status_code == 422
    bad_sort = api.get("/api/v1/gpus", params={"sort": "nonsense"})
    assert bad_sort.status_code == 422 and "sort" in bad_sort.json()["detail"]
    assert api.get("/api/v1/workloads/ns/deployment/none").status_code == 404


def _kube(cluster: LiveCluster) -> k8s.ApiClient:
    return k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))


def _eventually(
    check: Callable[[], bool], seen: Callable[[], object] = lambda: None, timeout: float = 10.0
) -> None:
    """Poll until ``check()``; the generous deadline only bounds a broken run."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"the backend did not show the change; it shows {seen()}")
        time.sleep(0.05)


def test_changes_through_kubernetes_show_up(mutable_cluster: LiveCluster) -> None:
    """A Deployment created, changed and deleted through the API shows in /api/v1."""
    http = httpx.Client(
        base_url=mutable_cluster.backend_url, timeout=10.0, headers=mutable_cluster.headers
    )
    tenant = http.get("/api/v1/tenants", params={"limit": 1}).json()["items"][0]
    namespace = tenant["namespaces"][0]
    apps = k8s.AppsV1Api(_kube(mutable_cluster))
    labels = {"app": "e2e-probe", "opsconsole.io/model": "e2e-model"}
    body = {
        "metadata": {"name": "e2e-probe", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "e2e-probe"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "busybox:1"}]},
            },
        },
    }
    apps.create_namespaced_deployment(namespace, k8s.V1Deployment.model_validate(body))
    path = f"/api/v1/workloads/{namespace}/deployment/e2e-probe"
    _eventually(
        lambda: http.get(path).status_code == 200 and http.get(path).json()["revision"] == "1"
    )
    assert http.get(path).json()["tenant"] == tenant["name"]

    apps.patch_namespaced_deployment(
        "e2e-probe",
        namespace,
        {
            "metadata": {"annotations": {"kubernetes.io/change-cause": "bump to 2"}},
            "spec": {
                "template": {"spec": {"containers": [{"name": "main", "image": "busybox:2"}]}}
            },
        },
    )
    _eventually(lambda: http.get(path).json()["revision"] == "2", lambda: http.get(path).json())
    causes = [r["change_cause"] for r in http.get(path).json()["revisions"]]
    assert causes[0] == "bump to 2"

    apps.delete_namespaced_deployment("e2e-probe", namespace)
    _eventually(lambda: http.get(path).status_code == 404)


def test_quota_change_through_kueue_shows_up(mutable_cluster: LiveCluster) -> None:
    http = httpx.Client(
        base_url=mutable_cluster.backend_url, timeout=10.0, headers=mutable_cluster.headers
    )
    tenants = http.get("/api/v1/tenants", params={"limit": 1000}).json()["items"]
    tenant = next(t for t in tenants if t["quota_mode"] == "kueue")
    custom = k8s.CustomObjectsApi(_kube(mutable_cluster))
    queue = custom.get_cluster_custom_object(
        "kueue.x-k8s.io", "v1beta2", "clusterqueues", tenant["cluster_queue"]
    )
    assert isinstance(queue, dict)
    resources = queue["spec"]["resourceGroups"][0]["flavors"][0]["resources"]
    gpu = next(r for r in resources if r["name"] == "nvidia.com/gpu")
    gpu["nominalQuota"] = int(gpu["nominalQuota"]) + 4
    wanted = tenant["gpu_quota"] + 4
    custom.replace_cluster_custom_object(
        "kueue.x-k8s.io", "v1beta2", "clusterqueues", tenant["cluster_queue"], queue
    )
    _eventually(lambda: http.get(f"/api/v1/tenants/{tenant['name']}").json()["gpu_quota"] == wanted)
