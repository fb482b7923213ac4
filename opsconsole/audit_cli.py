"""``opsconsole audit verify|list|export``: the audit log from a shell, for runbooks and SIEMs.

``verify`` asks the backend (which also compares the chain's end with the head it keeps outside
the database), or checks a database directly with ``--database URL`` (a copy, offline). ``list``
takes the Audit screen's filter language; ``export`` streams every matching record oldest first
as JSON lines or CSV, each with its sequence number, previous hash and hash, so that the chain
can be checked again from the export. Exit codes: 0 done (chain verified), 1 the chain is broken
or the backend refused, 2 bad usage or no backend.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections.abc import AsyncIterator
from typing import TextIO

from backend.schemas import AuditFilter, AuditRecord, ChainVerification
from opsconsole import access
from opsconsole.audit_query import QueryError, parse_query, parse_time
from opsconsole.client import BackendClient, BackendError
from opsconsole.text import clean

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
CSV_FIELDS = [
    "seq", "at", "change_id", "stage", "outcome", "actor", "role", "source_address",
    "ssh_client", "user_agent", "action", "target", "tenants", "reason", "error",
    "parameters", "before", "after", "resource_versions", "prev_hash", "hash",
]  # fmt: skip
# The JSON-valued fields: in CSV always their JSON text (``null`` included), so that a SIEM reads
# back exactly what was recorded and can recompute each record's hash.
JSON_COLUMNS = frozenset({"tenants", "parameters", "before", "after", "resource_versions"})


def add_parser(sub: argparse._SubParsersAction) -> None:
    audit = sub.add_parser("audit", help="verify, search and export the audit log")
    audit.add_argument("--backend", help="backend URL (env OPSCONSOLE_BACKEND)")
    access.add_arguments(audit, in_subcommand=True)
    verbs = audit.add_subparsers(dest="audit_command", required=True)

    verify = verbs.add_parser("verify", help="check the hash chain end to end")
    verify.add_argument("--database", help="check this database directly (SQLAlchemy URL)")
    verify.add_argument("--output", choices=["text", "json"], default="text")

    listing = verbs.add_parser("list", help="records, newest first")
    listing.add_argument("query", nargs="*", help="e.g. actor:alice action:quota.* since:1h")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--output", choices=["table", "json"], default="table")

    export = verbs.add_parser("export", help="every matching record, oldest first")
    export.add_argument("query", nargs="*", help="filters, as for list")
    export.add_argument("--since", help="30m, 2h, 7d or an ISO time")
    export.add_argument("--until", help="30m, 2h, 7d or an ISO time")
    export.add_argument("--output", choices=["jsonl", "csv"], default="jsonl")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        if args.audit_command == "verify" and args.database:
            return _report(_verify_database(args.database), args.output, out)
        client = access.command_client(args, timeout=60.0)
    except access.AccessRefused as exc:
        print(f"opsconsole audit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_run_remote(args, client, out))
    except QueryError as exc:
        print(f"opsconsole audit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BackendError as exc:
        print(f"opsconsole audit: {exc.message}", file=sys.stderr)
        return EXIT_REFUSED


def _verify_database(url: str) -> ChainVerification:
    from backend.audit.store import AuditStore
    from backend.db.engine import create_db_engine

    engine = create_db_engine(url)
    try:
        return AuditStore(engine).verify()
    finally:
        engine.dispose()


async def _run_remote(args: argparse.Namespace, client: BackendClient, out: TextIO) -> int:
    try:
        if args.audit_command == "verify":
            return _report(await client.audit_verify(), args.output, out)
        where = parse_query(" ".join(args.query))
        if args.audit_command == "list":
            page = await client.audit(where, limit=args.limit)
            _print_records(page.items, args.output, out)
            return EXIT_OK
        if args.since:
            where.since = parse_time(args.since)
        if args.until:
            where.until = parse_time(args.until)
        await _export(_all_records(client, where), args.output, out)
        return EXIT_OK
    finally:
        await client.aclose()


def _report(result: ChainVerification, output: str, out: TextIO) -> int:
    if output == "json":
        out.write(result.model_dump_json(indent=2) + "\n")
    else:
        out.write(describe_verification(result) + "\n")
    return EXIT_OK if result.ok else EXIT_REFUSED


def describe_verification(result: ChainVerification) -> str:
    """``verified 120 records, head #120 3f2a…`` or where and why the chain breaks."""
    if not result.ok:
        return f"chain broken at record #{result.broken_at}: {result.problem}"
    head = f"head #{result.head.seq} {result.head.hash}" if result.head else "no records"
    text = f"verified {result.records} records, {head}"
    if result.external_head_error:
        text += f" (head outside the database not checked: {result.external_head_error})"
    elif result.external_head is not None:
        text += f"; matches the head kept outside the database (#{result.external_head.seq})"
    return text


def _print_records(records: list[AuditRecord], output: str, out: TextIO) -> None:
    if output == "json":
        out.write(json.dumps([r.model_dump(mode="json") for r in records], indent=2) + "\n")
        return
    rows = [["SEQ", "TIME (UTC)", "ACTOR", "ACTION", "TARGET", "OUTCOME", "REASON"]]
    for r in records:
        outcome = r.outcome.value if r.outcome else r.stage.value
        at = r.at[:19].replace("T", " ")
        rows.append([str(r.seq), at, r.actor, r.action, r.target, outcome, r.reason])
    rows = [[clean(cell)[:60] for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")


async def _all_records(client: BackendClient, where: AuditFilter) -> AsyncIterator[AuditRecord]:
    cursor: str | None = None
    while True:
        page = await client.audit(where, limit=1000, cursor=cursor, oldest_first=True)
        for record in page.items:
            yield record
        if page.next is None:
            return
        cursor = page.next


async def _export(records: AsyncIterator[AuditRecord], output: str, out: TextIO) -> None:
    if output == "jsonl":
        async for record in records:
            out.write(record.model_dump_json() + "\n")
        return
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
    writer.writeheader()
    async for record in records:
        row = record.model_dump(mode="json")
        writer.writerow(
            {
                k: (json.dumps(v, ensure_ascii=False) if k in JSON_COLUMNS else v)
                for k, v in row.items()
            }
        )
