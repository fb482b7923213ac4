"""The audit log end to end on a backend of its own: exports that read back exactly and verify
again, ``/readyz`` while an outcome waits to be written, and rows tampered with through raw SQL
reported by ``GET /api/v1/audit/verify``, ``opsconsole audit verify`` and an offline check."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from backend.db.engine import create_db_engine
from opsconsole.cli import main as cli
from tests.conftest import LiveCluster
from tests.support.tokens import bearer

GENESIS = "0" * 64
JSON_COLUMNS = ("tenants", "parameters", "before", "after", "resource_versions")
HOSTILE = 'roll back, "now" — naïve café 日本語 🚀\nsecond line; a,b,"c"\r\nthird'


@pytest.fixture(scope="module")
def api(mutable_cluster: LiveCluster) -> Iterator[httpx.Client]:
    headers = {**bearer(mutable_cluster.token_for("alice")), "User-Agent": "audit-live"}
    with httpx.Client(base_url=mutable_cluster.backend_url, timeout=30.0, headers=headers) as http:
        yield http


@pytest.fixture(scope="module")
def release(api: httpx.Client) -> str:
    """The apply URL of a Deployment with a history (without its last segment)."""
    page = api.get("/api/v1/workloads", params={"kind": "Deployment", "limit": 200}).json()
    for row in page["items"]:
        path = f"/api/v1/workloads/{row['namespace']}/deployment/{row['name']}"
        if len(api.get(path).json()["revisions"]) >= 2:
            return f"{path}/rollback"
    raise AssertionError("the demo fleet has no Deployment with two revisions")


def roll_back(api: httpx.Client, release: str, reason: str) -> dict[str, Any]:
    plan = api.post(f"{release}/plan", json={}).json()
    answer = api.post(
        f"{release}/apply", json={"fingerprint": plan["fingerprint"], "reason": reason}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def history(api: httpx.Client, release: str, mutable_cluster: LiveCluster) -> list[dict[str, Any]]:
    """Changes that succeeded, failed (a stale plan), were denied and were invalid, the first
    with a reason full of commas, quotes, newlines and non-ASCII text, and a token's creation.
    Returns every record, oldest first."""
    roll_back(api, release, "before the window")
    plan = api.post(f"{release}/plan", json={}).json()
    body = {"fingerprint": plan["fingerprint"], "reason": HOSTILE}
    assert api.post(f"{release}/apply", json=body).status_code == 200
    assert api.post(f"{release}/apply", json=body).status_code == 409  # stale now: failed
    viewer = bearer(mutable_cluster.token_for("vic", "viewer"))
    assert api.post(f"{release}/apply", json=body, headers=viewer).status_code == 403
    invalid = {**body, "to_revision": 999}
    assert api.post(f"{release}/apply", json=invalid).status_code == 422
    # A token's creation: its intent has nothing before.
    create = ["token", "create", "--operator", "tia", "--role", "viewer", "--output", "json"]
    assert cli([*create, "--database", mutable_cluster.database_url]) == 0
    records = api.get("/api/v1/audit", params={"limit": 1000, "order": "oldest"}).json()["items"]
    assert {r["outcome"] for r in records} >= {"succeeded", "failed", "denied", "invalid"}
    return list(records)


def chained_hash(record: dict[str, Any]) -> str:
    """A record's hash as a SIEM can recompute it from an export, with the standard library:
    SHA-256 of the previous hash's bytes and the record's canonical JSON (without its hash)."""
    fields = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(bytes.fromhex(record["prev_hash"]) + canonical.encode()).hexdigest()


def export(cli_args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert cli(cli_args) == 0
    return capsys.readouterr().out


def test_export_round_trips_field_by_field_and_verifies_again(
    api: httpx.Client,
    history: list[dict[str, Any]],
    mutable_cluster: LiveCluster,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSCONSOLE_TOKEN", mutable_cluster.token)
    first = next(i for i, r in enumerate(history) if r["reason"] == HOSTILE)
    since, until = history[first]["at"], history[-1]["at"]  # the last record is left out
    window = {"since": since, "until": until, "limit": 1000}
    listed = list(reversed(api.get("/api/v1/audit", params=window).json()["items"]))
    assert listed == history[first:-1]
    assert {r["outcome"] for r in listed} >= {"succeeded", "failed", "denied"}
    command = ["audit", "--backend", mutable_cluster.backend_url, "export"]
    command += ["--since", since, "--until", until]

    jsonl = export([*command, "--output", "jsonl"], capsys)
    exported = [json.loads(line) for line in jsonl.splitlines()]
    assert exported == listed
    assert any(r["reason"] == HOSTILE and r["before"] and r["after"] for r in exported)
    assert any(r["before"] is None for r in exported)
    # The export carries the chain: each record hashes to its hash and names its predecessor.
    for previous, record in zip([None, *exported], exported, strict=False):
        assert chained_hash(record) == record["hash"], record["seq"]
        if previous is not None:
            assert (record["seq"], record["prev_hash"]) == (previous["seq"] + 1, previous["hash"])

    rows = list(csv.DictReader(io.StringIO(export([*command, "--output", "csv"], capsys))))
    assert len(rows) == len(listed)
    for row, record in zip(rows, listed, strict=True):
        assert set(row) == set(record)
        for name, value in record.items():
            if name in JSON_COLUMNS:
                assert json.loads(row[name]) == value, name
            else:
                assert row[name] == ("" if value is None else str(value)), name


def test_readyz_says_when_an_outcome_waits_to_be_written(
    api: httpx.Client, release: str, mutable_cluster: LiveCluster
) -> None:
    with httpx.Client(base_url=mutable_cluster.backend_url, timeout=10.0) as anonymous:
        assert anonymous.get("/readyz").status_code == 200
        refuse_outcomes(mutable_cluster.database_url)
        try:
            applied = roll_back(api, release, "outcome written later")
            assert applied["outcome"] == "succeeded"  # the change itself went through
            answer = anonymous.get("/readyz")
            assert answer.status_code == 503
            detail = answer.json()["detail"]
            assert "audit log: 1 outcome(s) kept in memory, not yet written" in detail
            assert "outcomes refused" in detail  # the database's reason
        finally:
            accept_outcomes(mutable_cluster.database_url)
        deadline = time.monotonic() + 15
        while (answer := anonymous.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.2)
    records = api.get("/api/v1/audit", params={"change_id": applied["change_id"]}).json()
    assert [r["outcome"] for r in records["items"]] == ["succeeded", None]
    assert api.get("/api/v1/audit/verify").json()["ok"]


def refuse_outcomes(url: str) -> None:
    """The audit table refuses outcomes (intents still go in), as a database that fails between
    the two would."""
    with database(url) as conn:
        conn.execute(
            sa.text(
                "CREATE TRIGGER refuse_outcomes BEFORE INSERT ON audit_record "
                "WHEN NEW.stage = 'outcome' BEGIN SELECT RAISE(ABORT, 'outcomes refused'); END"
            )
        )


def accept_outcomes(url: str) -> None:
    with database(url) as conn:
        conn.execute(sa.text("DROP TRIGGER refuse_outcomes"))


@contextmanager
def database(url: str) -> Iterator[sa.Connection]:
    """A transaction on the backend's database, from outside the backend (what a tamperer has)."""
    engine = create_db_engine(url)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


