"""BackendClient: answers parsed into the wire models, every failure mapped to our errors."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from backend.conventions import TENANT_LABEL
from backend.schemas import (
    DataFreshness,
    Gpu,
    KindFreshness,
    SyncProgress,
    SyncReason,
    Tenant,
    Whoami,
    WorkloadKind,
)
from opsconsole.client import (
    BackendClient,
    BackendError,
    BackendUnavailable,
    NotAuthenticated,
    NotReady,
)
from tests.support.backend import FleetBackend
from tests.support.fleets import generated_fleet


def client_for(handler, timeout: float = 5.0) -> BackendClient:
    return BackendClient(
        "http://backend:8080/", timeout=timeout, transport=httpx.MockTransport(handler)
    )


async def test_parses_pages_and_sends_query_parameters() -> None:
    fake = FleetBackend.generated(tenants=30)
    client = BackendClient("http://backend", transport=fake.transport(), token=fake.token)
    page = await client.tenants(q="team-b", sort="-gpu_used", offset=0, limit=10)
    assert [t.name for t in page.items] == ["team-b1", "team-b"]  # 7 GPUs used, then 1
    assert page.total == 2
    assert all(isinstance(t, Tenant) for t in page.items)
    sent = fake.requests[-1].url
    assert sent.path == "/api/v1/tenants"
    assert sent.params["q"] == "team-b" and sent.params["sort"] == "-gpu_used"
    assert sent.params["limit"] == "10"
    await client.aclose()


async def test_unset_filters_are_not_sent() -> None:
    fake = FleetBackend()
    client = BackendClient("http://backend", transport=fake.transport(), token=fake.token)
    page = await client.gpus(node="gpu-node-0001", idle=False)
    assert page.items and all(isinstance(g, Gpu) and g.node == "gpu-node-0001" for g in page.items)
    params = fake.requests[-1].url.params
    assert params["idle"] == "false"
    assert "q" not in params and "tenant" not in params and "sort" not in params


async def test_detail_paths_escape_untrusted_names() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(404, json={"detail": 'tenant "a/../b?x" not found'})

    client = client_for(handler)
    with pytest.raises(BackendError) as caught:
        await client.tenant("a/../b?x")
    assert seen == ["/api/v1/tenants/a%2F..%2Fb%3Fx"]
    assert caught.value.status == 404
    assert caught.value.message == 'backend error 404: tenant "a/../b?x" not found'
    assert not isinstance(caught.value, BackendUnavailable)


async def test_workload_detail_is_parsed() -> None:
    fake = FleetBackend()
    client = BackendClient("http://backend", transport=fake.transport(), token=fake.token)
    detail = await client.workload("team-a", "InferenceService", "model-00002")
    assert detail.kind is WorkloadKind.INFERENCE_SERVICE
    assert detail.revisions == []


async def test_server_error_carries_the_detail() -> None:
    client = client_for(lambda r: httpx.Response(503, json={"detail": "cache not synced"}))
    with pytest.raises(BackendError) as caught:
        await client.overview()
    assert caught.value.status == 503
    assert "cache not synced" in caught.value.message


async def test_no_fleet_data_yet_is_not_ready_with_the_sync_progress() -> None:
    fake = FleetBackend()
    fake.source.model = None
    fake.source.freshness = lambda: DataFreshness(  # type: ignore[method-assign]
        synced=False,
        cluster_problem="cluster not synced yet: 0 of 1 kinds listed: HTTP 401 Unauthorized",
        kinds=[KindFreshness(kind="pods", state="pending", error="HTTP 401 Unauthorized")],
    )
    client = BackendClient("http://backend", transport=fake.transport(), token=fake.token)
    with pytest.raises(NotReady) as caught:
        await client.workloads()
    assert isinstance(caught.value, BackendError) and caught.value.status == 503
    assert caught.value.message.startswith("no fleet data yet: cluster not synced yet")
    assert caught.value.sync == SyncProgress(
        reason=SyncReason.CLUSTER_UNAUTHORIZED,
        kinds_listed=0,
        kinds_total=1,
        cluster_error="HTTP 401 Unauthorized",
    )


async def test_error_without_json_body_uses_the_reason() -> None:
    client = client_for(lambda r: httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(BackendError, match="502: Bad Gateway"):
        await client.info()


async def test_validation_error_list_detail_is_shown() -> None:
    body = {"detail": [{"loc": ["query", "limit"], "msg": "too big"}]}
    client = client_for(lambda r: httpx.Response(422, json=body))
    with pytest.raises(BackendError, match=r"422: .*too big"):
        await client.tenants(limit=5000)


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b'{"items": "nope", "total": 1}',
        b"[]",
        json.dumps({"total": 3}).encode(),
    ],
)
async def test_malformed_answers(body: bytes) -> None:
    client = client_for(lambda r: httpx.Response(200, content=body))
    with pytest.raises(BackendError) as caught:
        await client.tenants()
    assert caught.value.message.startswith("malformed answer from backend: /tenants")
    assert not isinstance(caught.value, BackendUnavailable)


async def test_connect_error_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(BackendUnavailable, match="unreachable"):
        await client_for(refuse).overview()


async def test_real_refused_port_is_unavailable() -> None:
    client = BackendClient("http://127.0.0.1:9", timeout=2.0)  # discard port: nobody listens
    with pytest.raises(BackendUnavailable):
        await client.info()
    await client.aclose()


async def test_timeout_is_unavailable() -> None:
    fake = FleetBackend()
    fake.mode = "slow"
    client = BackendClient(
        "http://backend", timeout=0.05, transport=fake.transport(), token=fake.token
    )
    with pytest.raises(BackendUnavailable, match="timed out"):
        await asyncio.wait_for(client.nodes(), 5)


@pytest.mark.parametrize(
    "name", ["a/b", "..", ".", "x?y#z", "50%2F", "team a", "line\nbreak", "t\u202e/../x"]
)
async def test_a_tenant_whose_name_is_no_valid_path_segment_still_opens(name: str) -> None:
    fleet = generated_fleet(tenants=2, workloads=2, nodes=1)
    fleet.cluster["namespaces"][("", "team-a")]["metadata"]["labels"][TENANT_LABEL] = name
    fake = FleetBackend(fleet)
    client = BackendClient("http://backend", transport=fake.transport(), token=fake.token)
    tenant = await client.tenant(name)
    assert tenant.name == name
    assert tenant.namespaces == ["team-a"]


async def test_a_refused_token_is_not_authenticated_with_a_hint_when_none_was_given() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"detail": "token expired"})

    client = BackendClient("http://backend", transport=httpx.MockTransport(refuse), token="old")
    with pytest.raises(NotAuthenticated) as caught:
        await client.overview()
    assert caught.value.message == "not authenticated: token expired"
    assert caught.value.status == 401 and not isinstance(caught.value, BackendUnavailable)
    with pytest.raises(NotAuthenticated, match=r"no token given: pass --token, set OPSCONSOLE"):
        await client_for(refuse).overview()


async def test_whoami_is_none_from_a_backend_without_identities() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer t"
        if request.url.path.endswith("/whoami"):
            return httpx.Response(200, json={"operator": "o", "role": "viewer", "tenants": ["a"]})
        return httpx.Response(404, json={"detail": "Not Found"})

    client = BackendClient("http://backend", transport=httpx.MockTransport(answer), token="t")
    assert await client.whoami() == Whoami(operator="o", role="viewer", tenants=["a"])
    older = client_for(lambda r: httpx.Response(404, json={"detail": "Not Found"}))
    assert await older.whoami() is None
    failing = client_for(lambda r: httpx.Response(500, json={"detail": "boom"}))
    with pytest.raises(BackendError, match="boom"):
        await failing.whoami()


async def test_a_read_only_client_sends_no_change() -> None:
    fake = FleetBackend()
    client = BackendClient(
        "http://backend", transport=fake.transport(), token=fake.token, read_only=True
    )
    detail = await client.workload("team-a", "InferenceService", "model-00002")
    assert detail.name == "model-00002"  # reads go on
    for change in (
        client.rollback_plan("team-a", "InferenceService", "model-00002"),
        client.promote_plan("team-a", "InferenceService", "model-00002"),
    ):
        with pytest.raises(BackendError, match="read-only console: changes are not sent"):
            await change
    assert [r.method for r in fake.requests] == ["GET"]
