"""Walking the hash chain over stored records: the part of verification that reads every record.

A walk starts from a record number and the hash the record before it must name, and checks each
record in turn until a given number or the end. Any stretch of the chain can be walked on its
own from the stored hash of the record before it, so a long chain is cut into stretches walked by
several processes at once (``AuditStore.verify`` joins their verdicts): ``python -m
backend.audit.walk`` walks the stretch it reads on its standard input. This module imports only
SQLAlchemy and the chain, so that those processes start quickly.

Rows are read through the database driver's own cursor, in batches, with the canonical JSON built
by the database: at a million records the per-row cost of SQLAlchemy's result rows and of a
Python function call per record are a large part of the total.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.engine import Connection

from backend.audit.chain import SORTED_FIELDS, canonical_json_sql, stored_row_hash
from backend.db.engine import create_db_engine


@dataclass(frozen=True)
class Walk:
    """Where a walk ended: the record it expected next, the hash that record must name, and why
    it stopped early (None when every record up to the end held)."""

    next_seq: int
    prev_hash: str
    problem: str | None = None


@dataclass(frozen=True)
class Stretch:
    """A part of the chain to walk: from record ``first`` (which must name ``prev_hash``) up to,
    not including, ``until`` (None: to the end)."""

    first: int
    prev_hash: str
    until: int | None = None


def walk(conn: Connection, stretch: Stretch, batch: int) -> Walk:
    """Check every record of ``stretch`` in order; stop at the first that does not hold."""
    mark = _placeholder(conn)
    canonical = canonical_json_sql(conn.dialect.name)
    if mark == "%s":  # with parameters psycopg reads % as a placeholder: the format's are doubled
        canonical = canonical.replace("%", "%%")
    bound = f" AND seq < {mark}" if stretch.until is not None else ""
    query = (
        f"SELECT seq, prev_hash, hash, {canonical} FROM audit_record"
        f" WHERE seq >= {mark}{bound} ORDER BY seq LIMIT {mark}"
    )
    expected, prev_hash = stretch.first, stretch.prev_hash
    cursor = conn.connection.cursor()
    try:
        while True:
            params: tuple[Any, ...] = (
                (expected, stretch.until, batch) if bound else (expected, batch)
            )
            cursor.execute(query, params)
            rows = cursor.fetchall()
            end = _walk_rows(conn, rows, expected, prev_hash)
            if end.problem or len(rows) < batch:
                return end
            expected, prev_hash = end.next_seq, end.prev_hash
    finally:
        cursor.close()


def walk_in_processes(url: str, stretches: list[Stretch], batch: int) -> list[Walk]:
    """Each stretch walked at once by a Python process of its own, on its own connection to the
    database at ``url``. The URL goes through a pipe: on a command line any user could read its
    password. A process that fails raises here, so verification fails rather than passes."""
    request = {"url": url, "batch": batch}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "backend.audit.walk"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in stretches
    ]
    try:
        for proc, stretch in zip(procs, stretches, strict=True):
            assert proc.stdin is not None  # stdin=PIPE
            proc.stdin.write(json.dumps(request | {"stretch": asdict(stretch)}).encode())
            proc.stdin.close()  # every process has its stretch before any is waited for
        walks = []
        for proc, stretch in zip(procs, stretches, strict=True):
            assert proc.stdout is not None  # stdout=PIPE
            out = proc.stdout.read()
            if proc.wait() != 0:
                raise RuntimeError(f"walking from record #{stretch.first} failed: see its log")
            walks.append(Walk(**json.loads(out)))
        return walks
    finally:
        for proc in procs:  # after a failure, the others are not left walking
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def main() -> None:
    """Walk the stretch named on standard input; print where the walk ended as JSON."""
    request = json.load(sys.stdin)
    engine = create_db_engine(request["url"])
    try:
        with engine.connect() as conn:
            end = walk(conn, Stretch(**request["stretch"]), request["batch"])
    finally:
        engine.dispose()
    json.dump(asdict(end), sys.stdout)


def _walk_rows(conn: Connection, rows: Sequence[Any], expected: int, prev_hash: str) -> Walk:
    """Check one batch of (seq, prev_hash, hash, canonical JSON) rows in order. The loop is
    written out, without a call per record, because verification spends its time here."""
    sha256, hex_of = hashlib.sha256, bytes.hex
    prev_bytes = _hash_bytes(prev_hash)
    for seq, stored_prev, stored_hash, canonical in rows:
        if seq != expected:
            problem = f"record #{expected} is missing (the next record is #{seq})"
            return Walk(expected, prev_hash, problem)
        if stored_prev != prev_hash:
            return Walk(expected, prev_hash, f"record #{seq} does not follow record #{seq - 1}")
        digest = sha256(prev_bytes)
        digest.update(canonical.encode())
        computed = digest.digest()
        if hex_of(computed) != stored_hash:
            altered = _altered(conn, seq, prev_hash, stored_hash)
            if altered:
                return Walk(expected, prev_hash, altered)
            computed = bytes.fromhex(stored_hash)
        expected, prev_hash, prev_bytes = expected + 1, stored_hash, computed
    return Walk(expected, prev_hash)


def _placeholder(conn: Connection) -> str:
    """How the driver's cursor marks a parameter: sqlite3's ``?``, psycopg's ``%s``."""
    return "?" if conn.dialect.name == "sqlite" else "%s"


def _hash_bytes(hex_hash: str) -> bytes:
    """A stored hash as bytes; one that is not hex (an altered row) as no bytes, which no record
    hashes to."""
    try:
        return bytes.fromhex(hex_hash)
    except ValueError:
        return b""


def _altered(conn: Connection, seq: int, prev_hash: str, stored_hash: str) -> str | None:
    """The verdict on a record whose database-built JSON did not hash to its stored hash: hashed
    again from its fields as orjson writes them, which is what the chain means. (The database's
    JSON escaping is not promised to be orjson's byte for byte.)"""
    columns = ", ".join(f'"{name}"' for name in SORTED_FIELDS)
    cursor = conn.connection.cursor()
    try:
        query = f"SELECT {columns} FROM audit_record WHERE seq = {_placeholder(conn)}"
        cursor.execute(query, (seq,))
        fields = cursor.fetchone()
    finally:
        cursor.close()
    try:
        if fields is not None and stored_row_hash(prev_hash, tuple(fields)) == stored_hash:
            return None
    except ValueError:  # a previous hash that is not hex: not a hash this chain wrote
        pass
    return f"record #{seq} was altered: its hash does not match its contents"


if __name__ == "__main__":
    main()