# -- tampering -----------------------------------------------------------------------------------


def saved_rows(url: str, where: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``audit_record`` and ``audit_tenant`` rows ``where`` selects, to put back later."""
    with database(url) as conn:
        records = conn.execute(sa.text(f"SELECT * FROM audit_record WHERE {where}")).mappings()
        kept = [dict(r) for r in records]
        tenants = conn.execute(sa.text(f"SELECT * FROM audit_tenant WHERE {where}")).mappings()
        return kept, [dict(t) for t in tenants]


def put_back(url: str, where: str, rows: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    """Replace whatever ``where`` selects now with the rows saved before."""
    records, tenants = rows
    metadata = sa.MetaData()
    with database(url) as conn:
        conn.execute(sa.text(f"DELETE FROM audit_tenant WHERE {where}"))
        conn.execute(sa.text(f"DELETE FROM audit_record WHERE {where}"))
        record_table = sa.Table("audit_record", metadata, autoload_with=conn)
        tenant_table = sa.Table("audit_tenant", metadata, autoload_with=conn)
        conn.execute(sa.insert(record_table), records)
        if tenants:
            conn.execute(sa.insert(tenant_table), tenants)


@contextmanager
def tampered(url: str, where: str, *statements: str) -> Iterator[None]:
    """Run raw SQL ``statements`` on the audit tables while the block runs; the rows ``where``
    selects are put back as they were afterwards, whatever the block asserted."""
    rows = saved_rows(url, where)
    with database(url) as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    try:
        yield
    finally:
        put_back(url, where, rows)


def offline_copy(url: str, tmp_path: Path) -> str:
    """A consistent copy of the backend's SQLite database, as an operator would take."""
    copy = tmp_path / "copy.db"
    source = sqlite3.connect(url.removeprefix("sqlite:///"))
    target = sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    return f"sqlite:///{copy}"


def verify_everywhere(
    api: httpx.Client,
    cluster: LiveCluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> tuple[dict[str, Any], str, str]:
    """What the API, ``audit verify`` (its exit code checked here) and ``audit verify
    --database`` on a copy (its exit code, a space, then its output) say."""
    answer = api.get("/api/v1/audit/verify").json()
    capsys.readouterr()
    remote = cli(["audit", "--backend", cluster.backend_url, "verify"])
    remote_out = capsys.readouterr().out
    offline = cli(["audit", "verify", "--database", offline_copy(cluster.database_url, tmp_path)])
    offline_out = capsys.readouterr().out
    assert remote == (0 if answer["ok"] else 1)
    return answer, remote_out, f"{offline} {offline_out}"


@pytest.fixture
def as_admin(mutable_cluster: LiveCluster, monkeypatch: pytest.MonkeyPatch) -> LiveCluster:
    monkeypatch.setenv("OPSCONSOLE_TOKEN", mutable_cluster.token)
    return mutable_cluster


def test_an_edited_field_is_reported_at_its_record(
    api: httpx.Client,
    history: list[dict[str, Any]],
    as_admin: LiveCluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seq = next(r["seq"] for r in history if r["reason"] == HOSTILE)
    edit = f"UPDATE audit_record SET reason = 'routine' WHERE seq = {seq}"
    with tampered(as_admin.database_url, f"seq = {seq}", edit):
        answer, remote, offline = verify_everywhere(api, as_admin, tmp_path, capsys)
        problem = f"record #{seq} was altered: its hash does not match its contents"
        assert (answer["ok"], answer["broken_at"], answer["problem"]) == (False, seq, problem)
        assert answer["records"] == seq - 1
        assert remote == f"chain broken at record #{seq}: {problem}\n"
        assert offline == f"1 chain broken at record #{seq}: {problem}\n"
    assert api.get("/api/v1/audit/verify").json()["ok"]


def test_a_deleted_row_is_reported_at_its_place(
    api: httpx.Client,
    history: list[dict[str, Any]],
    as_admin: LiveCluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seq = history[len(history) // 2]["seq"]
    where = f"seq = {seq}"
    deletes = (f"DELETE FROM audit_tenant WHERE {where}", f"DELETE FROM audit_record WHERE {where}")
    with tampered(as_admin.database_url, where, *deletes):
        answer, remote, offline = verify_everywhere(api, as_admin, tmp_path, capsys)
        problem = f"record #{seq} is missing (the next record is #{seq + 1})"
        assert (answer["ok"], answer["broken_at"], answer["problem"]) == (False, seq, problem)
        assert remote == f"chain broken at record #{seq}: {problem}\n"
        assert offline == f"1 chain broken at record #{seq}: {problem}\n"
        capsys.readouterr()
        assert cli(["audit", "--backend", as_admin.backend_url, "verify", "--output", "json"]) == 1
        reported = json.loads(capsys.readouterr().out)
        assert (reported["broken_at"], reported["problem"]) == (seq, problem)
    assert api.get("/api/v1/audit/verify").json()["ok"]


def test_truncated_newest_rows_are_caught_by_the_head_kept_outside(
    api: httpx.Client,
    history: list[dict[str, Any]],
    as_admin: LiveCluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    whole = api.get("/api/v1/audit/verify").json()
    head = whole["head"]["seq"]
    assert whole["external_head"] == whole["head"]
    where = f"seq > {head - 2}"  # the newest change vanishes
    deletes = (f"DELETE FROM audit_tenant WHERE {where}", f"DELETE FROM audit_record WHERE {where}")
    with tampered(as_admin.database_url, where, *deletes):
        answer, remote, offline = verify_everywhere(api, as_admin, tmp_path, capsys)
        problem = (
            f"records #{head - 1} to #{head} are missing: the database ends at #{head - 2} but "
            f"the head kept outside it is #{head}"
        )
        assert (answer["ok"], answer["broken_at"], answer["problem"]) == (False, head - 1, problem)
        assert answer["external_head"] == whole["head"]
        assert remote == f"chain broken at record #{head - 1}: {problem}\n"
        # A copy checked offline has no head to compare with: its chain alone holds.
        assert offline.startswith(f"0 verified {head - 2} records, head #{head - 2} ")
    assert api.get("/api/v1/audit/verify").json()["ok"]
