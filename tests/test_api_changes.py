"""Rollbacks and the audit log through the backend's HTTP API, on a sandbox over real HTTP, and
the ``opsconsole audit`` commands against the same backend."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import kubernetes
import pytest

from opsconsole.cli import main as cli
from tests.conftest import LiveCluster
from tests.support.tokens import bearer

FAKE_FINGERPRINT = "0" * 64 + "." + "0" * 64
HEADERS = {
    "X-Opsconsole-Ssh-Client": "10.9.8.7 50022 10.0.0.1 22",
    "User-Agent": "pytest-console",
}


@pytest.fixture(scope="module")
def api(mutable_cluster: LiveCluster) -> Iterator[httpx.Client]:
    """Alice, an admin, over the console's headers."""
    headers = {**HEADERS, **bearer(mutable_cluster.token_for("alice"))}
    with httpx.Client(base_url=mutable_cluster.backend_url, timeout=30.0, headers=headers) as http:
        yield http


@pytest.fixture(scope="module")
def release(api: httpx.Client) -> dict[str, Any]:
    """A production Deployment of the demo fleet with at least two revisions."""
    page = api.get("/api/v1/workloads", params={"kind": "Deployment", "limit": 200}).json()
    for row in page["items"]:
        detail = api.get(f"/api/v1/workloads/{row['namespace']}/Deployment/{row['name']}").json()
        if len(detail["revisions"]) >= 2:
            return detail
    raise AssertionError("the demo fleet has no Deployment with two revisions")


def rollback_url(release: dict[str, Any], step: str, kind: str = "deployment") -> str:
    return f"/api/v1/workloads/{release['namespace']}/{kind}/{release['name']}/rollback/{step}"


def wait_for_revision(api: httpx.Client, release: dict[str, Any], revision: str) -> float:
    """Seconds until the workload's current revision is ``revision`` in ``/api/v1``."""
    start = time.monotonic()
    path = f"/api/v1/workloads/{release['namespace']}/Deployment/{release['name']}"
    while time.monotonic() - start < 10:
        if api.get(path).json()["revision"] == revision:
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"revision {revision} did not show within 10 s")


def test_plan_shows_kubectls_target_and_a_readable_diff(
    api: httpx.Client, release: dict[str, Any]
) -> None:
    answer = api.post(rollback_url(release, "plan"), json={})
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    current = int(release["revision"])
    assert plan["details"]["current_revision"] == current
    assert plan["details"]["target_revision"] < current
    assert plan["action"] == "rollout.undo"
    assert plan["target"] == f"deployment/{release['namespace']}/{release['name']}"
    assert re.fullmatch(r"[0-9a-f]{64}\.[0-9a-f]{64}", plan["fingerprint"]) and plan["noop"] is None
    paths = [d["path"] for d in plan["diff"]]
    assert any(p.startswith("spec.template.spec.containers[") for p in paths), paths
    # Kind spelled as kubectl accepts it, any case.
    assert api.post(rollback_url(release, "plan", "Deploy"), json={}).json() == plan


def test_apply_rolls_back_shows_at_once_and_is_audited(
    api: httpx.Client, release: dict[str, Any], mutable_cluster: LiveCluster
) -> None:
    plan = api.post(rollback_url(release, "plan"), json={}).json()
    body = {"fingerprint": plan["fingerprint"], "reason": "p99 latency doubled after rollout"}
    answer = api.post(rollback_url(release, "apply"), json=body)
    assert answer.status_code == 200, answer.text
    applied = answer.json()
    assert applied["outcome"] == "succeeded" and applied["error"] is None
    new_revision = str(int(release["revision"]) + 1)
    assert wait_for_revision(api, release, new_revision) < 5

    records = api.get("/api/v1/audit", params={"change_id": applied["change_id"]}).json()
    outcome, intent = records["items"]
    assert (intent["stage"], outcome["stage"], outcome["outcome"]) == (
        "intent",
        "outcome",
        "succeeded",
    )
    assert outcome["actor"] == "alice" and outcome["role"] == "admin"
    assert outcome["ssh_client"] == HEADERS["X-Opsconsole-Ssh-Client"]
    assert outcome["user_agent"] == "pytest-console"
    assert outcome["source_address"] == "127.0.0.1"
    assert outcome["reason"] == body["reason"]
    assert outcome["tenants"] == [release["tenant"]]

    detail = api.get(f"/api/v1/audit/{outcome['seq']}").json()
    assert detail["diff"] == plan["diff"]
    assert api.get("/api/v1/audit/999999").status_code == 404

    verified = api.get("/api/v1/audit/verify").json()
    assert verified["ok"] and verified["head"]["seq"] == outcome["seq"]
    chain = api.get("/api/v1/audit/chain").json()  # what the console shows: the latest check
    assert chain["ok"] and chain["checked_at"] >= verified["checked_at"]
    assert verified["external_head"] == verified["head"]
    core = kubernetes.client.CoreV1Api(
        kubernetes.config.new_client_from_config(str(mutable_cluster.kubeconfig))
    )
    head = core.read_namespaced_config_map("opsconsole-audit-head", "opsconsole").data
    assert head is not None
    assert head["sequence"] == str(outcome["seq"]) and head["hash"] == outcome["hash"]


