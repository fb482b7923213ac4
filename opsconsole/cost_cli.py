"""``opsconsole cost``: GPU-hours, cost and efficiency per tenant and GPU model, from a shell.

``--since 24h|7d|30d`` picks the window; ``--output table`` (default) prints one line per tenant
and model, a total, and the GPUs held idle now; ``csv`` the same rows for a spreadsheet (an
unknown cost or efficiency is an empty cell, never 0); ``json`` the backend's whole answer.
Exit codes: 0 done, 1 the backend refused, 2 bad usage or no backend.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from typing import TextIO

from backend.schemas import CostReport, CostRow, IdleGpus
from opsconsole import access
from opsconsole.change_cli import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, print_table
from opsconsole.client import BackendClient, BackendError
from opsconsole.cost_view import idle_for, money_str
from opsconsole.text import clean

PROG = "opsconsole cost"
CSV_FIELDS = [
    "tenant", "gpu_model", "samples", "gpu_hours", "busy_gpu_hours", "efficiency",
    "price_per_hour", "cost",
]  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> None:
    cost = sub.add_parser("cost", help="GPU-hours and cost per tenant and GPU model")
    cost.add_argument("--backend", help="backend URL (env OPSCONSOLE_BACKEND)")
    access.add_arguments(cost, in_subcommand=True)
    cost.add_argument("--since", choices=["24h", "7d", "30d"], default="24h")
    cost.add_argument("--output", choices=["table", "csv", "json"], default="table")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        client = access.command_client(args, timeout=30.0)
    except access.AccessRefused as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = asyncio.run(_fetch(client, args.since))
    except BackendError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return EXIT_REFUSED
    {"table": print_report, "csv": write_csv, "json": write_json}[args.output](report, out)
    return EXIT_OK


async def _fetch(client: BackendClient, since: str) -> CostReport:
    try:
        return await client.cost(since)
    finally:
        await client.aclose()


def _number(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.2f}{unit}"


def _row(row: CostRow) -> list[str]:
    return [
        row.tenant,
        row.gpu_model,
        _number(row.gpu_hours),
        _number(row.busy_gpu_hours),
        _number(row.efficiency, "%"),
        _number(row.price_per_hour),
        money_str(row.cost),
    ]


def _idle(group: IdleGpus) -> list[str]:
    return [
        group.tenant,
        group.gpu_model,
        str(group.gpus),
        idle_for(group),
        money_str(group.cost_per_day),
    ]


def print_report(report: CostReport, out: TextIO) -> None:
    """The rows, a total line, and the idle GPUs (when there are any)."""
    header = ["TENANT", "GPU-MODEL", "GPU-HOURS", "BUSY-HOURS", "EFFICIENCY", "PRICE/H", "COST"]
    unpriced = f" (+{report.unpriced_gpu_hours:,.2f} GPU-h unpriced)"
    total = [
        "TOTAL",
        "",
        _number(report.gpu_hours),
        "",
        "",
        "",
        money_str(report.cost) + (unpriced if report.unpriced_gpu_hours else ""),
    ]
    print_table([header, *(_row(r) for r in report.items), total], out)
    if report.history_updated is None:
        out.write("no usage history recorded yet\n")
    if report.idle:
        out.write(
            f"\nidle GPUs now: {report.idle_gpus}, {money_str(report.idle_cost_per_day)}/day\n"
        )
        print_table(
            [["TENANT", "GPU-MODEL", "IDLE", "FOR", "COST/DAY"]] + [_idle(g) for g in report.idle],
            out,
        )


def write_csv(report: CostReport, out: TextIO) -> None:
    """One line per tenant and GPU model; unknown values are empty cells."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for row in report.items:
        values = row.model_dump(include=set(CSV_FIELDS))
        writer.writerow(
            [clean(str(v)) if v is not None else "" for v in (values[f] for f in CSV_FIELDS)]
        )


def write_json(report: CostReport, out: TextIO) -> None:
    out.write(report.model_dump_json(indent=2) + "\n")
