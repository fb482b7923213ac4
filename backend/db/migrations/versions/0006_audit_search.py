"""Indexes for searching the audit log: free text by trigrams, and the actor + action + outcome
combination.

Free text is a case-insensitive substring of seven columns. A trigram index finds the few
records that can contain the words without reading the table: on SQLite an FTS5 table with the
``trigram`` tokenizer over those columns (its content is ``audit_record`` itself, kept in step by
triggers); on PostgreSQL a ``pg_trgm`` GIN index over the columns joined into one text. Both are
candidates only: the search still applies its exact ``ILIKE`` to each column. Existing records
are indexed here.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TEXT_COLUMNS = ("actor", "action", "target", "reason", "error", "parameters", "tenants")
# Must stay identical to ``backend.audit.store.PG_TEXT`` (the planner matches the expression).
PG_TEXT = (
    "(actor || ' ' || action || ' ' || target || ' ' || reason || ' ' || coalesce(error, '')"
    " || ' ' || parameters || ' ' || tenants)"
)


def _sqlite_upgrade() -> None:
    columns = ", ".join(TEXT_COLUMNS)
    new = ", ".join(f"new.{c}" for c in TEXT_COLUMNS)
    old = ", ".join(f"old.{c}" for c in TEXT_COLUMNS)
    forget = (
        f"INSERT INTO audit_text(audit_text, rowid, {columns}) VALUES ('delete', old.seq, {old});"
    )
    index = f"INSERT INTO audit_text(rowid, {columns}) VALUES (new.seq, {new});"
    op.execute(
        f"CREATE VIRTUAL TABLE audit_text USING fts5({columns}, content='audit_record',"
        " content_rowid='seq', tokenize='trigram')"
    )
    op.execute(f"CREATE TRIGGER audit_text_insert AFTER INSERT ON audit_record BEGIN {index} END")
    op.execute(f"CREATE TRIGGER audit_text_delete AFTER DELETE ON audit_record BEGIN {forget} END")
    op.execute(
        f"CREATE TRIGGER audit_text_update AFTER UPDATE ON audit_record BEGIN {forget} {index} END"
    )
    op.execute("INSERT INTO audit_text(audit_text) VALUES ('rebuild')")


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        _sqlite_upgrade()
    else:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            f"CREATE INDEX ix_audit_record_text ON audit_record USING gin ({PG_TEXT} gin_trgm_ops)"
        )
    op.create_index(
        "ix_audit_record_actor_action_outcome_seq",
        "audit_record",
        ["actor", "action", "outcome", "seq"],
    )


def downgrade() -> None:
    op.drop_index("ix_audit_record_actor_action_outcome_seq", "audit_record")
    if op.get_context().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER audit_text_{trigger}")
        op.execute("DROP TABLE audit_text")
    else:
        op.execute("DROP INDEX ix_audit_record_text")
