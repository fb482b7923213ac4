"""SQLite's free-text index follows the appends instead of being written by them.

Indexing a record's trigrams costs several times its insert, and appends are serialized, so the
insert trigger of 0006 no longer indexes new records: a background step indexes the records past
a watermark (``audit_text_indexed``: every record numbered up to it is in the index), and a
search reads the few records past it without the index. The triggers still keep the indexed
records in step with raw edits, and index an inserted record at or below the watermark (a forged
row, or an append after the newest rows were truncated). PostgreSQL's index is unchanged.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TEXT_COLUMNS = ("actor", "action", "target", "reason", "error", "parameters", "tenants")
INDEXED = "(SELECT seq FROM audit_text_indexed)"


def _index(row: str) -> str:
    values = ", ".join(f"{row}.{c}" for c in TEXT_COLUMNS)
    return (
        f"INSERT INTO audit_text(rowid, {', '.join(TEXT_COLUMNS)})"
        f" SELECT {row}.seq, {values} WHERE {row}.seq <= {INDEXED};"
    )


def _forget(row: str) -> str:
    values = ", ".join(f"{row}.{c}" for c in TEXT_COLUMNS)
    return (
        f"INSERT INTO audit_text(audit_text, rowid, {', '.join(TEXT_COLUMNS)})"
        f" SELECT 'delete', {row}.seq, {values} WHERE {row}.seq <= {INDEXED};"
    )


def _drop_triggers() -> None:
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER audit_text_{trigger}")


def upgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    op.execute("CREATE TABLE audit_text_indexed (seq INTEGER NOT NULL)")
    # 0006 indexed every record so far.
    op.execute("INSERT INTO audit_text_indexed SELECT coalesce(max(seq), 0) FROM audit_record")
    _drop_triggers()
    op.execute(
        f"CREATE TRIGGER audit_text_insert AFTER INSERT ON audit_record BEGIN {_index('new')} END"
    )
    op.execute(
        f"CREATE TRIGGER audit_text_delete AFTER DELETE ON audit_record BEGIN {_forget('old')} END"
    )
    op.execute(
        "CREATE TRIGGER audit_text_update AFTER UPDATE ON audit_record"
        f" BEGIN {_forget('old')} {_index('new')} END"
    )


def downgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    _drop_triggers()
    op.execute("DROP TABLE audit_text_indexed")
    columns = ", ".join(TEXT_COLUMNS)
    new = ", ".join(f"new.{c}" for c in TEXT_COLUMNS)
    old = ", ".join(f"old.{c}" for c in TEXT_COLUMNS)
    forget = (
        f"INSERT INTO audit_text(audit_text, rowid, {columns}) VALUES ('delete', old.seq, {old});"
    )
    index = f"INSERT INTO audit_text(rowid, {columns}) VALUES (new.seq, {new});"
    op.execute(f"CREATE TRIGGER audit_text_insert AFTER INSERT ON audit_record BEGIN {index} END")
    op.execute(f"CREATE TRIGGER audit_text_delete AFTER DELETE ON audit_record BEGIN {forget} END")
    op.execute(
        f"CREATE TRIGGER audit_text_update AFTER UPDATE ON audit_record BEGIN {forget} {index} END"
    )
    op.execute("INSERT INTO audit_text(audit_text) VALUES ('rebuild')")
