"""``opsconsole quota show|set|transfer``: tenants' GPU quota from a shell, for runbooks and scripts.

``show`` lists every tenant's quota per GPU model against its use. ``set`` and ``transfer`` go
through the backend's plan and apply, like the console: the plan is shown (each quota before and
after, warnings, what the queues would admit), then applied only once confirmed (``--yes``, or
``y`` on stdin; no stdin is no), with a reason for the audit log. ``--model`` takes a Kueue flavor
(``a100``) or a GPU product (``NVIDIA-A100-SXM4-80GB``); a ResourceQuota tenant with several GPU
quotas names the namespace. Exit codes: ``opsconsole.change_cli``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

from backend.schemas import (
    ChangeApplied,
    ChangePlan,
    QuotaChange,
    QuotaReview,
    QuotaRow,
    UsageWindow,
)
from opsconsole.change_cli import (
    EXIT_CONFLICT,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    ChangeCommand,
    UsageError,
    add_backend_argument,
    change_client,
    format_value,
    print_table,
)
from opsconsole.client import BackendClient, BackendError
from opsconsole.text import clean

PROG = "opsconsole quota"


def add_parser(sub: argparse._SubParsersAction) -> None:
    quota = sub.add_parser("quota", help="show, set and transfer tenants' GPU quota")
    add_backend_argument(quota)
    verbs = quota.add_subparsers(dest="quota_command", required=True)

    show = verbs.add_parser("show", help="every tenant's quota per GPU model against its use")
    show.add_argument("tenant", nargs="?", help="only this tenant")
    show.add_argument("--model", help="only this GPU model (flavor or product)")
    show.add_argument("--output", choices=["text", "json"], default="text")

    set_ = verbs.add_parser("set", help="set a tenant's quota of a GPU model")
    set_.add_argument("tenant")
    set_.add_argument("--model", help="flavor or product, where the tenant has several")
    set_.add_argument("--gpus", type=int, required=True, help="the new quota, in GPUs")
    set_.add_argument("--namespace", help="ResourceQuota tenants with several namespaces")
    _add_change_arguments(set_)

    transfer = verbs.add_parser("transfer", help="move GPUs of quota from one tenant to another")
    transfer.add_argument("--from", dest="source", required=True, help="the giving tenant")
    transfer.add_argument("--to", dest="target", required=True, help="the receiving tenant")
    transfer.add_argument("--model", help="flavor or product, where a tenant has several")
    transfer.add_argument("--gpus", type=int, required=True, help="GPUs of quota to move")
    transfer.add_argument("--from-namespace", help="the giver's namespace (ResourceQuota)")
    transfer.add_argument("--to-namespace", help="the receiver's namespace (ResourceQuota)")
    _add_change_arguments(transfer)


def _add_change_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", help="why (required to apply; recorded in the audit log)")
    parser.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    parser.add_argument("--yes", "-y", action="store_true", help="apply without asking")
    parser.add_argument("--output", choices=["text", "json"], default="text")


def change_of(args: argparse.Namespace) -> QuotaChange:
    """The one change the arguments ask for."""
    if args.quota_command == "set":
        return QuotaChange(
            op="set", tenant=args.tenant, model=args.model, gpus=args.gpus, namespace=args.namespace
        )
    return QuotaChange(
        op="transfer",
        from_tenant=args.source,
        to_tenant=args.target,
        model=args.model,
        gpus=args.gpus,
        from_namespace=args.from_namespace,
        to_namespace=args.to_namespace,
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        if args.quota_command != "show" and not args.dry_run and not (args.reason or "").strip():
            raise UsageError("a reason is required: --reason TEXT")
        client = change_client(args)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_run_remote(args, client, out))


async def _run_remote(args: argparse.Namespace, client: BackendClient, out: TextIO) -> int:
    try:
        if args.quota_command == "show":
            review = await client.quotas(tenant=args.tenant, model=args.model)
            _print_review(review, args.output, out)
            return EXIT_OK
        return await QuotaCommand(client, args, [change_of(args)], out).run()
    except BackendError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return EXIT_CONFLICT if exc.status == 409 else EXIT_REFUSED
    finally:
        await client.aclose()


# -- show ------------------------------------------------------------------------------------------


def _window(window: UsageWindow) -> str:
    if not window.samples or window.allocated_avg is None:
        return "-"
    return f"{window.allocated_avg:g}/{window.allocated_peak}"


def _limit(value: int | None) -> str:
    return "-" if value is None else str(value)


def _row(row: QuotaRow) -> list[str]:
    where = row.flavor or ",".join(f"{q.namespace}={q.hard}" for q in row.namespace_quotas)
    return [
        row.tenant,
        row.system.value,
        row.gpu_model,
        where or "-",
        str(row.nominal),
        _limit(row.borrowing_limit),
        _limit(row.lending_limit),
        str(row.used),
        str(row.borrowed),
        str(row.pending),
        str(row.idle),
        _window(row.usage_24h),
        _window(row.usage_7d),
    ]


def _print_review(review: QuotaReview, output: str, out: TextIO) -> None:
    if output == "json":
        out.write(review.model_dump_json(indent=2) + "\n")
        return
    header = [
        "TENANT",
        "SYSTEM",
        "GPU-MODEL",
        "FLAVOR/NAMESPACES",
        "NOMINAL",
        "BORROW-LIMIT",
        "LEND-LIMIT",
        "USED",
        "BORROWED",
        "PENDING",
        "IDLE",
        "AVG/PEAK-24H",
        "AVG/PEAK-7D",
    ]
    print_table([header, *(_row(r) for r in review.items)], out)


# -- set and transfer --------------------------------------------------------------------------------


class QuotaCommand(ChangeCommand):
    """Plan, show, confirm and apply one set, transfer or change set."""

    prog = PROG

    def __init__(
        self,
        client: BackendClient,
        args: argparse.Namespace,
        changes: list[QuotaChange],
        out: TextIO,
    ) -> None:
        super().__init__(client, args, out)
        self.changes = changes

    async def plan(self) -> ChangePlan:
        return await self.client.quota_plan(self.changes)

    async def apply(self, plan: ChangePlan) -> ChangeApplied:
        return await self.client.quota_apply(self.changes, plan, self.args.reason.strip())

    def describe(self, plan: ChangePlan) -> str:
        return describe_plan(plan)

    def done_text(self, plan: ChangePlan, applied: ChangeApplied) -> str:
        return f"quota changed (audit change {applied.change_id})"


def describe_plan(plan: ChangePlan) -> str:
    """Each quota before and after, the warnings, then each field written."""
    lines = [f"{clean(plan.target)}:"]
    changes = plan.details.get("changes")
    for change in changes if isinstance(changes, list) else []:
        where = change.get("flavor") or f"namespace {change.get('namespace')}"
        lines.append(
            f"  {clean(str(change.get('tenant')))} {clean(str(where))}: "
            f"{change.get('before')} → {change.get('after')} GPUs"
        )
    lines += [f"  ⚠ {clean(w)}" for w in plan.warnings]
    for obj in plan.objects:
        for field in obj.fields:
            lines.append(
                f"  {clean(obj.object)} {clean(field.path)}: {format_value(field.before)} → "
                f"{format_value(field.after)}"
            )
    return "\n".join(lines)
