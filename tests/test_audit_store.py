"""The audit log's store: numbering, the hash chain, tampering detected at the right record,
search filters and paging, and one gapless chain from concurrent processes on PostgreSQL."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.audit.chain import (
    GENESIS_HASH,
    JSON_FIELDS,
    SORTED_FIELDS,
    record_hash,
    stored_json,
    stored_row_hash,
)
from backend.audit.store import AuditStore
from backend.audit.walk import Stretch, walk_in_processes
from backend.db.engine import create_db_engine
from backend.db.migrate import upgrade
from backend.schemas import AuditEntry, AuditFilter, ChainHead
from tests.pg_fixture import pg_server, postgres_url  # noqa: F401


def entry(n: int = 0, **overrides: object) -> AuditEntry:
    fields: dict[str, object] = {
        "change_id": f"c{n}",
        "stage": "intent",
        "actor": "alice",
        "role": "admin",
        "action": "quota.set",
        "target": f"tenant/t{n % 3}",
        "tenants": [f"t{n % 3}"],
        "reason": f"rebalance {n}",
        "parameters": {"gpus": n},
        "before": {"nominalQuota": n},
        "after": {"nominalQuota": n + 1},
    }
    fields.update(overrides)
    return AuditEntry.model_validate(fields)


def store_at(url: str) -> AuditStore:
    upgrade(url)
    return AuditStore(create_db_engine(url))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> AuditStore:
    if request.param == "sqlite":
        return store_at(f"sqlite:///{tmp_path / 'audit.db'}")
    return store_at(request.getfixturevalue("postgres_url"))


def fill(store: AuditStore, n: int) -> None:
    store.append_many([entry(i) for i in range(1, n + 1)])


def sql(store: AuditStore, statement: str, **params: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


# -- the chain ---------------------------------------------------------------------------------


def test_records_are_numbered_timed_and_chained(store: AuditStore) -> None:
    first = store.append(entry(1))
    second = store.append(entry(2, tenants=["t2", "t1", "t2"]))
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert second.hash == record_hash(first.hash, second.model_dump(mode="json"))
    assert second.at >= first.at and second.at.endswith("Z") and len(second.at) == 27
    assert store.get(2) == second
    result = store.verify()
    assert result.ok and result.records == 2 and result.head is not None
    assert result.head.seq == 2 and result.head.hash == second.hash


def test_an_empty_log_verifies(store: AuditStore) -> None:
    result = store.verify()
    assert (result.ok, result.records, result.head, store.head()) == (True, 0, None, None)


def test_hostile_text_round_trips_and_verifies(store: AuditStore) -> None:
    hostile = "a\u200d\u202e\x1b[31m\nb\tc\x00" + "é" * 10
    stored = store.append(entry(1, reason=hostile, parameters={"k\u2066": hostile}))
    assert store.get(1) == stored
    assert stored.reason == hostile.replace("\x00", "\ufffd")  # PostgreSQL text holds no NUL
    assert stored.parameters == {"k\u2066": hostile}  # inside JSON it is escaped, kept as is
    assert store.verify().ok


@pytest.mark.parametrize(
    ("tamper", "broken_at", "words"),
    [
        ("UPDATE audit_record SET reason = 'nothing to see' WHERE seq = 4", 4, "altered"),
        ("UPDATE audit_record SET outcome = 'succeeded' WHERE seq = 6", 6, "altered"),
        ("UPDATE audit_record SET tenants = '[\"t9\"]' WHERE seq = 3", 3, "altered"),
        ("DELETE FROM audit_record WHERE seq = 5", 5, "missing"),
    ],
)
def test_tampering_is_found_at_the_record(
    store: AuditStore, tamper: str, broken_at: int, words: str
) -> None:
    fill(store, 8)
    sql(store, "DELETE FROM audit_tenant")  # the derived index would block the deletes
    sql(store, tamper)
    result = store.verify()
    assert not result.ok
    assert result.broken_at == broken_at
    assert result.records == broken_at - 1
    assert result.problem is not None and words in result.problem
    assert f"#{broken_at}" in result.problem


def test_swapped_rows_are_found(store: AuditStore) -> None:
    fill(store, 6)
    sql(store, "DELETE FROM audit_tenant")
    # Exchange the numbers of records 3 and 4: both rows stay intact, their order does not.
    sql(store, "UPDATE audit_record SET seq = -1 WHERE seq = 3")
    sql(store, "UPDATE audit_record SET seq = 3 WHERE seq = 4")
    sql(store, "UPDATE audit_record SET seq = 4 WHERE seq = -1")
    result = store.verify()
    assert (result.ok, result.broken_at) == (False, 3)


def test_a_forged_row_inserted_in_the_middle_is_found(store: AuditStore) -> None:
    fill(store, 6)
    sql(store, "DELETE FROM audit_tenant")
    forged = store.get(3)
    assert forged is not None
    for seq in range(6, 3, -1):  # make room after record 3
        sql(store, "UPDATE audit_record SET seq = :new WHERE seq = :old", new=seq + 1, old=seq)
    fields = forged.model_dump(mode="json")
    fields.update(seq=4, prev_hash=forged.hash, reason="forged", change_id="x")
    fields["hash"] = record_hash(forged.hash, fields)  # a forger who knows the scheme
    columns = ", ".join(fields)
    values = ", ".join(f":{k}" for k in fields)
    row = {k: (stored_json(v) if k in JSON_FIELDS else v) for k, v in fields.items()}
    sql(store, f"INSERT INTO audit_record ({columns}) VALUES ({values})", **row)
    result = store.verify()
    # The forged record chains onto #3, but the old #4 (now #5) no longer follows it.
    assert (result.ok, result.broken_at) == (False, 5)
    assert "does not follow" in (result.problem or "")


def test_truncating_the_newest_rows_leaves_a_shorter_valid_chain(store: AuditStore) -> None:
    fill(store, 6)
    head_before = store.head()
    sql(store, "DELETE FROM audit_tenant")
    sql(store, "DELETE FROM audit_record WHERE seq > 4")
    result = store.verify()
    # The chain alone cannot see it: the head kept outside the database must (see the API tests).
    assert result.ok and result.records == 4
    assert head_before is not None and result.head is not None
    assert result.head.seq < head_before.seq


def test_verify_crosses_batch_boundaries(store: AuditStore) -> None:
    fill(store, 25)
    assert store.verify(batch=7).records == 25
    sql(store, "UPDATE audit_record SET actor = 'mallory' WHERE seq = 15")
    assert store.verify(batch=7).broken_at == 15


def test_verify_on_from_a_head_verified_before(store: AuditStore) -> None:
    fill(store, 25)
    head = store.verify(batch=7).head
    assert head is not None and head.seq == 25
    more = store.append_many([entry(i) for i in range(26, 31)])
    result = store.verify(batch=3, start=head)
    assert (result.ok, result.records, result.head) == (True, 30, store.head())
    sql(store, "DELETE FROM audit_tenant")
    sql(store, "UPDATE audit_record SET actor = 'mallory' WHERE seq = 27")
    sql(store, "UPDATE audit_record SET actor = 'mallory' WHERE seq = 12")  # before the start
    result = store.verify(start=head)
    assert (result.ok, result.broken_at, result.records) == (False, 27, 26)
    assert result.head == ChainHead(seq=26, hash=more[0].hash)
    assert result.problem == "record #27 was altered: its hash does not match its contents"
    assert store.verify().broken_at == 12


ALTERED = "was altered: its hash does not match its contents"


@pytest.mark.parametrize(
    ("tamper", "broken_at", "problem"),
    [
        ("UPDATE audit_record SET actor = 'x' WHERE seq = 13", 13, ALTERED),
        ("UPDATE audit_record SET actor = 'x' WHERE seq = 14", 14, ALTERED),
        ("DELETE FROM audit_record WHERE seq = 13", 13, "is missing (the next record is #14)"),
        ("DELETE FROM audit_record WHERE seq = 14", 14, "is missing (the next record is #15)"),
        (
            "UPDATE audit_record SET prev_hash = hash WHERE seq = 14",
            14,
            "does not follow record #13",
        ),
        ("UPDATE audit_record SET hash = 'not hex' WHERE seq = 13", 13, ALTERED),
    ],
)
@pytest.mark.parametrize("processes", [1, 2])
def test_the_first_broken_record_is_named_with_what_broke(
    store: AuditStore, tamper: str, broken_at: int, problem: str, processes: int
) -> None:
    """Record 13 ends a batch of five and, walked by two processes, the first stretch (#1-#13);
    record 14 starts the next batch and the second stretch."""
    fill(store, 25)
    whole = store.verify(processes=processes)
    assert (whole.ok, whole.records, whole.head) == (True, 25, store.head())
    sql(store, "DELETE FROM audit_tenant")
    sql(store, tamper)
    result = store.verify(batch=5, processes=processes)
    assert (result.ok, result.broken_at, result.records) == (False, broken_at, broken_at - 1)
    assert result.problem == f"record #{broken_at} {problem}"
    assert result.head == ChainHead(seq=broken_at - 1, hash=store.get(broken_at - 1).hash)  # type: ignore[union-attr]


def test_a_gap_wider_than_a_stretch_is_named_where_it_starts(store: AuditStore) -> None:
    """Three processes cut #1-#30 at #11 and #21; #6-#25 are gone, so the middle stretch holds no
    record and the last one starts after #5 as well."""
    fill(store, 30)
    sql(store, "DELETE FROM audit_tenant")
    sql(store, "DELETE FROM audit_record WHERE seq BETWEEN 6 AND 25")
    result = store.verify(processes=3)
    assert (result.ok, result.broken_at, result.records) == (False, 6, 5)
    assert result.problem == "record #6 is missing (the next record is #26)"


def test_a_stretch_that_cannot_be_walked_fails_verification(tmp_path: Path) -> None:
    """A walking process that fails (here: a database without the audit table) is an error, not
    a stretch that held."""
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    stretches = [Stretch(1, GENESIS_HASH, until=10), Stretch(10, GENESIS_HASH)]
    with pytest.raises(RuntimeError, match="walking from record #1 failed"):
        walk_in_processes(empty, stretches, batch=5)


def test_a_record_the_database_renders_differently_still_verifies(tmp_path: Path) -> None:
    """SQLite's printf stops at a NUL, so the database-built JSON of this row (a raw NUL in its
    stored parameters) is cut short; the row is judged by ``stored_row_hash`` all the same, and
    tampering with it still shows."""
    store = store_at(f"sqlite:///{tmp_path / 'audit.db'}")
    fill(store, 3)
    columns = ", ".join(f'"{name}"' for name in SORTED_FIELDS)
    with store.engine.connect() as conn:
        row = dict(
            zip(
                SORTED_FIELDS,
                conn.execute(sa.text(f"SELECT {columns} FROM audit_record WHERE seq = 3")).one(),
                strict=True,
            )
        )
    row["parameters"] = '{"k":"a\x00b"}'
    authentic = stored_row_hash(row["prev_hash"], tuple(row.values()))
    update = "UPDATE audit_record SET parameters = :p, hash = :h WHERE seq = 3"
    sql(store, update, p=row["parameters"], h=authentic)
    assert store.verify().ok
    sql(store, "UPDATE audit_record SET parameters = :p WHERE seq = 3", p='{"k":"a\x00c"}')
    assert store.verify().broken_at == 3


# -- search ------------------------------------------------------------------------------------


def test_filters_return_exactly_the_matching_records(store: AuditStore) -> None:
    store.append_many(
        [
            entry(1, actor="alice", action="quota.set", outcome=None),
            entry(2, actor="bob", action="quota.transfer", stage="outcome", outcome="failed"),
            entry(3, actor="alice", action="rollout.undo", target="deployment/ns/llm"),
            entry(4, actor="carol", action="quota_set", reason="Night SHIFT move"),
            entry(5, actor="bob", action="isvc.rollback", stage="outcome", outcome="succeeded"),
        ]
    )

    def seqs(**where: object) -> list[int]:
        records, _ = store.search(AuditFilter.model_validate(where), limit=100)
        return [r.seq for r in records]

    assert seqs() == [5, 4, 3, 2, 1]
    assert seqs(actor="alice") == [3, 1]
    assert seqs(action="quota.*") == [2, 1]  # not quota_set: "." and "_" are literal
    assert seqs(action="quota.set") == [1]
    assert seqs(action="*.rollback") == [5]
    assert seqs(outcome="failed") == [2]
    assert seqs(tenant="t1") == [4, 1]
    assert seqs(target="deployment/*") == [3]
    assert seqs(text="night shift") == [4]  # case-insensitive
    assert seqs(text="%") == []  # literal, not a wildcard
    assert seqs(actor="bob", outcome="succeeded") == [5]
    assert seqs(change_id="c3") == [3]


def test_time_range_is_half_open(store: AuditStore) -> None:
    fill(store, 3)
    records, _ = store.search(AuditFilter(), limit=10)
    middle = datetime.fromisoformat(records[1].at)
    after = middle + timedelta(microseconds=1)
    since, _ = store.search(AuditFilter(since=middle), limit=10)
    until, _ = store.search(AuditFilter(until=middle), limit=10)
    assert [r.seq for r in since] == [3, 2]
    assert [r.seq for r in until] == [1]
    assert [r.seq for r in store.search(AuditFilter(since=after), limit=10)[0]] == [3]
    assert store.search(AuditFilter(since=datetime.now(UTC) + timedelta(hours=1)), 5)[0] == []


def test_paging_with_a_tiny_page_visits_every_record_once(store: AuditStore) -> None:
    fill(store, 11)
    seen: list[int] = []
    cursor: int | None = None
    while True:
        page, cursor = store.search(AuditFilter(), limit=2, cursor=cursor)
        seen += [r.seq for r in page]
        if cursor is None:
            break
    assert seen == list(range(11, 0, -1))
    # A filtered walk: exactly the matches, no empty last page.
    page, cursor = store.search(AuditFilter(tenant="t0"), limit=3)
    assert ([r.seq for r in page], cursor) == ([9, 6, 3], None)  # exactly full: no next
    page, cursor = store.search(AuditFilter(tenant="t1"), limit=3)
    assert ([r.seq for r in page], cursor) == ([10, 7, 4], 4)
    page, cursor = store.search(AuditFilter(tenant="t1"), limit=3, cursor=cursor)
    assert ([r.seq for r in page], cursor) == ([1], None)


def test_export_streams_oldest_first(store: AuditStore) -> None:
    fill(store, 9)
    assert [r.seq for r in store.export(AuditFilter(), batch=4)] == list(range(1, 10))
    assert [r.seq for r in store.export(AuditFilter(tenant="t2"), batch=1)] == [2, 5, 8]


def test_unfinished_changes_are_intents_without_outcome(store: AuditStore) -> None:
    store.append_many(
        [
            entry(1, change_id="a"),
            entry(2, change_id="b"),
            entry(3, change_id="a", stage="outcome", outcome="succeeded"),
        ]
    )
    assert [r.change_id for r in store.unfinished()] == ["b"]
    assert [r.stage for r in store.change("a")] == ["intent", "outcome"]


# -- concurrency -------------------------------------------------------------------------------


def _append_from_process(url: str, worker: int, count: int) -> None:
    store = AuditStore(create_db_engine(url))
    for i in range(count):
        store.append(entry(worker * 1000 + i, change_id=f"w{worker}-{i}"))


def test_two_processes_keep_one_gapless_chain_on_postgres(postgres_url: str) -> None:  # noqa: F811
    upgrade(postgres_url)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_append_from_process, args=(postgres_url, w, 60)) for w in (1, 2)]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(timeout=90)
        assert proc.exitcode == 0
    store = AuditStore(create_db_engine(postgres_url))
    result = store.verify()
    assert result.ok and result.records == 120
    changes = {r.change_id for r in store.export(AuditFilter())}
    assert len(changes) == 120


def test_two_processes_keep_one_gapless_chain_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_append_from_process, args=(url, w, 40)) for w in (1, 2)]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(timeout=90)
        assert proc.exitcode == 0
    result = AuditStore(create_db_engine(url)).verify()
    assert result.ok and result.records == 80
