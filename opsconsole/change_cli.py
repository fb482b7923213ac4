"""What the change commands (``opsconsole rollout``, ``opsconsole quota``) share: exit codes,
the backend to reach, the confirmation prompt, and plain-text tables and values.

Exit codes that scripts rely on: 0 done, 1 refused or failed, 2 bad usage or no backend, 3
conflict (the cluster changed since the plan: nothing was applied).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from opsconsole import access
from opsconsole.client import BackendClient
from opsconsole.text import clean

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_CONFLICT = 0, 1, 2, 3


class UsageError(Exception):
    """Bad arguments: exit 2."""


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and how to reach it safely (``--token``, ``--ca-file``, ``--insecure``)."""
    parser.add_argument(
        "--backend", default=argparse.SUPPRESS, help="backend URL (env OPSCONSOLE_BACKEND)"
    )
    access.add_arguments(parser, in_subcommand=True)


def change_client(args: argparse.Namespace) -> BackendClient:
    """The client for a change command; ``UsageError`` (exit 2) when no backend is given or it
    cannot be reached safely."""
    try:
        return access.command_client(args, timeout=30.0)
    except access.AccessRefused as exc:
        raise UsageError(str(exc)) from exc


def confirmed() -> bool:
    """``y`` or ``yes`` on stdin; no stdin (closed, captured, empty) is no."""
    print("apply this change? [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        if sys.stdin is None or sys.stdin.closed:
            return False
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        return False
    return answer.strip().lower() in ("y", "yes")


def print_table(rows: list[list[str]], out: TextIO) -> None:
    """Left-aligned columns, untrusted cells cleaned and clipped."""
    rows = [[clean(cell)[:80] for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")


def format_value(value: object) -> str:
    """A field's value on one line: ``(none)`` for absent, JSON for structures."""
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return clean(text)[:120]
