"""The /api/v1 read endpoints: shapes, filters, sorting, paging, cursors and errors.

The real app serves an in-memory source holding a model built from the hand-written fleet of
tests/test_fleet_model.py; answers are checked against the schemas.
"""

from __future__ import annotations

from typing import TypeVar

import httpx
import pytest

from backend.api.app import create_app
from backend.fleet import FleetModel, build_fleet_model
from backend.schemas import (
    API_PREFIX,
    DataFreshness,
    FleetNotReady,
    Gpu,
    KindFreshness,
    Node,
    Overview,
    Page,
    SyncProgress,
    SyncReason,
    Tenant,
    Workload,
    WorkloadDetail,
)
from tests.support.backend import InMemorySource
from tests.support.tokens import bearer
from tests.test_fleet_model import fleet_cluster, fleet_telemetry

P = TypeVar("P", bound=Page)


def _client(model: FleetModel | None) -> httpx.AsyncClient:
    """An admin's client of the app serving ``model``."""
    source = InMemorySource({}, None)
    source.model = model
    token, _ = source.tokens.create("admin", "admin")
    transport = httpx.ASGITransport(app=create_app(source))
    return httpx.AsyncClient(
        transport=transport, base_url="http://localhost", headers=bearer(token)
    )


@pytest.fixture(scope="module")
def model() -> FleetModel:
    return build_fleet_model(fleet_cluster(), fleet_telemetry())


@pytest.fixture
async def client(model):
    async with _client(model) as http:
        yield http


async def get(client: httpx.AsyncClient, path: str, **params) -> httpx.Response:
    return await client.get(API_PREFIX + path, params=params)


async def page(client: httpx.AsyncClient, path: str, page_type: type[P], **params) -> P:
    """One page of a list, as ``page_type`` (``Page[Item]``)."""
    response = await get(client, path, **params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"items", "total", "next"}
    return page_type.model_validate(body)


# -- shapes --------------------------------------------------------------------------------------


async def test_overview(client):
    response = await get(client, "/overview")
    assert response.status_code == 200
    overview = Overview.model_validate(response.json())
    assert overview.freshness.cluster_age_seconds == 1.0
    assert overview.totals.gpus == 20 and overview.problems


async def test_every_list_answers_a_page(client):
    assert [t.name for t in (await page(client, "/tenants", Page[Tenant])).items] == [
        "team-a",
        "team-b",
        "team-c",
    ]
    assert (await page(client, "/workloads", Page[Workload])).total == 9
    assert (await page(client, "/nodes", Page[Node])).total == 4
    gpus = await page(client, "/gpus", Page[Gpu])
    assert gpus.total == 20 and gpus.next is None
    for gpu in gpus.items:  # every GPU has node, index, uuid, model and utilization (or null)
        assert gpu.node and gpu.uuid and gpu.model and gpu.index >= 0
    raw = (await get(client, "/gpus")).json()["items"]
    assert all("utilization" in item for item in raw)


async def test_single_objects(client):
    tenant = Tenant.model_validate((await get(client, "/tenants/team-a")).json())
    assert tenant.cluster_queue == "team-a" and tenant.quotas
    node = Node.model_validate((await get(client, "/nodes/node-1")).json())
    assert node.gpus_allocated == 8
    detail = WorkloadDetail.model_validate(
        (await get(client, "/workloads/team-a/deployment/llama-70b")).json()
    )
    assert [r.revision for r in detail.revisions] == ["3", "2", "1", "0"]
    assert detail.pods and detail.events
    same = await get(client, "/workloads/team-a/Deployment/llama-70b")
    assert same.json() == (await get(client, "/workloads/team-a/deployment/llama-70b")).json()
    isvc = (await get(client, "/workloads/team-b/inferenceservice/sklearn-iris")).json()
    assert isvc["canary_percent"] == 10 and isvc["revisions"][0]["tag"] == "latest"
    split = [(r["revision"], r["percent"], r["latest"]) for r in isvc["traffic"]["revisions"]]
    assert split == [
        ("sklearn-iris-predictor-00002", 10, True),
        ("sklearn-iris-predictor-00001", 90, False),
    ]
    assert detail.traffic is None  # a Deployment has no traffic split


