"""``make bench-audit``: the audit log at 1,000,000 records, on SQLite and on PostgreSQL.

For each database: load N realistic records, then measure a filtered page (50 records, newest
first) for each kind of filter, a full verification of the chain (records/s), and durable
appends from concurrent writers: several processes, each with many concurrent changes going
through ``AuditLog`` (group commit), on a fresh database, fsync on. Medians (and p95) of repeated
runs; results in ``results/audit.json``. PostgreSQL runs on loopback from Debian's binaries, with
fsync on, as tests do it but durable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from backend.audit.log import AuditLog
from backend.audit.store import AuditStore
from backend.db.engine import create_db_engine
from backend.db.migrate import upgrade
from backend.schemas import AuditEntry, AuditFilter
from tests.pg_fixture import PgServer, running_server

RESULTS = Path(__file__).with_name("results") / "audit.json"
ACTIONS = ("quota.set", "quota.transfer", "rollout.undo", "isvc.rollback", "isvc.promote")
# A writer that died leaves the others waiting: they give up (BrokenBarrierError) after this.
BARRIER_TIMEOUT_S = 600
OUTCOMES = ("succeeded", "succeeded", "succeeded", "failed", "reverted", "denied", "invalid")


def realistic_entry(rng: random.Random, n: int) -> AuditEntry:
    tenant = f"team-{rng.randrange(200):03d}"
    action = rng.choice(ACTIONS)
    stage = "intent" if n % 2 == 0 else "outcome"
    return AuditEntry(
        change_id=f"{n // 2:032x}",
        stage=stage,
        actor=f"operator-{rng.randrange(50):02d}",
        role="operator",
        source_address=f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
        ssh_client=f"10.1.2.{rng.randrange(256)} {rng.randrange(30000, 60000)} 10.0.0.1 22",
        user_agent="opsconsole/0.1.0",
        action=action,
        target=f"deployment/{tenant}/model-{rng.randrange(20)}",
        tenants=[tenant],
        reason=f"rebalance after incident INC-{rng.randrange(100000)}: p99 above SLO",
        parameters={"gpus": rng.randrange(1, 16), "model": "a100"},
        before=[{"object": f"clusterqueue/{tenant}", "fields": {"/spec/nominal": 8}}],
        after=[{"object": f"clusterqueue/{tenant}", "fields": {"/spec/nominal": 12}}],
        outcome=None if stage == "intent" else rng.choice(OUTCOMES),
        resource_versions={f"clusterqueue/{tenant}": str(rng.randrange(10**7))},
    )


def fill(store: AuditStore, count: int, batch: int = 5000) -> float:
    """Append ``count`` records and index them for free text (on SQLite a step behind the
    appends, as a backend does it); the rate (records/s)."""
    rng = random.Random(1)
    start = time.perf_counter()
    for first in range(0, count, batch):
        store.append_many(
            [realistic_entry(rng, n) for n in range(first, min(count, first + batch))]
        )
    while store.index_text(batch):
        pass
    return count / (time.perf_counter() - start)


def page_timings(store: AuditStore, runs: int) -> dict[str, dict[str, float]]:
    """A 50-record page for each kind of filter: median and p95 in milliseconds."""
    now = datetime.now(UTC)
    filters = {
        "none": AuditFilter(),
        "actor": AuditFilter(actor="operator-07"),
        "action glob": AuditFilter(action="quota.*"),
        "tenant": AuditFilter(tenant="team-042"),
        "outcome": AuditFilter(outcome="denied"),
        "target": AuditFilter(target="deployment/team-042/model-3"),
        "last hour": AuditFilter(since=now - timedelta(hours=1)),
        "actor + action + outcome": AuditFilter(
            actor="operator-07", action="rollout.undo", outcome="failed"
        ),
        "free text": AuditFilter(text="INC-4242"),
        "page 100 (cursor)": AuditFilter(),
    }
    out = {}
    for name, where in filters.items():
        cursor = None
        if name == "page 100 (cursor)":
            head = store.head()
            assert head is not None, "the store was filled first"
            cursor = head.seq - 50 * 100
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            store.search(where, 50, cursor)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        out[name] = {
            "median_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
        }
    return out


def _writer(url: str, worker: int, tasks: int, per_task: int, ready: Any, done: Any) -> None:
    """One backend process: ``tasks`` concurrent changes, each appending ``per_task`` records.
    The entries are built and the log started before ``ready``, and ``done`` is reached when the
    last append returned, so that the parent times the appends only."""

    async def main() -> None:
        audit = AuditLog(AuditStore(create_db_engine(url)), verify_interval=3600)
        await audit.start()
        rng = random.Random(worker)
        entries = [
            [realistic_entry(rng, worker * 10**6 + task * 1000 + i) for i in range(per_task)]
            for task in range(tasks)
        ]

        async def one(mine: list[AuditEntry]) -> None:
            for entry in mine:
                await audit.record(entry)

        ready.wait(BARRIER_TIMEOUT_S)
        await asyncio.gather(*(one(mine) for mine in entries))
        done.wait(BARRIER_TIMEOUT_S)
        await audit.stop()

    asyncio.run(main())


def concurrent_appends(url: str, processes: int, tasks: int, per_task: int) -> dict[str, Any]:
    """Durable appends per second from ``processes`` writers started beforehand: timed from
    when all are ready to when the last one's last append returned."""
    upgrade(url)
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Barrier(processes + 1), ctx.Barrier(processes + 1)
    workers = [
        ctx.Process(target=_writer, args=(url, w, tasks, per_task, ready, done))
        for w in range(processes)
    ]
    for proc in workers:
        proc.start()
    ready.wait(BARRIER_TIMEOUT_S)
    start = time.perf_counter()
    done.wait(BARRIER_TIMEOUT_S)
    elapsed = time.perf_counter() - start
    for proc in workers:
        proc.join()
    total = processes * tasks * per_task
    result = AuditStore(create_db_engine(url)).verify()
    return {
        "writers": f"{processes} processes x {tasks} concurrent changes",
        "appends": total,
        "appends_per_s": round(total / elapsed),
        "chain_ok": result.ok and result.records == total,
    }


