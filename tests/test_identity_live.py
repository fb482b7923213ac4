"""Identity on a real sandbox and backend: each role on a change (allowed, or 403 and audited),
and the token command line working on the backend's database.
"""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from opsconsole.cli import main as cli
from tests.conftest import LiveCluster
from tests.support.tokens import bearer


def client(cluster: LiveCluster, token: str) -> httpx.Client:
    return httpx.Client(base_url=cluster.backend_url, timeout=30.0, headers=bearer(token))


@pytest.fixture(scope="module")
def admin(mutable_cluster: LiveCluster) -> Iterator[httpx.Client]:
    with client(mutable_cluster, mutable_cluster.token) as http:
        yield http


@pytest.fixture(scope="module")
def release(admin: httpx.Client) -> dict[str, Any]:
    """A Deployment with two revisions, in a tenant."""
    page = admin.get("/api/v1/workloads", params={"kind": "Deployment", "limit": 500}).json()
    for row in page["items"]:
        path = f"/api/v1/workloads/{row['namespace']}/Deployment/{row['name']}"
        detail = admin.get(path).json()
        if row["tenant"] and len(detail["revisions"]) >= 2 and not detail["paused"]:
            return detail
    raise AssertionError("the demo fleet has no Deployment with two revisions in a tenant")


def rollback(release: dict[str, Any], step: str) -> str:
    return f"/api/v1/workloads/{release['namespace']}/Deployment/{release['name']}/rollback/{step}"


def denials(admin: httpx.Client, actor: str) -> list[dict[str, Any]]:
    params = {"actor": actor, "outcome": "denied"}
    return admin.get("/api/v1/audit", params=params).json()["items"]


def test_each_role_on_a_rollback(
    mutable_cluster: LiveCluster, admin: httpx.Client, release: dict[str, Any]
) -> None:
    tenant = release["tenant"]
    tenants = [t["name"] for t in admin.get("/api/v1/tenants").json()["items"]]
    other = next(t for t in tenants if t != tenant)
    refused = {
        ("vic", "viewer", None): "role viewer may not change anything: rollout.undo needs role "
        "operator",
        ("oscar", "operator", frozenset({other})): f"role operator may not change tenant "
        f"{tenant}: your token's tenants are {other}",
    }
    allowed = [
        ("olga", "operator", frozenset({tenant, other})),
        ("otto", "operator", None),
        ("ada", "admin", frozenset({other})),  # an admin's scope limits reads, not rights
        ("adam", "admin", None),
    ]
    for (name, role, scope), why in refused.items():
        with client(mutable_cluster, mutable_cluster.token_for(name, role, scope)) as http:
            answer = http.post(rollback(release, "plan"), json={"to_revision": 0})
        assert answer.status_code == 403, answer.text
        assert answer.json()["detail"] == why
        [record] = denials(admin, name)
        assert (record["role"], record["error"]) == (role, why)
        assert record["target"] == f"deployment/{release['namespace']}/{release['name']}"
    for name, role, scope in allowed:
        with client(mutable_cluster, mutable_cluster.token_for(name, role, scope)) as http:
            answer = http.post(rollback(release, "plan"), json={"to_revision": 0})
        assert answer.status_code == 200, (name, answer.text)
        assert denials(admin, name) == []


def test_a_scoped_operator_applies_and_the_record_says_who(
    mutable_cluster: LiveCluster, admin: httpx.Client, release: dict[str, Any]
) -> None:
    token = mutable_cluster.token_for("olive", "operator", frozenset({release["tenant"]}))
    with client(mutable_cluster, token) as olive:
        plan = olive.post(rollback(release, "plan"), json={"to_revision": 0}).json()
        body = {"to_revision": 0, "fingerprint": plan["fingerprint"], "reason": "bad release"}
        applied = olive.post(rollback(release, "apply"), json=body)
    assert applied.status_code == 200, applied.text
    records = admin.get("/api/v1/audit", params={"actor": "olive"}).json()["items"]
    assert [(r["stage"], r["role"]) for r in records] == [
        ("outcome", "operator"),
        ("intent", "operator"),
    ]
    viewer = mutable_cluster.token_for("val", "viewer")
    with client(mutable_cluster, viewer) as val:
        denied = val.post(rollback(release, "apply"), json=body)
    assert denied.status_code == 403
    assert len(denials(admin, "val")) == 1


def test_token_commands_on_the_backends_database(
    mutable_cluster: LiveCluster,
    admin: httpx.Client,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = ["--database", mutable_cluster.database_url]
    create = ["token", "create", "--operator", "tess", "--role", "operator"]
    assert (
        cli([*create, "--tenants", "team-b,team-a", "--expires", "30d", *db, "--output", "json"])
        == 0
    )
    created = json.loads(capsys.readouterr().out)
    token = created["token"]
    assert token.startswith("opsc_") and len(token) > 40
    assert (created["operator"], created["role"], created["tenants"]) == (
        "tess",
        "operator",
        ["team-a", "team-b"],
    )
    expires = datetime.fromisoformat(created["expires"].replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    with client(mutable_cluster, token) as tess:
        assert tess.get("/api/v1/whoami").json() == {
            "operator": "tess",
            "role": "operator",
            "tenants": ["team-a", "team-b"],
        }

        # The database comes from the environment too; the listing never shows a token.
        monkeypatch.setenv("OPSCONSOLE_DATABASE_URL", mutable_cluster.database_url)
        assert cli(["token", "list", "--output", "json"]) == 0
        listed = capsys.readouterr().out
        assert "opsc_" not in listed
        mine = next(t for t in json.loads(listed) if t["id"] == created["id"])
        assert mine["revoked"] is None and "token" not in mine
        assert cli(["token", "list"]) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0].split() == [
            "ID",
            "OPERATOR",
            "ROLE",
            "TENANTS",
            "CREATED",
            "EXPIRES",
            "STATE",
        ]
        assert any(
            line.split()[:4] == [created["id"], "tess", "operator", "team-a,team-b"]
            for line in table
        )

        assert cli(["token", "revoke", created["id"]]) == 0
        assert f"revoked token {created['id']}" in capsys.readouterr().out
        deadline = time.monotonic() + 10
        while (answer := tess.get("/api/v1/whoami")).status_code == 200:
            assert time.monotonic() < deadline, "the revoked token still works"
            time.sleep(0.2)
    assert answer.status_code == 401 and "revoked" in answer.json()["detail"]

    assert cli(["token", "revoke", "no-such-id"]) == 1
    assert cli([*create, "--expires", "soon"]) == 2
    assert "is not a lifetime" in capsys.readouterr().err
    assert cli(["token", "create", "--operator", "x", "--role", "viewer"]) == 0
    printed = capsys.readouterr()
    assert printed.out.strip().startswith("opsc_") and "viewer of every tenant" in printed.err

    records = admin.get("/api/v1/audit", params={"action": "token.*", "order": "oldest"})
    mine = [r for r in records.json()["items"] if r["target"] == f"token/{created['id']}"]
    assert [(r["action"], r["stage"], r["outcome"]) for r in mine] == [
        ("token.create", "intent", None),
        ("token.create", "outcome", "succeeded"),
        ("token.revoke", "intent", None),
        ("token.revoke", "outcome", "succeeded"),
    ]
    for record in mine:
        assert record["actor"] == getpass.getuser()
        assert record["source_address"] == "database"
        assert token not in json.dumps(record)
    assert mine[0]["parameters"]["tenants"] == ["team-a", "team-b"]
    assert mine[3]["after"]["revoked"]
    assert cli(["audit", "verify", *db]) == 0