# -- filters, sort, paging -----------------------------------------------------------------------


async def test_workload_filters(client):
    team_a = await page(client, "/workloads", Page[Workload], tenant="team-a")
    assert {w.tenant for w in team_a.items} == {"team-a"} and team_a.total == 5
    jobs = await page(client, "/workloads", Page[Workload], kind="job")
    assert {w.kind.value for w in jobs.items} == {"Job"} and jobs.total == 3
    pending = await page(client, "/workloads", Page[Workload], status="Pending")
    assert {w.name for w in pending.items} == {"whisper", "finetune"}
    assert (await page(client, "/workloads", Page[Workload], namespace="team-c")).total == 1
    assert (await page(client, "/workloads", Page[Workload], q="LLAMA")).total == 1
    both = await page(client, "/workloads", Page[Workload], tenant="team-a", kind="deployment")
    assert {w.name for w in both.items} == {"llama-70b", "mistral", "whisper"}


async def test_gpu_and_node_filters(client):
    assert (await page(client, "/gpus", Page[Gpu], node="node-2")).total == 8
    assert (await page(client, "/gpus", Page[Gpu], tenant="team-c")).total == 2
    assert (await page(client, "/gpus", Page[Gpu], namespace="team-a")).total == 8
    assert (await page(client, "/gpus", Page[Gpu], model="NVIDIA H100 80GB HBM3")).total == 16
    idle = await page(client, "/gpus", Page[Gpu], idle="true")
    assert [g.uuid for g in idle.items] == ["GPU-n1-1"]
    assert (await page(client, "/gpus", Page[Gpu], idle="false")).total == 19
    assert (await page(client, "/gpus", Page[Gpu], q="gpu-n3")).total == 2
    assert (await page(client, "/nodes", Page[Node], gpu_model="NVIDIA-A100-SXM4-80GB")).total == 1
    assert (await page(client, "/nodes", Page[Node], q="node")).total == 3
    assert (await page(client, "/tenants", Page[Tenant], q="team-a-dev")).total == 1


async def test_sort_descending_with_nulls_last(client):
    gpus = (await page(client, "/gpus", Page[Gpu], sort="-utilization", limit=1000)).items
    values = [g.utilization for g in gpus]
    known = [v for v in values if v is not None]
    assert known == sorted(known, reverse=True) and values[len(known) :] == [None] * (
        len(values) - len(known)
    )
    tenants = (await page(client, "/tenants", Page[Tenant], sort="-gpu_used")).items
    assert tenants[0].name == "team-a"
    assert (await page(client, "/nodes", Page[Node], sort="-name")).items[0].name == "node-3"


async def test_offset_limit_and_cursor_walk_every_row_once(client):
    first = await page(client, "/gpus", Page[Gpu], limit=7, sort="uuid")
    assert len(first.items) == 7 and first.total == 20 and first.next
    seen = [g.uuid for g in first.items]
    cursor = first.next
    while cursor:
        nxt = await page(client, "/gpus", Page[Gpu], limit=7, sort="uuid", cursor=cursor)
        seen += [g.uuid for g in nxt.items]
        cursor = nxt.next
    assert len(seen) == 20 == len(set(seen))
    assert seen == [
        g.uuid for g in (await page(client, "/gpus", Page[Gpu], sort="uuid", limit=1000)).items
    ]
    jump = await page(client, "/gpus", Page[Gpu], sort="uuid", offset=18, limit=5)
    assert [g.uuid for g in jump.items] == seen[18:] and jump.next is None
    beyond = await page(client, "/gpus", Page[Gpu], offset=500)
    assert beyond.items == [] and beyond.total == 20 and beyond.next is None


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/tenants/nope", 'tenant "nope" not found'),
        ("/nodes/nope", 'node "nope" not found'),
        ("/workloads/team-a/deployment/nope", 'deployment "team-a/nope" not found'),
        ("/workloads/nope/job/llama-70b", 'job "nope/llama-70b" not found'),
    ],
)
async def test_unknown_names_are_404(client, path, detail):
    response = await get(client, path)
    assert response.status_code == 404
    assert response.json() == {"detail": detail}


