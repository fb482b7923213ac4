"""``opsconsole rollout history|undo|promote``: a model release from a shell, as kubectl spells it.

Targets are ``NAMESPACE/KIND/NAME`` with KIND as kubectl accepts it (``deployment``, ``deploy``,
``deployments``, ``inferenceservice``, ``isvc``; any case). ``undo`` and ``promote`` go through the
backend's plan and apply, like the console: the plan is shown, then applied only once confirmed
(``--yes``, or ``y`` on stdin; no stdin is no), with a reason for the audit log. ``--wait`` follows
the rollout until it is done or stuck past its progress deadline (bounded by ``--timeout``).

Exit codes: 0 done, 1 refused or failed (stuck or timed out with ``--wait``), 2 bad usage or no
backend, 3 conflict (the cluster changed since the plan: nothing was applied).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from backend.schemas import ChangeApplied, ChangePlan, FieldDiff, TrafficSplit, WorkloadDetail
from opsconsole.change_cli import (
    EXIT_CONFLICT,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    ChangeCommand,
    UsageError,
    add_backend_argument,
    change_client,
    print_table,
)
from opsconsole.change_cli import format_value as _value
from opsconsole.client import BackendClient, BackendError
from opsconsole.text import clean

DEPLOYMENT, INFERENCE_SERVICE = "deployment", "inferenceservice"
KINDS = {
    "deployment": DEPLOYMENT,
    "deployments": DEPLOYMENT,
    "deploy": DEPLOYMENT,
    "inferenceservice": INFERENCE_SERVICE,
    "inferenceservices": INFERENCE_SERVICE,
    "isvc": INFERENCE_SERVICE,
}
RESOURCES = {DEPLOYMENT: "deployment.apps", INFERENCE_SERVICE: "inferenceservice.serving.kserve.io"}
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Target:
    namespace: str
    kind: str  # DEPLOYMENT or INFERENCE_SERVICE
    name: str

    def __str__(self) -> str:
        return f"{RESOURCES[self.kind]}/{self.name}"


def parse_target(value: str) -> Target:
    """``NAMESPACE/KIND/NAME``, KIND as kubectl spells it."""
    parts = value.split("/")
    if len(parts) != 3 or not all(parts):
        raise UsageError(f"{value!r} is not NAMESPACE/KIND/NAME")
    namespace, kind, name = parts
    canonical = KINDS.get(kind.lower())
    if canonical is None:
        raise UsageError(f'unknown kind "{kind}": deployment (deploy) or inferenceservice (isvc)')
    return Target(namespace, canonical, name)


def add_parser(sub: argparse._SubParsersAction) -> None:
    rollout = sub.add_parser("rollout", help="history, undo and promote of model releases")
    add_backend_argument(rollout)
    verbs = rollout.add_subparsers(dest="rollout_command", required=True)

    history = verbs.add_parser("history", help="the revisions, as kubectl rollout history")
    history.add_argument("target", help="NAMESPACE/KIND/NAME")
    history.add_argument("--output", choices=["text", "json"], default="text")

    undo = verbs.add_parser("undo", help="back to the previous (or a chosen) revision")
    undo.add_argument("target", help="NAMESPACE/KIND/NAME")
    undo.add_argument("--to-revision", type=int, default=0, help="Deployments: 0 = previous")
    _add_change_arguments(undo)

    promote = verbs.add_parser("promote", help="all traffic to an InferenceService's canary")
    promote.add_argument("target", help="NAMESPACE/inferenceservice/NAME")
    _add_change_arguments(promote)


def _add_change_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", help="why (required to apply; recorded in the audit log)")
    parser.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    parser.add_argument("--yes", "-y", action="store_true", help="apply without asking")
    parser.add_argument("--wait", action="store_true", help="follow the rollout until done")
    parser.add_argument("--timeout", type=float, default=300.0, help="for --wait, in seconds")
    parser.add_argument("--output", choices=["text", "json"], default="text")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        target = parse_target(args.target)
        if args.rollout_command == "promote" and target.kind != INFERENCE_SERVICE:
            raise UsageError("promote applies to inferenceservices only")
        if args.rollout_command != "history":
            _check_change_arguments(args, target)
        client = change_client(args)
    except UsageError as exc:
        print(f"opsconsole rollout: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_run_remote(args, target, client, out))


def _check_change_arguments(args: argparse.Namespace, target: Target) -> None:
    if not args.dry_run and not (args.reason or "").strip():
        raise UsageError("a reason is required: --reason TEXT")
    if getattr(args, "to_revision", 0) < 0:
        raise UsageError("--to-revision must be 0 or more")
    if getattr(args, "to_revision", 0) and target.kind != DEPLOYMENT:
        raise UsageError("--to-revision applies to deployments only")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")


async def _run_remote(
    args: argparse.Namespace, target: Target, client: BackendClient, out: TextIO
) -> int:
    try:
        if args.rollout_command == "history":
            detail = await client.workload(target.namespace, target.kind, target.name)
            _print_history(target, detail, args.output, out)
            return EXIT_OK
        return await Change(client, args, target, out).run()
    except BackendError as exc:
        print(f"opsconsole rollout: {exc.message}", file=sys.stderr)
        return EXIT_CONFLICT if exc.status == 409 else EXIT_REFUSED
    finally:
        await client.aclose()


# -- history -------------------------------------------------------------------------------------


def _print_history(target: Target, detail: WorkloadDetail, output: str, out: TextIO) -> None:
    revisions = list(reversed(detail.revisions))  # kubectl lists the oldest first
    if output == "json":
        out.write(json.dumps([r.model_dump(mode="json") for r in revisions], indent=2) + "\n")
        return
    if target.kind == DEPLOYMENT:
        rows = [["REVISION", "CHANGE-CAUSE"]]
        rows += [[r.revision, r.change_cause or "<none>"] for r in revisions]
    else:
        rows = [["REVISION", "TRAFFIC", "TAG", "READY", "CHANGE-CAUSE"]]
        rows += [
            [
                r.revision,
                "-" if r.traffic_percent is None else f"{r.traffic_percent}%",
                r.tag or "",
                f"{r.ready_replicas}/{r.replicas}",
                r.change_cause or "<none>",
            ]
            for r in revisions
        ]
    out.write(f"{target}\n")
    print_table(rows, out)


# -- undo and promote ----------------------------------------------------------------------------


class Change(ChangeCommand):
    """Plan, show, confirm, apply, and (``--wait``) follow one undo or promote."""

    prog = "opsconsole rollout"

    def __init__(
        self, client: BackendClient, args: argparse.Namespace, target: Target, out: TextIO
    ) -> None:
        super().__init__(client, args, out)
        self.target = target

    def describe(self, plan: ChangePlan) -> str:
        return describe_plan(self.target, plan)

    def noop_text(self, plan: ChangePlan) -> str:
        return f"{self.target} {clean(plan.noop or '')}"

    def done_text(self, plan: ChangePlan, applied: ChangeApplied) -> str:
        verb = "rolled back" if self.args.rollout_command == "undo" else "promoted"
        return f"{self.target} {verb} (audit change {applied.change_id})"

    async def follow(self, plan: ChangePlan) -> int:
        return await self._follow(plan) if self.args.wait else EXIT_OK

    async def plan(self) -> ChangePlan:
        t = self.target
        if self.args.rollout_command == "promote":
            return await self.client.promote_plan(t.namespace, t.kind, t.name)
        return await self.client.rollback_plan(t.namespace, t.kind, t.name, self.args.to_revision)

    async def apply(self, plan: ChangePlan) -> ChangeApplied:
        t, reason = self.target, self.args.reason.strip()
        if self.args.rollout_command == "promote":
            return await self.client.promote_apply(t.namespace, t.kind, t.name, plan, reason)
        return await self.client.rollback_apply(t.namespace, t.kind, t.name, plan, reason)

    async def _follow(self, plan: ChangePlan) -> int:
        """Poll the workload until its rollout is done or stuck, or the timeout passes."""
        deadline = time.monotonic() + self.args.timeout
        last = ""
        while True:
            t = self.target
            detail = await self.client.workload(t.namespace, t.kind, t.name)
            rollout = detail.rollout
            seen = rollout is not None and _change_seen(plan, detail)
            if rollout is not None and seen:
                self.report["rollout"] = rollout.model_dump(mode="json")
                if rollout.message != last:
                    self.say(clean(rollout.message))
                    last = rollout.message
                if rollout.done:
                    return EXIT_OK
                if rollout.stuck:
                    print(f"opsconsole rollout: {clean(rollout.message)}", file=sys.stderr)
                    return EXIT_REFUSED
            if time.monotonic() >= deadline:
                print(
                    f"opsconsole rollout: timed out after {self.args.timeout:g} s waiting for "
                    "the rollout",
                    file=sys.stderr,
                )
                return EXIT_REFUSED
            await asyncio.sleep(POLL_SECONDS)


def _change_seen(plan: ChangePlan, detail: WorkloadDetail) -> bool:
    """Whether the backend's picture already holds the applied change (so that the rollout it
    reports is the new one, not the one before)."""
    rollout = detail.rollout
    if plan.action == "rollout.undo":
        return detail.revision != str(plan.details.get("current_revision"))
    wanted = 100 if plan.details.get("canary_after") is None else plan.details["canary_after"]
    return rollout is not None and rollout.target_traffic_percent == wanted


def describe_plan(target: Target, plan: ChangePlan) -> str:
    """The plan in a few lines: what moves where, then each field before and after."""
    details = plan.details
    lines = []
    if plan.action == "rollout.undo":
        lines.append(
            f"{target}: revision {details.get('current_revision')} → revision "
            f"{details.get('target_revision')}"
        )
    else:
        lines.append(
            f"{target}: canaryTrafficPercent {_percent(details.get('canary_before'))} → "
            f"{_percent(details.get('canary_after'))}"
        )
        lines.append(f"  traffic now:   {_split(details.get('traffic_before'))}")
        lines.append(f"  traffic after: {_split(details.get('traffic_after'))}")
    lines += [f"  ⚠ {clean(w)}" for w in plan.warnings]
    lines += [_field(diff, "  ") for diff in plan.diff]
    lines += _revision_lines(details)
    return "\n".join(lines)


def _field(diff: FieldDiff, indent: str) -> str:
    return f"{indent}{clean(diff.path)}: {_value(diff.before)} → {_value(diff.after)}"


def _revision_lines(details: dict[str, object]) -> list[str]:
    """An InferenceService's two revisions compared: what the one taking the traffic runs
    differently (none when that is not known: a warning then says why)."""
    changes = details.get("template_diff")
    if not isinstance(changes, list):
        return []
    heading = (
        f"  {clean(str(details.get('template_from')))} → {clean(str(details.get('template_to')))}:"
    )
    return [heading, *(_field(FieldDiff.model_validate(d), "    ") for d in changes)]


def _percent(value: object) -> str:
    return "(none)" if value is None else f"{value}"


def _split(value: object) -> str:
    if value is None:
        return "unknown"
    split = TrafficSplit.model_validate(value)
    return ", ".join(
        f"{clean(r.revision or '?')} {r.percent}%{' (latest)' if r.latest else ''}"
        for r in split.revisions
    )
