"""``opsconsole token create|revoke`` take the one change path's steps: intent, change, outcome.
With the audit log unwritable nothing is created or revoked and the operator is told why; a token
whose outcome cannot be recorded is withdrawn and never shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.audit.store import AuditStore
from backend.db.engine import create_db_engine
from backend.db.migrate import upgrade
from backend.identity.tokens import TokenStore
from backend.schemas import AuditFilter, AuditRecord
from opsconsole.cli import main as cli
from tests.pg_fixture import PgServer, private_pg  # noqa: F401

CREATE = ["token", "create", "--operator", "tess", "--role", "operator", "--output", "json"]


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'opsconsole.db'}"
    upgrade(url)
    return url


def records(url: str) -> list[AuditRecord]:
    engine = create_db_engine(url)
    try:
        return list(AuditStore(engine).export(AuditFilter()))
    finally:
        engine.dispose()


def refuse_inserts(url: str, table: str = "audit_record", stage: str | None = None) -> None:
    """Make ``table`` refuse inserts (of audit records of one stage only, if given), as a full
    disk or a revoked grant would; every other table stays writable."""
    when = f"WHEN NEW.stage = '{stage}'" if stage else ""
    engine = create_db_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TRIGGER refuse_inserts BEFORE INSERT ON {table} {when} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is read-only'); END"
            )
        )
    engine.dispose()


def accept_inserts(url: str) -> None:
    engine = create_db_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER refuse_inserts"))
    engine.dispose()


def issued(url: str) -> list[dict[str, object]]:
    engine = create_db_engine(url)
    try:
        return [{"id": i.token_id, "revoked": i.revoked} for i in TokenStore(engine).list()]
    finally:
        engine.dispose()


def test_create_records_intent_then_outcome(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli([*CREATE, "--tenants", "team-a", "--database", database]) == 0
    created = json.loads(capsys.readouterr().out)
    intent, outcome = records(database)
    assert (intent.stage, outcome.stage) == ("intent", "outcome")
    assert intent.change_id == outcome.change_id
    assert intent.target == outcome.target == f"token/{created['id']}"
    assert intent.outcome is None and outcome.outcome == "succeeded"
    assert intent.after == {
        "id": created["id"],
        "operator": "tess",
        "role": "operator",
        "tenants": ["team-a"],
        "expires": None,
    }
    assert isinstance(outcome.after, dict) and outcome.after["created"] == created["created"]
    assert created["token"] not in json.dumps(
        [r.model_dump(mode="json") for r in records(database)]
    )


def test_no_token_is_created_when_the_intent_cannot_be_written(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    refuse_inserts(database)
    assert cli([*CREATE, "--database", database]) == 1
    printed = capsys.readouterr()
    assert printed.out == ""
    assert "no token created: the audit log cannot be written" in printed.err
    assert "audit_record is read-only" in printed.err
    assert issued(database) == [] and records(database) == []

    accept_inserts(database)  # writable again: the same command goes through
    assert cli([*CREATE, "--database", database]) == 0
    created = json.loads(capsys.readouterr().out)
    assert [t["id"] for t in issued(database)] == [created["id"]]
    assert [r.outcome for r in records(database)] == [None, "succeeded"]


def test_a_token_whose_outcome_cannot_be_written_is_revoked_and_never_shown(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    refuse_inserts(database, stage="outcome")
    assert cli([*CREATE, "--database", database]) == 1
    printed = capsys.readouterr()
    assert printed.out == "" and "opsc_" not in printed.err
    assert "not issued: the audit log cannot be written" in printed.err
    assert "it was revoked and is not shown" in printed.err
    [token] = issued(database)
    assert token["revoked"] is not None
    [intent] = records(database)  # the attempt is on record
    assert intent.stage == "intent" and intent.target == f"token/{token['id']}"


def test_a_token_the_database_refuses_is_recorded_as_failed(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    refuse_inserts(database, table="api_token")
    assert cli([*CREATE, "--database", database]) == 1
    printed = capsys.readouterr()
    assert printed.out == ""
    assert "no token created (IntegrityError: " in printed.err
    assert issued(database) == []
    intent, outcome = records(database)
    assert (intent.change_id, outcome.outcome) == (outcome.change_id, "failed")
    assert "api_token is read-only" in (outcome.error or "")


def test_revoke_is_refused_when_the_intent_cannot_be_written(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli([*CREATE, "--database", database]) == 0
    token_id = json.loads(capsys.readouterr().out)["id"]
    refuse_inserts(database)
    assert cli(["token", "revoke", token_id, "--database", database]) == 1
    assert f"token {token_id} not revoked: the audit log cannot be written" in (
        capsys.readouterr().err
    )
    assert issued(database) == [{"id": token_id, "revoked": None}]

    accept_inserts(database)
    assert cli(["token", "revoke", token_id, "--database", database]) == 0
    revoke = [r for r in records(database) if r.action == "token.revoke"]
    assert [r.outcome for r in revoke] == [None, "succeeded"]
    assert revoke[1].before == {"revoked": None}
    assert isinstance(revoke[1].after, dict) and revoke[1].after["revoked"]


def test_a_stopped_database_is_reported_and_nothing_is_created(
    private_pg: PgServer,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = private_pg.create_database()
    upgrade(url)
    private_pg.stop()
    try:
        assert cli([*CREATE, "--database", url]) == 1
        printed = capsys.readouterr()
        assert printed.out == ""
        assert "the database cannot be reached (OperationalError" in printed.err
    finally:
        private_pg.start()
    assert issued(url) == [] and records(url) == []