@pytest.mark.parametrize(
    ("path", "params", "detail_start"),
    [
        ("/gpus", {"sort": "x"}, "unknown sort field 'x'; one of: node, index, uuid"),
        ("/tenants", {"sort": "-quotas"}, "unknown sort field 'quotas'; one of: name"),
        ("/workloads", {"status": "sleepy"}, "unknown status 'sleepy'; one of: Running"),
        ("/workloads", {"kind": "pod"}, "unknown kind 'pod'; one of: Deployment"),
        ("/nodes", {"cursor": "%%%"}, "invalid cursor"),
        ("/workloads/team-a/statefulset/x", {}, "unknown workload kind 'statefulset'; one of:"),
    ],
)
async def test_bad_values_are_422_with_a_clear_detail(client, path, params, detail_start):
    response = await get(client, path, **params)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail_start)


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1001}, {"limit": "ten"}, {"offset": -1}, {"idle": "maybe"}],
)
async def test_malformed_paging_params_are_422(client, params):
    assert (await get(client, "/gpus", **params)).status_code == 422


async def test_no_model_yet_is_503_with_retry_after_and_the_reason():
    async with _client(None) as empty:
        response = await get(empty, "/tenants")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json() == {
        "detail": "no fleet data yet: the fleet model is being built",
        "sync": {"reason": "building", "kinds_listed": 0, "kinds_total": 0, "cluster_error": None},
        "retry_after_seconds": 5,
    }


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (None, "syncing"),
        ("HTTP 503 Service Unavailable", "cluster_error"),
        ("HTTP 401 Unauthorized", "cluster_unauthorized"),
    ],
)
@pytest.mark.parametrize("path", ["/overview", "/tenants", "/workloads", "/nodes", "/gpus"])
async def test_a_fleet_endpoint_before_the_first_sync_says_how_far_it_is(path, error, reason):
    kinds = [
        KindFreshness(kind="nodes", state="live", age_seconds=0.0),
        KindFreshness(kind="pods", state="pending", error=error),
        KindFreshness(kind="jobs", state="pending", error=error),
    ]
    problem = "cluster not synced yet: 1 of 3 kinds listed, waiting for pods, jobs"
    source = InMemorySource({}, None)
    source.model = None
    source.freshness = lambda: DataFreshness(synced=False, cluster_problem=problem, kinds=kinds)
    token, _ = source.tokens.create("admin", "admin")
    transport = httpx.ASGITransport(app=create_app(source))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost", headers=bearer(token)
    ) as http:
        response = await get(http, path)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    body = FleetNotReady.model_validate(response.json())
    assert body.detail == f"no fleet data yet: {problem}"
    assert body.sync == SyncProgress(
        reason=SyncReason(reason), kinds_listed=1, kinds_total=3, cluster_error=error
    )


async def test_empty_model_answers_empty_pages():
    async with _client(FleetModel.empty()) as empty:
        body = (await get(empty, "/gpus")).json()
        assert body == {"items": [], "total": 0, "next": None}
        assert (await get(empty, "/overview")).json()["totals"]["gpus"] == 0


# -- OpenAPI -------------------------------------------------------------------------------------


async def test_openapi_lists_every_endpoint_with_its_schema(client):
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    expected = {
        "/overview": "Overview",
        "/tenants": "Page_Tenant_",
        "/tenants/{name}": "Tenant",
        "/workloads": "Page_Workload_",
        "/workloads/{namespace}/{kind}/{name}": "WorkloadDetail",
        "/nodes": "Page_Node_",
        "/nodes/{name}": "Node",
        "/gpus": "Page_Gpu_",
    }
    for path, schema in expected.items():
        operation = paths[API_PREFIX + path]["get"]
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok["$ref"].endswith("/" + schema), (path, ok)
        assert "404" in operation["responses"] and "422" in operation["responses"]
    params = {p["name"] for p in paths[API_PREFIX + "/gpus"]["get"]["parameters"]}
    assert params == {
        "node",
        "tenant",
        "namespace",
        "model",
        "idle",
        "q",
        "sort",
        "offset",
        "limit",
        "cursor",
    }
