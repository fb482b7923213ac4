"""Appending, searching and verifying audit records in the database.

The only writer of audit records. Appends are serialized by the database, not by the process, so
several backends sharing one PostgreSQL keep one gapless chain: an advisory transaction lock on
PostgreSQL, ``BEGIN IMMEDIATE`` (the database's write lock) on SQLite. Inside the lock the appender
reads the head, numbers the record head+1, chains its hash and commits. Nothing here updates or
deletes a record.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    Engine,
    Integer,
    and_,
    column,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select
from sqlmodel import SQLModel

from backend.audit.chain import (
    GENESIS_HASH,
    JSON_FIELDS,
    record_hash,
    stored_json,
)
from backend.audit.tables import AuditRecordRow, AuditTenantRow
from backend.audit.walk import Stretch, Walk, walk, walk_in_processes
from backend.schemas import AuditEntry, AuditFilter, AuditRecord, ChainHead, ChainVerification

RECORDS = SQLModel.metadata.tables[AuditRecordRow.__tablename__]
TENANTS = SQLModel.metadata.tables[AuditTenantRow.__tablename__]
COLUMNS = [c.name for c in RECORDS.columns]
# A time range holding at most this many records bounds the walk of a search (see ``search``).
FEW_IN_RANGE = 5_000
# From this many records to check, verification walks stretches of the chain in several processes.
PARALLEL_VERIFY_FROM = 200_000
# Any constant works; it names the lock that serializes appends across processes.
PG_APPEND_LOCK = 0x6F7073636F6E73  # "opscons"
# The free-text index (see the migration that creates it): the FTS5 table on SQLite, whose rowid
# is the record's seq, and on PostgreSQL the indexed expression, written exactly as indexed.
AUDIT_TEXT = table("audit_text", column("rowid", Integer), column("audit_text"))
# On SQLite the index follows the appends: every record numbered up to this one is in it.
AUDIT_TEXT_INDEXED = table("audit_text_indexed", column("seq", Integer))
# The columns free text searches (and SQLite's index holds; ``PG_TEXT`` joins the same).
TEXT_COLUMNS = ("actor", "action", "target", "reason", "error", "parameters", "tenants")
# Records added to SQLite's free-text index per transaction: appends wait while it is written.
INDEX_BATCH = 500
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
        # Writers in this process queue here rather than in SQLite's busy handler, which sleeps.
        self._write_lock = threading.Lock()

    @property
    def indexes_text_behind(self) -> bool:
        """Whether new records reach the free-text index only through ``index_text``."""
        return self.dialect == "sqlite"

    # -- append ----------------------------------------------------------------------------------
    def append(self, entry: AuditEntry) -> AuditRecord:
        """Number, chain and durably store one record; returns it as stored."""
        return self.append_many([entry])[0]

    def append_many(self, entries: list[AuditEntry]) -> list[AuditRecord]:
        """Append several records in one transaction: one lock, one durable commit. What does
        not depend on the chain's head is prepared before the lock is taken, and the rows go to
        the driver as plain tuples: the lock serializes every writer, so time spent holding it
        is what limits the appends."""
        prepared = [_prepare(entry) for entry in entries]
        stored: list[AuditRecord] = []
        rows: list[tuple[Any, ...]] = []
        tenant_rows: list[tuple[str, int]] = []
        with self._write_lock, self.engine.connect() as conn:
            self._lock(conn)
            head = conn.execute(
                select(RECORDS.c.seq, RECORDS.c.hash).order_by(RECORDS.c.seq.desc()).limit(1)
            ).first()
            seq, prev_hash = (head[0], head[1]) if head else (0, GENESIS_HASH)
            for entry, fields, json_texts in prepared:
                seq += 1
                fields.update(seq=seq, prev_hash=prev_hash, at=utc_timestamp())
                fields["hash"] = prev_hash = record_hash(prev_hash, fields)
                rows.append(tuple(json_texts.get(name, fields[name]) for name in COLUMNS))
                tenant_rows += [(tenant, seq) for tenant in sorted(set(entry.tenants))]
                stored.append(AuditRecord.model_validate(fields))
            self._insert(conn, RECORDS.name, COLUMNS, rows)
            if tenant_rows:
                self._insert(conn, TENANTS.name, ["tenant", "seq"], tenant_rows)
            conn.commit()
        return stored

    def index_text(self, limit: int = INDEX_BATCH) -> int:
        """Add up to ``limit`` records past the watermark to SQLite's free-text index, in one
        transaction; how many (0: none was waiting, or PostgreSQL, which indexes as it appends)."""
        if not self.indexes_text_behind:
            return 0
        columns = ", ".join(TEXT_COLUMNS)
        with self._write_lock, self.engine.connect() as conn:
            self._lock(conn)
            indexed_to = conn.execute(select(AUDIT_TEXT_INDEXED.c.seq)).scalar_one()
            waiting = conn.execute(
                select(RECORDS.c.seq)
                .where(RECORDS.c.seq > indexed_to)
                .order_by(RECORDS.c.seq)
                .limit(limit)
            ).scalars()
            seqs = list(waiting)
            if not seqs:
                conn.rollback()
                return 0
            conn.exec_driver_sql(
                f"INSERT INTO audit_text(rowid, {columns}) SELECT seq, {columns}"
                " FROM audit_record WHERE seq > ? AND seq <= ?",
                (indexed_to, seqs[-1]),
            )
            conn.execute(AUDIT_TEXT_INDEXED.update().values(seq=seqs[-1]))
            conn.commit()
        return len(seqs)

    def _insert(
        self, conn: Connection, table_name: str, columns: list[str], rows: list[tuple[Any, ...]]
    ) -> None:
        """Insert ``rows`` (tuples of ``columns``) as plain driver calls. PostgreSQL gets them
        by ``COPY``: one statement for the whole batch instead of one per row, each of which
        would cost an executor start while the append lock is held."""
        names = ", ".join(f'"{name}"' for name in columns)
        if self.dialect == "postgresql":
            driver = conn.connection.driver_connection
            assert driver is not None, "a connection in use has its driver's connection"
            cursor = driver.cursor()
            with cursor.copy(f"COPY {table_name} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            conn.exec_driver_sql(f"INSERT INTO {table_name} ({names}) VALUES ({marks})", rows)

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
        query = select(RECORDS).where(*self._conditions(where))
        words = indexed_words(where.text or "")
        page = _Page(limit + 1, cursor, oldest_first, scope)
        with self.engine.connect() as conn:
            query = query.where(*self._seq_range_of_time_range(conn, where))
            if words and self.indexes_text_behind:
                rows = self._search_text_index(conn, query, words, page)
            else:
                rows = list(conn.execute(page.of(query, RECORDS.c.seq, page.rows)))
        records = [AuditRecord.model_validate(_fields(r)) for r in rows[:limit]]
        more = len(rows) > limit
        return records, (records[-1].seq if more and records else None)

    def _seq_range_of_time_range(
        self, conn: Connection, where: AuditFilter
    ) -> list[ColumnElement[bool]]:
        """On SQLite, the numbers of the records in the filter's time range, as a condition on
        ``seq``, when the range holds at most ``FEW_IN_RANGE`` records (none: nothing matches).

        Without statistics SQLite answers a time range by walking the records newest first (the
        primary key's order, which the page needs), so a range with no records, or one far in
        the past, reads the whole table. Bounding ``seq`` by the range's first and last records
        (found through the ``at`` index) stops the walk there; it adds a condition that every
        record of the range meets, so the results are the same. The look-up stops counting at
        the bound, so it costs little either way."""
        if self.dialect != "sqlite" or not (where.since or where.until):
            return []
        in_range = select(RECORDS.c.seq).where(*_time_range(where)).limit(FEW_IN_RANGE + 1)
        seqs = in_range.subquery().c.seq
        count, first, last = conn.execute(
            select(func.count(seqs), func.min(seqs), func.max(seqs))
        ).one()
        if count > FEW_IN_RANGE:
            return []
        return [RECORDS.c.seq.between(first, last)] if count else [false()]

    @staticmethod
    def _search_text_index(
        conn: Connection, query: Select[Any], words: list[str], page: _Page
    ) -> list[Any]:
        """A page of ``query`` (which holds the exact free-text condition) on SQLite, whose
        trigram index covers the records up to its watermark: those are walked through the
        index, the few appended since through the exact condition alone, so the results are
        the same as a scan's."""
        indexed_to = conn.execute(select(AUDIT_TEXT_INDEXED.c.seq)).scalar_one()
        rowid: ColumnElement[int] = AUDIT_TEXT.c.rowid
        indexed = query.join(AUDIT_TEXT, rowid == RECORDS.c.seq).where(
            AUDIT_TEXT.c.audit_text.match(fts_query(words)), rowid <= indexed_to
        )
        parts = [
            (query.where(RECORDS.c.seq > indexed_to), RECORDS.c.seq),
            (indexed, rowid),  # walk the index's matches newest first
        ]
        if page.oldest_first:
            parts.reverse()
        rows: list[Any] = []
        for part, seq in parts:
            if len(rows) < page.rows:
                rows += conn.execute(page.of(part, seq, page.rows - len(rows))).all()
        return rows

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
        conditions += _time_range(where)
        if where.tenant:
            conditions.append(
                c.seq.in_(select(TENANTS.c.seq).where(TENANTS.c.tenant == where.tenant))
            )
        if where.text:
            like = f"%{glob_to_like(where.text)}%"
            searched = [c[name] for name in TEXT_COLUMNS]
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
    def verify(
        self, batch: int = 20_000, start: ChainHead | None = None, processes: int | None = None
    ) -> ChainVerification:
        """Walk the chain from the first record (or on from ``start``, a head verified before);
        stop at the first record that does not hold. A long chain is cut into stretches walked by
        ``processes`` processes at once: by default one per CPU when there are at least
        ``PARALLEL_VERIFY_FROM`` records to check, else none besides this one."""
        first, prev_hash = (start.seq + 1, start.hash) if start else (1, GENESIS_HASH)
        with self.engine.connect() as conn:
            last = conn.execute(select(func.max(RECORDS.c.seq))).scalar() or 0
            if processes is None:
                many = last - first + 1 >= PARALLEL_VERIFY_FROM
                processes = (os.cpu_count() or 1) if many else 1
            stretches = _stretches(conn, Stretch(first, prev_hash), last, processes)
            if len(stretches) == 1:
                return _verdict([walk(conn, stretches[0], batch)])
        url = self.engine.url.render_as_string(hide_password=False)
        return _verdict(walk_in_processes(url, stretches, batch))


def _stretches(conn: Connection, whole: Stretch, last: int, parts: int) -> list[Stretch]:
    """``whole`` (to the end of the chain, ``last`` being its newest record now) cut into at most
    ``parts`` stretches of about equal numbers of records. Each but the first starts after the
    stored record before it and must follow that record's hash; the stretch before checks it."""
    size = -(-(last - whole.first + 1) // max(parts, 1))  # rounded up
    if parts <= 1 or size < 2:
        return [whole]
    stretches = [whole]
    before = select(RECORDS.c.seq, RECORDS.c.hash).order_by(RECORDS.c.seq.desc()).limit(1)
    for cut in range(whole.first + size, last + 1, size):
        row = conn.execute(before.where(RECORDS.c.seq < cut)).first()
        if row is None:  # nothing stored before the cut: the first stretch reports it
            continue
        stretches[-1] = replace(stretches[-1], until=cut)
        stretches.append(Stretch(row.seq + 1, row.hash))
    return stretches


def _verdict(walks: list[Walk]) -> ChainVerification:
    """One verdict from the walks of consecutive stretches: the first problem, or the end."""
    end = next((w for w in walks if w.problem), walks[-1])
    checked = end.next_seq - 1
    return ChainVerification(
        ok=end.problem is None,
        records=checked,
        head=ChainHead(seq=checked, hash=end.prev_hash) if checked > 0 else None,
        broken_at=end.next_seq if end.problem else None,
        problem=end.problem,
        checked_at=utc_timestamp(),
    )


def _time_range(where: AuditFilter) -> list[ColumnElement[bool]]:
    """The conditions of the filter's time range (``since`` inclusive, ``until`` exclusive)."""
    conditions = []
    if where.since:
        conditions.append(RECORDS.c.at >= utc_timestamp(where.since))
    if where.until:
        conditions.append(RECORDS.c.at < utc_timestamp(where.until))
    return conditions


@dataclass(frozen=True)
class _Page:
    """Which rows of a search a page holds: ``rows`` of them after ``cursor``, in seq order."""

    rows: int
    cursor: int | None
    oldest_first: bool
    scope: frozenset[str] | None

    def of(self, query: Select[Any], seq: ColumnElement[int], rows: int) -> Select[Any]:
        """``query`` limited to this page, ``seq`` being the column that numbers its rows."""
        if self.scope is not None:
            query = query.where(
                seq.in_(select(TENANTS.c.seq).where(TENANTS.c.tenant.in_(sorted(self.scope))))
            )
        if self.cursor is not None:
            query = query.where(seq > self.cursor if self.oldest_first else seq < self.cursor)
        return query.order_by(seq if self.oldest_first else seq.desc()).limit(rows)


def _prepare(entry: AuditEntry) -> tuple[AuditEntry, dict[str, Any], dict[str, str]]:
    """An entry's fields as JSON values and the stored text of its JSON-valued fields: what an
    append needs that does not depend on the chain's head."""
    fields = entry.model_dump(mode="json")
    return entry, fields, {name: stored_json(fields[name]) for name in JSON_FIELDS}
