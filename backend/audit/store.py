"""Appending, searching and verifying audit records in the database.

The only writer of audit records. Appends are serialized by the database, not by the process, so
several backends sharing one PostgreSQL keep one gapless chain: an advisory transaction lock on
PostgreSQL, ``BEGIN IMMEDIATE`` (the database's write lock) on SQLite. Inside the lock the appender
reads the head, numbers the record head+1, chains its hash and commits. Nothing here updates or
deletes a record.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    Engine,
    Integer,
    and_,
    bindparam,
    column,
    exists,
    insert,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement
from sqlmodel import SQLModel

from backend.audit.chain import (
    GENESIS_HASH,
    JSON_FIELDS,
    SORTED_FIELDS,
    canonical_json_sql,
    record_hash,
    stored_json,
    stored_row_hash,
    text_hash,
)
from backend.audit.tables import AuditRecordRow, AuditTenantRow
from backend.schemas import AuditEntry, AuditFilter, AuditRecord, ChainHead, ChainVerification

RECORDS = SQLModel.metadata.tables[AuditRecordRow.__tablename__]
TENANTS = SQLModel.metadata.tables[AuditTenantRow.__tablename__]
COLUMNS = [c.name for c in RECORDS.columns]
# Any constant works; it names the lock that serializes appends across processes.
PG_APPEND_LOCK = 0x6F7073636F6E73  # "opscons"
# The free-text index (see the migration that creates it): the FTS5 table on SQLite, whose rowid
# is the record's seq, and on PostgreSQL the indexed expression, written exactly as indexed.
AUDIT_TEXT = table("audit_text", column("rowid", Integer), column("audit_text"))
PG_TEXT: ColumnElement[str] = literal_column(
    "(actor || ' ' || action || ' ' || target || ' ' || reason || ' ' || coalesce(error, '')"
    " || ' ' || parameters || ' ' || tenants)"
)


def utc_timestamp(moment: datetime | None = None) -> str:
    """``2026-11-30T10:00:00.000000Z``: fixed width, so text order is time order."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fields(row: Any) -> dict[str, Any]:
    """A row of ``audit_record`` as the record's fields (JSON text parsed)."""
    fields = dict(zip(COLUMNS, row, strict=True))
    for name in JSON_FIELDS:
        fields[name] = orjson.loads(fields[name])
    return fields


