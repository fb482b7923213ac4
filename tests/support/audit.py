"""A small audit log that is the same every time: records of every outcome, a hostile reason and
a before/after diff, at fixed times, so that their hashes and the pictures of the Audit screen
are reproducible. ``tamper`` edits a record behind the log's back, as raw SQL would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import sqlalchemy as sa

from backend.audit.log import AuditLog
from backend.audit.store import AuditStore, utc_timestamp
from backend.db.engine import create_db_engine
from backend.db.migrate import upgrade
from backend.schemas import AuditEntry, AuditOutcome, AuditStage

FIRST_AT = datetime(2026, 11, 29, 11, 0, tzinfo=UTC)
HOSTILE_REASON = (
    "[bold red]not markup[/] \x1b[31mnot a colour\x1b[0m\nline two\ttab "
    + "a very long reason that goes on and on " * 8
)
QUOTA_DIFF_SEQ = 2  # the outcome of alice's quota change: the record with a diff


def _quota(stage: AuditStage, outcome: AuditOutcome | None) -> AuditEntry:
    before = [
        {"object": "clusterqueue/team-a", "fields": {"/spec/nominalQuota/h100": 8}},
        {"object": "configmap/team-a/limits", "fields": {"/data/gpus": "8", "/data/note": None}},
    ]
    after = [
        {"object": "clusterqueue/team-a", "fields": {"/spec/nominalQuota/h100": 12}},
        {"object": "configmap/team-a/limits", "fields": {"/data/gpus": "12", "/data/note": "q4"}},
    ]
    return AuditEntry(
        change_id="c0ffee01",
        stage=stage,
        actor="alice",
        role="admin",
        source_address="10.0.0.5",
        ssh_client="10.0.0.9 51022 10.0.0.1 22",
        user_agent="opsconsole/test",
        action="quota.set",
        target="tenant/team-a",
        tenants=["team-a"],
        reason="training run for the Q4 release — approved by Zoë",
        parameters={"tenant": "team-a", "model": "h100", "gpus": 12},
        before=before,
        after=after,
        outcome=outcome,
        resource_versions={"clusterqueue/team-a": "4711", "configmap/team-a/limits": "4712"},
    )


def _outcome(
    change_id: str,
    actor: str,
    action: str,
    target: str,
    outcome: AuditOutcome,
    reason: str,
    error: str | None = None,
) -> AuditEntry:
    return AuditEntry(
        change_id=change_id,
        stage=AuditStage.OUTCOME,
        actor=actor,
        role="operator",
        source_address="10.0.0.7",
        action=action,
        target=target,
        tenants=[target.split("/")[1]],
        reason=reason,
        outcome=outcome,
        error=error,
    )


ENTRIES = [
    _quota(AuditStage.INTENT, None),
    _quota(AuditStage.OUTCOME, AuditOutcome.SUCCEEDED),
    _outcome(
        "c0ffee02",
        "bob",
        "rollout.undo",
        "deployment/team-b/llm",
        AuditOutcome.FAILED,
        "p99 latency doubled",
        error="the cluster changed since the plan was made; nothing was changed",
    ),
    _outcome(
        "c0ffee03",
        "mallory",
        "isvc.rollback",
        "inferenceservice/team-c/chat",
        AuditOutcome.DENIED,
        "roll back the chat model",
        error="mallory (viewer) may not change team-c",
    ),
    _outcome(
        "c0ffee04",
        "carol",
        "quota.transfer",
        "tenant/team-a",
        AuditOutcome.INVALID,
        "move two GPUs",
        error="team-a has no unused h100 quota to give",
    ),
    _outcome(
        "c0ffee05",
        "dave",
        "isvc.promote",
        "inferenceservice/team-c/chat",
        AuditOutcome.SUCCEEDED,
        HOSTILE_REASON,
    ),
]


def sample_audit_log(directory: Path) -> AuditLog:
    """An audit log in ``directory`` holding ``ENTRIES``, one a minute from ``FIRST_AT``."""
    url = f"sqlite:///{directory / 'audit.db'}"
    upgrade(url)
    store = AuditStore(create_db_engine(url))
    for minute, entry in enumerate(ENTRIES):
        at = utc_timestamp(FIRST_AT + timedelta(minutes=minute))
        with mock.patch("backend.audit.store.utc_timestamp", return_value=at):
            store.append(entry)
    return AuditLog(store)


def tamper(log: AuditLog, seq: int, reason: str) -> None:
    """Rewrite a record's reason in the database, leaving its hash as it was."""
    with log.store.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE audit_record SET reason = :reason WHERE seq = :seq"),
            {"reason": reason, "seq": seq},
        )
