"""Free-text search of the audit log: whatever the trigram index does, the results are exactly
those of a case-insensitive substring over the searched fields, on SQLite and PostgreSQL, for
short terms, wildcards, LIKE's own metacharacters, quotes and Unicode; and an existing log is
indexed by the migration."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from backend.audit import store as store_module
from backend.audit.log import AuditLog
from backend.audit.store import AuditStore
from backend.db.engine import create_db_engine
from backend.db.migrate import upgrade
from backend.schemas import AuditEntry, AuditFilter, AuditRecord
from tests.pg_fixture import pg_server, postgres_url  # noqa: F401

REASONS = (
    "Night SHIFT move",
    "rebalance after INC-4242: p99 above SLO",
    "100% of quota_a used",
    'she said "don\'t" twice',
    "Überlauf der Warteschlange ÄÖÜ",
    "日本語のテキスト",
    "back\\slash and * star",
    "ab",
)
TERMS = (
    "night shift",
    "NIGHT",
    "inc-4242",
    "INC-424",
    "a",
    "ab",
    "Ni",
    "%",
    "100%",
    "_",
    "quota_a",
    "quota%a",
    '"',
    "don't",
    '"don',
    "'",
    "über",
    "Überlauf",
    "ÄÖÜ",
    "テキスト",
    "日本",
    "\\",
    "back\\sl",
    "after*SLO",
    "nig*ift",
    "a*b",
    "*",
    "operator-01",
    "team-002",
    '"gpus"',
    "failed to",
    "rollout.undo",
    "deployment/t1",
    "nothing like this",
)


def entry(n: int) -> AuditEntry:
    return AuditEntry.model_validate(
        {
            "change_id": f"c{n}",
            "stage": "intent" if n % 2 else "outcome",
            "actor": f"operator-{n % 4:02d}",
            "role": "operator",
            "action": ("quota.set", "rollout.undo", "isvc.rollback")[n % 3],
            "target": f"deployment/t{n % 5}/model",
            "tenants": [f"team-{n % 6:03d}"],
            "reason": REASONS[n % len(REASONS)],
            "parameters": {"gpus": n, "note": REASONS[(n + 3) % len(REASONS)]},
            "before": {"hidden": "night shift"},  # not a searched field
            "after": {},
            "outcome": None if n % 2 else "failed",
            "error": "failed to apply" if n % 7 == 0 else None,
        }
    )


def searched_text(record: AuditRecord) -> list[str]:
    """The searched fields as stored (JSON fields as their JSON text)."""

    def as_json(value: object) -> str:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()

    return [
        record.actor,
        record.action,
        record.target,
        record.reason,
        record.error or "",
        as_json(record.parameters),
        as_json(record.tenants),
    ]


def brute_force(records: list[AuditRecord], term: str, ascii_only: bool) -> list[int]:
    """Newest first, the records with ``term`` in a searched field, ignoring case (only ASCII
    case on SQLite, whose ``lower`` knows no other); ``*`` matches anything."""
    pattern = ".*".join(re.escape(part) for part in term.split("*"))
    flags = re.ASCII | re.IGNORECASE if ascii_only else re.IGNORECASE
    found = re.compile(pattern, flags | re.DOTALL)
    return [r.seq for r in reversed(records) if any(found.search(t) for t in searched_text(r))]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    return str(request.getfixturevalue("postgres_url"))


def found(store: AuditStore, term: str, limit: int = 1000) -> list[int]:
    seqs: list[int] = []
    cursor: int | None = None
    while True:
        page, cursor = store.search(AuditFilter(text=term), limit=limit, cursor=cursor)
        seqs += [r.seq for r in page]
        if cursor is None:
            return seqs


def test_free_text_equals_a_brute_force_filter(url: str) -> None:
    upgrade(url)
    store = AuditStore(create_db_engine(url))
    records = store.append_many([entry(n) for n in range(1, 121)])
    # None of the records indexed yet (SQLite indexes behind the appends), some, then all.
    for indexed in (0, store.index_text(53), store.index_text(100)):
        for term in TERMS:
            expected = brute_force(records, term, ascii_only=store.dialect == "sqlite")
            assert found(store, term) == expected, (term, indexed)
            assert found(store, term, limit=7) == expected, (term, indexed)  # paged
            oldest_first, _ = store.search(AuditFilter(text=term), 1000, oldest_first=True)
            assert [r.seq for r in oldest_first] == expected[::-1], (term, indexed)


def test_free_text_combines_with_field_filters(url: str) -> None:
    upgrade(url)
    store = AuditStore(create_db_engine(url))
    records = store.append_many([entry(n) for n in range(1, 61)])
    page, _ = store.search(AuditFilter(text="INC-4242", actor="operator-02"), limit=100)
    expected = [
        s for s in brute_force(records, "INC-4242", True) if records[s - 1].actor == "operator-02"
    ]
    assert [r.seq for r in page] == expected != []


def test_time_ranges_equal_a_brute_force_filter(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every time range pages exactly its records, newest first: ranges with few records (on
    SQLite the walk is bounded by their first and last), with many, with none, and a record
    written after the clock stepped back."""
    monkeypatch.setattr(store_module, "FEW_IN_RANGE", 4)
    upgrade(url)
    store = AuditStore(create_db_engine(url))
    store.append_many([entry(n) for n in range(1, 41)])
    minutes = [3 if seq == 25 else seq for seq in range(1, 41)]  # #25: the clock stepped back
    with store.engine.begin() as conn:
        for seq, minute in enumerate(minutes, 1):
            conn.execute(
                sa.text("UPDATE audit_record SET at = :at WHERE seq = :seq"),
                {"at": f"2026-11-30T10:{minute:02d}:00.000000Z", "seq": seq},
            )
    start = datetime(2026, 11, 30, 10, tzinfo=UTC)
    ranges = [(2, 4), (3, 4), (0, 2), (10, 30), (36, None), (None, 3), (50, None), (None, 0)]
    for since, until in ranges:
        where = AuditFilter(
            since=None if since is None else start + timedelta(minutes=since),
            until=None if until is None else start + timedelta(minutes=until),
        )
        expected = [
            seq
            for seq in range(40, 0, -1)
            if (since is None or minutes[seq - 1] >= since)
            and (until is None or minutes[seq - 1] < until)
        ]
        seqs: list[int] = []
        cursor: int | None = None
        while True:
            page, cursor = store.search(where, limit=3, cursor=cursor)
            seqs += [r.seq for r in page]
            if cursor is None:
                break
        assert seqs == expected, (since, until)