def test_a_stale_plan_answers_409_with_the_new_one(api: httpx.Client, release: dict) -> None:
    plan = api.post(rollback_url(release, "plan"), json={}).json()
    first = api.post(
        rollback_url(release, "apply"), json={"fingerprint": plan["fingerprint"], "reason": "one"}
    )
    assert first.status_code == 200
    wait_for_revision(api, release, str(plan["details"]["current_revision"] + 1))
    second = api.post(
        rollback_url(release, "apply"), json={"fingerprint": plan["fingerprint"], "reason": "two"}
    )
    assert second.status_code == 409
    body = second.json()
    assert "changed since the plan" in body["detail"]
    assert body["plan"]["fingerprint"] != plan["fingerprint"]


@pytest.mark.parametrize(
    ("kind", "name", "body", "status", "words"),
    [
        ("deployment", None, {"fingerprint": FAKE_FINGERPRINT, "reason": " "}, 422, "reason is required"),
        ("deployment", None, {"to_revision": 999, "fingerprint": FAKE_FINGERPRINT, "reason": "r"}, 422,
         "unable to find specified revision 999"),
        ("deployment", "no-such-release", {"fingerprint": FAKE_FINGERPRINT, "reason": "r"}, 422,
         "not found"),
        ("job", None, {"fingerprint": FAKE_FINGERPRINT, "reason": "r"}, 422,
         "deployments and inferenceservices only"),
        ("deployment", None, {"fingerprint": "short", "reason": "r"}, 422, "fingerprint"),
        ("deployment", None, {"to_revision": -1, "fingerprint": FAKE_FINGERPRINT, "reason": "r"}, 422,
         "to_revision"),
    ],
)  # fmt: skip
def test_bad_applies_change_nothing(
    api: httpx.Client,
    release: dict[str, Any],
    kind: str,
    name: str | None,
    body: dict[str, Any],
    status: int,
    words: str,
) -> None:
    path = f"/api/v1/workloads/{release['namespace']}"
    before = api.get(f"{path}/Deployment/{release['name']}").json()["revision"]
    answer = api.post(f"{path}/{kind}/{name or release['name']}/rollback/apply", json=body)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["detail"]
    assert api.get(f"{path}/Deployment/{release['name']}").json()["revision"] == before


def test_audit_search_filters_and_pages(api: httpx.Client) -> None:
    everything = api.get("/api/v1/audit", params={"limit": 1000}).json()["items"]
    assert [r["seq"] for r in everything] == sorted((r["seq"] for r in everything), reverse=True)
    invalid = api.get("/api/v1/audit", params={"outcome": "invalid"}).json()["items"]
    assert invalid and {r["outcome"] for r in invalid} == {"invalid"}
    undo = api.get("/api/v1/audit", params={"action": "rollout.*", "actor": "alice"}).json()
    assert len(undo["items"]) == len(everything)
    assert api.get("/api/v1/audit", params={"action": "quota.*"}).json()["items"] == []
    text = api.get("/api/v1/audit", params={"q": "P99 LATENCY"}).json()["items"]
    assert {r["reason"] for r in text} == {"p99 latency doubled after rollout"}
    # A page of one at a time visits every record once.
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/audit", params=params).json()
        seen += [r["seq"] for r in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [r["seq"] for r in everything]
    assert api.get("/api/v1/audit", params={"outcome": "maybe"}).status_code == 422
    assert api.get("/api/v1/audit", params={"cursor": "x"}).status_code == 422


def test_cli_verify_list_and_export(
    mutable_cluster: LiveCluster,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSCONSOLE_TOKEN", mutable_cluster.token)
    backend = ["--backend", mutable_cluster.backend_url]
    assert cli(["audit", *backend, "verify"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("verified ") and "matches the head kept outside" in out
    assert cli(["audit", "verify", "--database", mutable_cluster.database_url]) == 0
    assert capsys.readouterr().out.startswith("verified ")

    assert cli(["audit", *backend, "list", "outcome:invalid", "--output", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed and {r["outcome"] for r in listed} == {"invalid"}
    assert cli(["audit", *backend, "list", "since:1h"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["SEQ", "TIME", "(UTC)"]

    assert cli(["audit", *backend, "export", "--since", "1d", "--output", "jsonl"]) == 0
    exported = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["seq"] for r in exported] == sorted(r["seq"] for r in exported)
    assert cli(["audit", *backend, "export", "--output", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["seq"]) for r in rows] == [r["seq"] for r in exported]
    assert [json.loads(r["tenants"]) for r in rows] == [r["tenants"] for r in exported]
    assert [r["hash"] for r in rows] == [r["hash"] for r in exported]

    assert cli(["audit", *backend, "list", "since:soon"]) == 2
    assert "is not a time" in capsys.readouterr().err
