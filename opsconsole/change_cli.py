"""What the change commands (``opsconsole rollout``, ``opsconsole quota``) share: exit codes,
the backend to reach, the confirmation prompt, and plain-text tables and values.

Exit codes that scripts rely on: 0 done, 1 refused or failed, 2 bad usage or no backend, 3
conflict (the cluster changed since the plan: nothing was applied).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from backend.schemas import ChangeApplied, ChangePlan
from opsconsole import access
from opsconsole.client import BackendClient, BackendError
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


class ChangeCommand:
    """Plan, show, confirm and apply one change, for a command line: the steps, exit codes and
    ``--output json`` report every change command shares. Subclasses say how to plan, apply and
    describe their kind of change, and may follow it once applied."""

    prog = "opsconsole"

    def __init__(self, client: BackendClient, args: argparse.Namespace, out: TextIO) -> None:
        self.client, self.args, self.out = client, args, out
        self.text = args.output == "text"
        self.report: dict[str, Any] = {}

    async def plan(self) -> ChangePlan:
        raise NotImplementedError

    async def apply(self, plan: ChangePlan) -> ChangeApplied:
        raise NotImplementedError

    def describe(self, plan: ChangePlan) -> str:
        raise NotImplementedError

    def done_text(self, plan: ChangePlan, applied: ChangeApplied) -> str:
        raise NotImplementedError

    def noop_text(self, plan: ChangePlan) -> str:
        return clean(plan.noop or "")

    async def follow(self, plan: ChangePlan) -> int:
        """After a successful apply: the exit code (a subclass may wait for the change)."""
        return EXIT_OK

    async def run(self) -> int:
        try:
            plan = await self.plan()
        except BackendError as exc:
            return self._failed(exc)
        self.report["plan"] = plan.model_dump(mode="json")
        self.say(self.describe(plan))
        if plan.noop:
            self.say(self.noop_text(plan))
            return self._done(EXIT_OK)
        if self.args.dry_run:
            self.say("dry run: nothing was changed")
            return self._done(EXIT_OK)
        if not self.args.yes and not confirmed():
            print(f"{self.prog}: not confirmed; nothing was changed", file=sys.stderr)
            return self._done(EXIT_REFUSED)
        try:
            applied = await self.apply(plan)
        except BackendError as exc:
            return self._failed(exc)
        self.report["applied"] = applied.model_dump(mode="json")
        self.say(self.done_text(plan, applied))
        return self._done(await self.follow(plan))

    def _failed(self, exc: BackendError) -> int:
        refused = exc.refused
        if refused is not None and refused.plan is not None:
            self.report["plan"] = refused.plan.model_dump(mode="json")
            self.say("the cluster changed since the plan; the new plan:")
            self.say(self.describe(refused.plan))
        self.report["error"] = exc.message
        print(f"{self.prog}: {exc.message}", file=sys.stderr)
        return self._done(EXIT_CONFLICT if exc.status == 409 else EXIT_REFUSED)

    def say(self, line: str) -> None:
        if self.text:
            self.out.write(line + "\n")

    def _done(self, code: int) -> int:
        if not self.text:
            self.out.write(json.dumps(self.report, indent=2) + "\n")
        return code
