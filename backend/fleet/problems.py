"""The overview: fleet totals, GPUs by model, and the problems an operator should look at first.

Problems are ordered by severity (critical, warning, info), then kind and subject, so the list is
stable between refreshes. Critical: nodes not ready, GPUs with an XID error, workloads with no
ready replica. Warning: pending workloads (with the reason), rollouts stuck past their progress
deadline, degraded rollouts, failed jobs, hot GPUs.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable

from backend.fleet.nodes import GpuRules
from backend.schemas import (
    FleetTotals,
    Gpu,
    GpuModelSummary,
    Node,
    Problem,
    ProblemSeverity,
    Tenant,
    Workload,
    WorkloadStatus,
)

TOP_GPUS = 10
MAX_PROBLEMS = 100
OVERVIEW_TENANTS = 50
_SEVERITY_ORDER = {ProblemSeverity.CRITICAL: 0, ProblemSeverity.WARNING: 1, ProblemSeverity.INFO: 2}


def build_problems(
    workloads: Iterable[Workload], gpus: Iterable[Gpu], nodes: Iterable[Node], rules: GpuRules
) -> list[Problem]:
    """Every current problem, most severe first (the overview shows the first 100)."""
    problems = [p for w in workloads if (p := workload_problem(w)) is not None]
    problems.extend(node_problem(node) for node in nodes if not node.ready)
    for gpu in gpus:
        problems.extend(_gpu_problems(gpu, rules))
    return sort_problems(problems)


def sort_problems(problems: list[Problem]) -> list[Problem]:
    """By severity, kind and subject; ties keep the order given (workloads, nodes, GPUs)."""
    problems.sort(key=lambda p: (_SEVERITY_ORDER[p.severity], p.kind, p.subject))
    return problems


def node_problems(node: Node | None, gpus: Iterable[Gpu], rules: GpuRules) -> list[Problem]:
    """A node's problem (not Ready) and its GPUs' problems (XID errors, hot)."""
    problems = [node_problem(node)] if node is not None and not node.ready else []
    for gpu in gpus:
        problems.extend(_gpu_problems(gpu, rules))
    return problems


def node_problem(node: Node) -> Problem:
    return Problem(
        severity=ProblemSeverity.CRITICAL,
        kind="node-not-ready",
        subject=node.name,
        message=f"node is not Ready ({node.gpus_capacity} GPUs unavailable)",
    )


def workload_problem(workload: Workload) -> Problem | None:
    subject = f"{workload.namespace}/{workload.name}"
    message = workload.message
    rollout = workload.rollout
    if rollout is not None and rollout.stuck:
        none_ready = workload.ready_replicas == 0 and workload.replicas > 0
        return Problem(
            severity=ProblemSeverity.CRITICAL if none_ready else ProblemSeverity.WARNING,
            kind="rollout",
            subject=subject,
            message=(
                f"rollout stuck: exceeded its progress deadline ({rollout.updated}/"
                f"{rollout.desired} updated, {rollout.available} available)"
            ),
        )
    if workload.status == WorkloadStatus.PENDING:
        return Problem(
            severity=ProblemSeverity.WARNING,
            kind="pending",
            subject=subject,
            message=message or "pending",
        )
    if workload.status == WorkloadStatus.DEGRADED:
        none_ready = workload.ready_replicas == 0 and workload.replicas > 0
        return Problem(
            severity=ProblemSeverity.CRITICAL if none_ready else ProblemSeverity.WARNING,
            kind="degraded",
            subject=subject,
            message=message or f"{workload.ready_replicas}/{workload.replicas} replicas ready",
        )
    if workload.status == WorkloadStatus.FAILED:
        return Problem(
            severity=ProblemSeverity.WARNING,
            kind="failed",
            subject=subject,
            message=message or "failed",
        )
    return None


def _gpu_problems(gpu: Gpu, rules: GpuRules) -> list[Problem]:
    subject = f"{gpu.node}/gpu{gpu.index}"
    out = []
    if gpu.last_xid:
        holder = f" (pod {gpu.namespace}/{gpu.pod})" if gpu.pod else ""
        out.append(
            Problem(
                severity=ProblemSeverity.CRITICAL,
                kind="xid",
                subject=subject,
                message=f"XID {gpu.last_xid} on {gpu.uuid}{holder}",
            )
        )
    if gpu.temperature_c is not None and gpu.temperature_c >= rules.hot_temperature_c:
        out.append(
            Problem(
                severity=ProblemSeverity.WARNING,
                kind="hot",
                subject=subject,
                message=f"{gpu.temperature_c:.0f} °C (threshold {rules.hot_temperature_c:.0f} °C)",
            )
        )
    return out


def gpu_model_summaries(nodes: list[Node], gpus: list[Gpu]) -> list[GpuModelSummary]:
    """Per GPU model: nodes, GPUs, allocated (from pods' requests), in use, idle and free."""
    per_node_gpus: dict[str, list[Gpu]] = defaultdict(list)
    for gpu in gpus:
        per_node_gpus[gpu.node].append(gpu)
    acc: dict[str, Counter] = defaultdict(Counter)
    for node in nodes:
        node_gpus = per_node_gpus.get(node.name, [])
        model = node.gpu_model or (node_gpus[0].model if node_gpus else None)
        total = max(node.gpus_capacity, len(node_gpus))
        if not model or not total:
            continue
        allocated = min(node.gpus_allocated, total)
        idle = min(sum(1 for g in node_gpus if g.idle), allocated)
        acc[model].update(nodes=1, total=total, allocated=allocated, idle=idle)
    return [
        GpuModelSummary(
            model=model,
            nodes=c["nodes"],
            total=c["total"],
            allocated=c["allocated"],
            in_use=c["allocated"] - c["idle"],
            idle=c["idle"],
            free=c["total"] - c["allocated"],
        )
        for model, c in sorted(acc.items())
    ]


def fleet_totals(
    nodes: list[Node],
    gpus: list[Gpu],
    models: list[GpuModelSummary],
    tenants: int,
    workloads: int,
    pods: int,
) -> FleetTotals:
    utils = [g.utilization for g in gpus if g.utilization is not None]
    powers = [g.power_watts for g in gpus if g.power_watts is not None]
    return FleetTotals(
        nodes=len(nodes),
        nodes_ready=sum(1 for n in nodes if n.ready),
        gpus=sum(m.total for m in models),
        gpus_allocated=sum(m.allocated for m in models),
        gpus_in_use=sum(m.in_use for m in models),
        gpus_idle=sum(m.idle for m in models),
        tenants=tenants,
        workloads=workloads,
        pods=pods,
        utilization=sum(utils) / len(utils) if utils else None,
        power_watts=sum(powers) if powers else None,
    )


def hottest(gpus: list[Gpu]) -> list[Gpu]:
    known = [g for g in gpus if g.temperature_c is not None]
    return heapq.nlargest(TOP_GPUS, known, key=lambda g: g.temperature_c or 0.0)


def idlest(gpus: list[Gpu]) -> list[Gpu]:
    known = [g for g in gpus if g.allocated and g.utilization is not None]
    return heapq.nsmallest(TOP_GPUS, known, key=lambda g: g.utilization or 0.0)


def tenants_by_usage(tenants: list[Tenant]) -> list[Tenant]:
    return sorted(tenants, key=lambda t: (-t.gpu_used, t.name))[:OVERVIEW_TENANTS]


def workloads_by_status(workloads: Iterable[Workload]) -> dict[str, int]:
    counts = {status.value: 0 for status in WorkloadStatus}
    for workload in workloads:
        counts[workload.status.value] += 1
    return counts