def own_cpu_s() -> float:
    """CPU seconds of this process and of its children that have exited (the processes that
    walk stretches of the chain)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def process_cpu_s(pid: int) -> float:
    """CPU seconds used by a process and its children that have exited."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def server_cpu_s(pg: PgServer) -> float:
    """CPU seconds used so far by the PostgreSQL server: the postmaster, its exited children and
    its live ones (the backend serving the benchmark)."""
    postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    total = process_cpu_s(postmaster)
    for child in children:
        with contextlib.suppress(FileNotFoundError):
            total += process_cpu_s(int(child))
    return total


def measure(
    url: str,
    fresh_url: str,
    records: int,
    runs: int,
    processes: int,
    server_cpu: Callable[[], float] = lambda: 0.0,
) -> dict[str, Any]:
    upgrade(url)
    store = AuditStore(create_db_engine(url))
    load_rate = fill(store, records)
    if store.dialect == "postgresql":
        # Statistics for the planner, as autovacuum gathers them after a bulk load.
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE audit_record")
    pages = page_timings(store, runs)
    start, start_cpu = time.perf_counter(), own_cpu_s() + server_cpu()
    verified = store.verify()
    verify_s = time.perf_counter() - start
    # On a shared machine the wall clock counts other programs' time; CPU seconds do not.
    verify_cpu_s = own_cpu_s() + server_cpu() - start_cpu
    return {
        "records": records,
        "bulk_load_per_s": round(load_rate),
        "pages": pages,
        "verify_s": round(verify_s, 2),
        "verify_per_s": round(verified.records / verify_s),
        "verify_per_cpu_s": round(verified.records / verify_cpu_s),
        "verify_ok": verified.ok,
        "concurrent": concurrent_appends(
            fresh_url, processes=processes, tasks=128 // processes, per_task=40
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_bench")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix="opsconsole-bench-audit-", dir="/var/tmp"))
    try:
        if args.database in ("sqlite", "both"):
            results["sqlite"] = measure(
                f"sqlite:///{workdir / 'audit.db'}",
                f"sqlite:///{workdir / 'appends.db'}",
                args.records,
                args.runs,
                processes=1,  # a SQLite file serves one backend; its writers are its changes
            )
            print(json.dumps({"sqlite": results["sqlite"]}, indent=2), flush=True)
        if args.database in ("postgresql", "both"):
            with running_server(fsync=True) as pg:
                results["postgresql"] = measure(
                    pg.create_database(),
                    pg.create_database(),
                    args.records,
                    args.runs,
                    processes=4,
                    server_cpu=lambda: server_cpu_s(pg),
                )
            print(json.dumps({"postgresql": results["postgresql"]}, indent=2), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