def test_an_existing_log_is_indexed_by_the_migration(url: str) -> None:
    upgrade(url, "0005")
    store = AuditStore(create_db_engine(url))
    records = store.append_many([entry(n) for n in range(1, 41)])
    upgrade(url)
    assert found(store, "INC-4242") == brute_force(records, "INC-4242", True) != []
    added = store.append_many([entry(n) for n in range(41, 61)])
    assert found(store, "don't") == brute_force(records + added, "don't", True)


def test_tampered_rows_are_searched_as_they_now_read(tmp_path: Path) -> None:
    """The index follows raw edits of the table, so a search never shows stale text."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    store = AuditStore(create_db_engine(url))
    store.append_many([entry(n) for n in range(1, 11)])
    assert store.index_text(limit=5) == 5  # records 1 to 5 indexed, 6 to 10 not yet
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_record SET reason = 'forged text' WHERE seq = 3"))
        conn.execute(sa.text("UPDATE audit_record SET reason = 'forged later' WHERE seq = 8"))
        conn.execute(sa.text("DELETE FROM audit_tenant WHERE seq IN (2, 9)"))
        conn.execute(sa.text("DELETE FROM audit_record WHERE seq IN (2, 9)"))
    assert found(store, "forged") == [8, 3]
    assert found(store, "operator") == [10, 8, 7, 6, 5, 4, 3, 1]
    assert store.index_text() == 4  # 6, 7, 8 and 10
    assert found(store, "forged") == [8, 3]
    assert found(store, "operator") == [10, 8, 7, 6, 5, 4, 3, 1]
    with store.engine.begin() as conn:  # the newest record truncated: 9 is the next number
        conn.execute(sa.text("DELETE FROM audit_tenant WHERE seq = 10"))
        conn.execute(sa.text("DELETE FROM audit_record WHERE seq = 10"))
    store.append(entry(1).model_copy(update={"reason": "appended again"}))
    assert found(store, "again") == [9]  # below the watermark: indexed as it was inserted
    assert store.index_text() == 0


async def test_a_running_log_indexes_its_records_behind_the_appends(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    store = AuditStore(create_db_engine(url))
    early = store.append_many([entry(n) for n in range(1, 11)])  # before the backend started
    audit = AuditLog(store, verify_interval=3600)
    await audit.start()
    try:
        later = list(await asyncio.gather(*(audit.record(entry(n)) for n in range(11, 41))))
        for _ in range(200):
            with store.engine.connect() as conn:
                indexed_to = conn.execute(sa.text("SELECT seq FROM audit_text_indexed")).scalar()
            if indexed_to == 40:
                break
            await asyncio.sleep(0.05)
        assert indexed_to == 40
    finally:
        await audit.stop()
    assert found(store, "INC-4242") == brute_force(early + later, "INC-4242", True) != []
