"""Authentication, roles' reads and tenant scopes over HTTP: the real app on an in-memory fleet.

Every route but the probes needs a valid bearer token; a token with tenants sees the fleet's
totals but only its tenants' rows, workloads, GPUs and audit records.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.api.app import create_app
from backend.audit.log import AuditLog
from backend.audit.store import AuditStore
from backend.db.engine import create_db_engine
from backend.db.migrate import upgrade
from backend.identity.limiter import FailureLimiter
from backend.schemas import AuditEntry, AuditOutcome, AuditStage
from tests.support.backend import FleetBackend
from tests.support.tokens import bearer

SCOPE = frozenset({"team-b"})
READS = [
    "/api/v1/info",
    "/api/v1/whoami",
    "/api/v1/overview",
    "/api/v1/tenants",
    "/api/v1/tenants/team-b",
    "/api/v1/workloads",
    "/api/v1/nodes",
    "/api/v1/gpus",
    "/api/v1/audit",
    "/api/v1/audit/1",
    "/api/v1/audit/verify",
    "/openapi.json",
    "/docs",
    "/metrics",
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake(tmp_path: Path) -> FleetBackend:
    """The generated fleet with an audit log of one record per tenant, and one about none."""
    fake = FleetBackend()
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    store = AuditStore(create_db_engine(url))
    for tenants in (["team-b"], ["team-c"], ["team-b", "team-c"], []):
        store.append(
            AuditEntry(
                change_id="c" + "".join(tenants),
                stage=AuditStage.OUTCOME,
                actor="alice",
                role="admin",
                action="quota.set",
                target=f"tenant/{'+'.join(tenants) or 'none'}",
                tenants=tenants,
                outcome=AuditOutcome.SUCCEEDED,
            )
        )
    fake.source.audit = AuditLog(store)
    return fake


def client(fake: FleetBackend, token: str | None, app: Any = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app or fake.app)
    headers = bearer(token) if token else {}
    return httpx.AsyncClient(transport=transport, base_url="http://fake", headers=headers)


@pytest.fixture
async def anonymous(fake: FleetBackend) -> AsyncIterator[httpx.AsyncClient]:
    async with client(fake, None) as http:
        yield http


async def test_every_route_but_the_probes_needs_a_token(anonymous: httpx.AsyncClient) -> None:
    for probe in ("/healthz", "/readyz"):
        assert (await anonymous.get(probe)).status_code == 200
    for path in READS:
        answer = await anonymous.get(path)
        assert answer.status_code == 401, path
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in answer.json()["detail"]
    plan = await anonymous.post(
        "/api/v1/workloads/team-b/deployment/x/rollback/plan", json={"to_revision": 0}
    )
    assert plan.status_code == 401


async def test_every_operation_in_the_api_document_needs_a_token(fake: FleetBackend) -> None:
    async with client(fake, fake.token) as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
    operations = [
        (method, re.sub(r"\{[^}]+\}", "x", path))
        for path, methods in paths.items()
        for method in methods
        if path not in ("/healthz", "/readyz")
    ]
    assert len(operations) >= 25
    async with client(fake, None) as anonymous:
        for method, path in operations:
            answer = await anonymous.request(method, path, json={})
            assert answer.status_code == 401, (method, path, answer.text)


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
async def test_each_role_reads_everything(fake: FleetBackend, role: str) -> None:
    async with client(fake, fake.issue(f"{role}-1", role)) as http:
        for path in READS:
            answer = await http.get(path)
            assert answer.status_code == 200, (path, answer.text)
        who = (await http.get("/api/v1/whoami")).json()
    assert who == {"operator": f"{role}-1", "role": role, "tenants": None}


async def test_unknown_expired_and_revoked_tokens_are_refused(fake: FleetBackend) -> None:
    tokens = fake.source.tokens
    past = datetime.now(UTC) - timedelta(minutes=1)
    expired, _ = tokens.create("erin", "admin", expires=past)
    revoked, identity = tokens.create("rick", "admin")
    tokens.revoke(identity.token_id)
    soon = datetime.now(UTC) + timedelta(days=1)
    valid, _ = tokens.create("vera", "viewer", expires=soon)
    cases = {
        expired: "expired",
        revoked: "revoked",
        valid[:-2] + "xx": "not known",
        "not-even-ours": "not known",
    }
    for token, why in cases.items():
        async with client(fake, token) as http:
            answer = await http.get("/api/v1/overview")
        assert answer.status_code == 401
        assert why in answer.json()["detail"]
        assert answer.headers["www-authenticate"].startswith("Bearer")
    async with client(fake, valid) as http:
        assert (await http.get("/api/v1/overview")).status_code == 200


async def test_unknown_tokens_are_rate_limited_per_address(fake: FleetBackend) -> None:
    clock = Clock()
    app = create_app(
        fake.source, allowed_hosts=["fake"], auth_failures=FailureLimiter(3, 60.0, clock)
    )
    past = datetime.now(UTC) - timedelta(days=1)
    expired, _ = fake.source.tokens.create("erin", "admin", expires=past)
    fresh = fake.issue("fred", "viewer")
    async with (
        client(fake, "opsc_guess", app) as guessing,
        client(fake, fake.token, app) as working,
        client(fake, fresh, app) as arriving,
        client(fake, expired, app) as stale,
        client(fake, None, app) as anonymous,
    ):
        assert (await working.get("/api/v1/whoami")).status_code == 200
        for _ in range(4):  # known tokens and no token at all are not guesses
            assert (await stale.get("/api/v1/whoami")).status_code == 401
            assert (await anonymous.get("/api/v1/whoami")).status_code == 401
        for _ in range(3):
            assert (await guessing.get("/api/v1/whoami")).status_code == 401
        limited = await guessing.get("/api/v1/whoami")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "60"
        assert "too many unknown tokens" in limited.json()["detail"]
        # New tokens from the address are not looked at until the window has passed; a token
        # that worked before keeps working (an operator on the same bastion host).
        assert (await arriving.get("/api/v1/whoami")).status_code == 429
        assert (await working.get("/api/v1/whoami")).status_code == 200
        clock.now += 61
        assert (await arriving.get("/api/v1/whoami")).status_code == 200


async def test_other_host_names_are_refused(fake: FleetBackend) -> None:
    async with client(fake, fake.token) as http:
        rebound = await http.get("/api/v1/overview", headers={"host": "attacker.example"})
        assert rebound.status_code == 400
        assert "host name" in rebound.json()["detail"]
        assert (await http.get("/healthz", headers={"host": "10.1.2.3:8080"})).status_code == 200
        assert (await http.get("/api/v1/overview", headers={"host": "fake:80"})).status_code == 200
    loopback = create_app(fake.source)
    for host in ("localhost:8080", "127.0.0.1", "[::1]:8080"):
        async with client(fake, fake.token, loopback) as http:
            answer = await http.get("/api/v1/whoami", headers={"host": host})
            assert answer.status_code == 200, host


async def test_the_docs_load_nothing_from_elsewhere(fake: FleetBackend) -> None:
    async with client(fake, fake.token) as http:
        page = await http.get("/docs")
        schema = (await http.get("/openapi.json")).json()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text and "<link" not in page.text and "<img" not in page.text
    assert "http" not in page.text.replace("http-equiv", "")
    assert page.headers["content-security-policy"] == "default-src 'none'"
    assert "/api/v1/whoami" in page.text and "/api/v1/whoami" in schema["paths"]


# -- tenant scopes -----------------------------------------------------------------------------


async def items(http: httpx.AsyncClient, path: str, **params: str) -> list[dict]:
    answer = await http.get(path, params={"limit": "1000", **params})
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


async def test_a_scoped_token_sees_only_its_tenants(fake: FleetBackend) -> None:
    async with (
        client(fake, fake.token) as admin,
        client(fake, fake.issue("ann", "operator", SCOPE)) as ann,
    ):
        assert (await ann.get("/api/v1/whoami")).json() == {
            "operator": "ann",
            "role": "operator",
            "tenants": ["team-b"],
        }
        assert [t["name"] for t in await items(ann, "/api/v1/tenants")] == ["team-b"]
        assert (await ann.get("/api/v1/tenants/team-c")).status_code == 404
        assert (await ann.get("/api/v1/tenants/team-b")).status_code == 200

        everyone = await items(admin, "/api/v1/workloads")
        mine = await items(ann, "/api/v1/workloads")
        assert mine and {w["tenant"] for w in mine} == {"team-b"}
        assert len(mine) < len(everyone)
        assert await items(ann, "/api/v1/workloads", tenant="team-c") == []
        theirs = next(w for w in everyone if w["tenant"] == "team-c")
        detail = f"/api/v1/workloads/{theirs['namespace']}/{theirs['kind']}/{theirs['name']}"
        assert (await admin.get(detail)).status_code == 200
        assert (await ann.get(detail)).status_code == 404

        all_gpus = await items(admin, "/api/v1/gpus")
        gpus = await items(ann, "/api/v1/gpus")
        assert any(g["tenant"] == "team-c" for g in all_gpus)
        assert all(g["tenant"] == "team-b" or not g["allocated"] for g in gpus)
        assert any(g["tenant"] == "team-b" for g in gpus)
        assert len(await items(ann, "/api/v1/nodes")) == len(await items(admin, "/api/v1/nodes"))

        full = (await admin.get("/api/v1/overview")).json()
        seen = (await ann.get("/api/v1/overview")).json()
        assert seen["totals"] == full["totals"]  # fleet totals stay visible
        assert seen["gpu_models"] == full["gpu_models"]
        assert [t["name"] for t in seen["tenants"]] == ["team-b"]
        for gpu in seen["hottest"] + seen["idlest"]:
            assert gpu["tenant"] == "team-b" or not gpu["allocated"]
        names = {w["namespace"] for w in everyone if w["tenant"] != "team-b"}
        assert not any(p["subject"].split("/")[0] in names for p in seen["problems"])


async def test_a_scoped_token_sees_only_its_tenants_audit_records(fake: FleetBackend) -> None:
    async with (
        client(fake, fake.token) as admin,
        client(fake, fake.issue("ann", "viewer", SCOPE)) as ann,
    ):
        assert len(await items(admin, "/api/v1/audit")) == 4
        seen = await items(ann, "/api/v1/audit")
        assert sorted(r["target"] for r in seen) == ["tenant/team-b", "tenant/team-b+team-c"]
        assert await items(ann, "/api/v1/audit", tenant="team-c") == [seen[0]]
        by_target = {r["target"]: r["seq"] for r in await items(admin, "/api/v1/audit")}
        assert (await ann.get(f"/api/v1/audit/{by_target['tenant/team-b']}")).status_code == 200
        for other in ("tenant/team-c", "tenant/none"):
            answer = await ann.get(f"/api/v1/audit/{by_target[other]}")
            assert answer.status_code == 404
            assert (await admin.get(f"/api/v1/audit/{by_target[other]}")).status_code == 200