def glob_to_like(pattern: str) -> str:
    r"""``quota.*`` -> ``quota.%``; ``%``, ``_`` and ``\`` are matched literally."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def indexed_words(term: str) -> list[str]:
    """The parts of a free-text term (``*`` is a wildcard) that a trigram index can look up:
    those of three characters or more. Empty when the index cannot narrow the search."""
    return [part for part in term.split("*") if len(part) >= 3]


def fts_query(words: list[str]) -> str:
    """An FTS5 query for records containing every one of ``words``, each taken literally."""
    return " AND ".join('"' + word.replace('"', '""') + '"' for word in words)


class AuditStore:
    """The audit log in one database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    # -- append ----------------------------------------------------------------------------------
    def append(self, entry: AuditEntry) -> AuditRecord:
        """Number, chain and durably store one record; returns it as stored."""
        return self.append_many([entry])[0]

    def append_many(self, entries: list[AuditEntry]) -> list[AuditRecord]:
        """Append several records in one transaction: one lock, one durable commit."""
        stored: list[AuditRecord] = []
        with self.engine.connect() as conn:
            self._lock(conn)
            head = conn.execute(
                select(RECORDS.c.seq, RECORDS.c.hash).order_by(RECORDS.c.seq.desc()).limit(1)
            ).first()
            seq, prev_hash = (head[0], head[1]) if head else (0, GENESIS_HASH)
            rows, tenant_rows = [], []
            for entry in entries:
                seq += 1
                fields = entry.model_dump(mode="json")
                fields.update(seq=seq, prev_hash=prev_hash, at=utc_timestamp())
                fields["hash"] = prev_hash = record_hash(prev_hash, fields)
                rows.append(
                    {k: (stored_json(v) if k in JSON_FIELDS else v) for k, v in fields.items()}
                )
                tenant_rows += [{"tenant": t, "seq": seq} for t in sorted(set(entry.tenants))]
                stored.append(AuditRecord.model_validate(fields))
            conn.execute(insert(RECORDS), rows)
            if tenant_rows:
                conn.execute(insert(TENANTS), tenant_rows)
            conn.commit()
        return stored

    def _lock(self, conn: Connection) -> None:
        """Take the database-wide append lock for this transaction."""
        if self.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_APPEND_LOCK})
        elif self.dialect == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    # -- read ------------------------------------------------------------------------------------
    def head(self) -> ChainHead | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(RECORDS.c.seq, RECORDS.c.hash).order_by(RECORDS.c.seq.desc()).limit(1)
            ).first()
        return ChainHead(seq=row[0], hash=row[1]) if row else None

    def get(self, seq: int) -> AuditRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(RECORDS).where(RECORDS.c.seq == seq)).first()
        return AuditRecord.model_validate(_fields(row)) if row else None

    def change(self, change_id: str) -> list[AuditRecord]:
        """The records of one change (its intent and outcome), oldest first."""
        query = select(RECORDS).where(RECORDS.c.change_id == change_id).order_by(RECORDS.c.seq)
        with self.engine.connect() as conn:
            return [AuditRecord.model_validate(_fields(r)) for r in conn.execute(query)]

    def unfinished(self) -> list[AuditRecord]:
        """Intents with no outcome: changes the backend may have died in the middle of."""
        outcome = RECORDS.alias("outcome")
        finished = exists().where(
            and_(outcome.c.change_id == RECORDS.c.change_id, outcome.c.stage == "outcome")
        )
        query = (
            select(RECORDS).where(RECORDS.c.stage == "intent", ~finished).order_by(RECORDS.c.seq)
        )
        with self.engine.connect() as conn:
            return [AuditRecord.model_validate(_fields(r)) for r in conn.execute(query)]

    def search(
        self,
        where: AuditFilter,
        limit: int,
        cursor: int | None = None,
        oldest_first: bool = False,
        scope: frozenset[str] | None = None,
    ) -> tuple[list[AuditRecord], int | None]:
        """Newest first (or oldest first); ``cursor`` is the previous page's ``next``; ``scope``:
        only records about at least one of these tenants. Returns (records, next), next None on
        the last page."""
        seq: ColumnElement[int] = RECORDS.c.seq
        query = select(RECORDS).where(*self._conditions(where))
        words = indexed_words(where.text or "")
        if words and self.dialect == "sqlite":
            # Walk the trigram index's matches newest first; the exact condition still applies.
            query = query.join(AUDIT_TEXT, AUDIT_TEXT.c.rowid == seq)
            query = query.where(AUDIT_TEXT.c.audit_text.match(fts_query(words)))
            seq = AUDIT_TEXT.c.rowid
        if scope is not None:
            query = query.where(
                seq.in_(select(TENANTS.c.seq).where(TENANTS.c.tenant.in_(sorted(scope))))
            )
        if cursor is not None:
            query = query.where(seq > cursor if oldest_first else seq < cursor)
        query = query.order_by(seq if oldest_first else seq.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        records = [AuditRecord.model_validate(_fields(r)) for r in rows[:limit]]
        more = len(rows) > limit
        return records, (records[-1].seq if more and records else None)

    def export(self, where: AuditFilter, batch: int = 5000) -> Iterator[AuditRecord]:
        """Every matching record, oldest first, read in batches."""
        cursor: int | None = None
        while True:
            records, cursor = self.search(where, batch, cursor, oldest_first=True)
            yield from records
            if cursor is None:
                return

    def _conditions(self, where: AuditFilter) -> list[Any]:
        c = RECORDS.c
        conditions: list[Any] = []
        if where.actor:
            conditions.append(c.actor == where.actor)
        if where.action:
            conditions.append(self._glob(c.action, where.action))
        if where.target:
            conditions.append(self._glob(c.target, where.target))
        if where.outcome:
            conditions.append(c.outcome == where.outcome)
        if where.change_id:
            conditions.append(c.change_id == where.change_id)
        if where.since:
            conditions.append(c.at >= utc_timestamp(where.since))
        if where.until:
            conditions.append(c.at < utc_timestamp(where.until))
        if where.tenant:
            conditions.append(
                c.seq.in_(select(TENANTS.c.seq).where(TENANTS.c.tenant == where.tenant))
            )
        if where.text:
            like = f"%{glob_to_like(where.text)}%"
            searched = (c.actor, c.action, c.target, c.reason, c.error, c.parameters, c.tenants)
            conditions.append(or_(*(col.ilike(like, escape="\\") for col in searched)))
            if indexed_words(where.text) and self.dialect == "postgresql":
                # Candidates from the trigram index over all the columns at once.
                conditions.append(PG_TEXT.ilike(like, escape="\\"))
        return conditions

    @staticmethod
    def _glob(column: Any, pattern: str) -> Any:
        if "*" not in pattern:
            return column == pattern
        return column.like(glob_to_like(pattern), escape="\\")

    # -- verify ----------------------------------------------------------------------------------
    def verify(self, batch: int = 20_000, start: ChainHead | None = None) -> ChainVerification:
        """Walk the chain from the first record (or on from ``start``, a head verified before);
        stop at the first record that does not hold."""
        expected_seq, prev_hash = (start.seq + 1, start.hash) if start else (1, GENESIS_HASH)
        canonical: ColumnElement[str] = literal_column(canonical_json_sql(self.dialect))
        query = (
            select(RECORDS.c.seq, RECORDS.c.prev_hash, RECORDS.c.hash, canonical)
            .where(RECORDS.c.seq >= bindparam("first"))
            .order_by(RECORDS.c.seq)
            .limit(batch)
        )
        with self.engine.connect() as conn:
            while True:
                rows = conn.execute(query, {"first": expected_seq}).all()
                for seq, stored_prev, stored_hash, text_json in rows:
                    problem = _check(seq, stored_prev, expected_seq, prev_hash)
                    if not problem and text_hash(prev_hash, text_json) != stored_hash:
                        problem = self._altered(conn, seq, prev_hash, stored_hash)
                    if problem:
                        return ChainVerification(
                            ok=False,
                            records=expected_seq - 1,
                            head=ChainHead(seq=expected_seq - 1, hash=prev_hash),
                            broken_at=expected_seq,
                            problem=problem,
                            checked_at=utc_timestamp(),
                        )
                    expected_seq, prev_hash = expected_seq + 1, stored_hash
                if len(rows) < batch:
                    break
        head = ChainHead(seq=expected_seq - 1, hash=prev_hash) if expected_seq > 1 else None
        return ChainVerification(
            ok=True, records=expected_seq - 1, head=head, checked_at=utc_timestamp()
        )

    @staticmethod
    def _altered(conn: Connection, seq: int, prev_hash: str, stored_hash: str) -> str | None:
        """The verdict on a record whose database-built JSON did not hash to its stored hash:
        hashed again from its fields as orjson writes them, which is what the chain means."""
        fields = conn.execute(
            select(*(RECORDS.c[name] for name in SORTED_FIELDS)).where(RECORDS.c.seq == seq)
        ).one()
        if stored_row_hash(prev_hash, tuple(fields)) == stored_hash:
            return None
        return f"record #{seq} was altered: its hash does not match its contents"


def _check(seq: int, stored_prev: str, expected_seq: int, prev_hash: str) -> str | None:
    """Why a row numbered ``seq`` that names ``stored_prev`` as its predecessor's hash is not in
    the place of the chain expected next; None when it is."""
    if seq != expected_seq:
        return f"record #{expected_seq} is missing (the next record is #{seq})"
    if stored_prev != prev_hash:
        return f"record #{expected_seq} does not follow record #{expected_seq - 1}"
    return None
