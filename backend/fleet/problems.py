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
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter

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


def merge_problems(problems: list[Problem], alerts: Iterable[Problem]) -> list[Problem]:
    """The problems and the firing alerts, most severe first; an alert that says what a problem
    already says (same kind and subject: an XID, a hot GPU, a stuck rollout) is left out."""
    said = {(p.kind, p.subject) for p in problems}
    return sort_problems(problems + [a for a in alerts if (a.kind, a.subject) not in said])


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


@dataclass(frozen=True, slots=True)
class NodeSums:
    """One node's share of the overview, computed with the node, so that the overview of a
    fleet where a few nodes changed adds up a small record per node, not every GPU again."""

    model: str | None  # the GPU model it counts for; None: it counts in no model's summary
    total: int
    allocated: int
    idle: int
    utilization: float  # summed over its GPUs with a reading
    utilization_count: int
    power: float
    power_count: int
    hottest: list[tuple[float, Gpu]]  # its own top GPUs (which hold the fleet's), by the value
    idlest: list[tuple[float, Gpu]]


def node_sums(node: Node | None, gpus: list[Gpu]) -> NodeSums:
    """``node``'s share (None: a host only telemetry names; its GPUs count in the totals)."""
    model, total, allocated, idle = None, 0, 0, 0
    if node is not None:
        model = node.gpu_model or (gpus[0].model if gpus else None)
        total = max(node.gpus_capacity, len(gpus))
        if model and total:
            allocated = min(node.gpus_allocated, total)
            idle = min(sum(1 for g in gpus if g.idle), allocated)
        else:
            model = None
    utils = [g.utilization for g in gpus if g.utilization is not None]
    powers = [g.power_watts for g in gpus if g.power_watts is not None]
    return NodeSums(
        model=model,
        total=total,
        allocated=allocated,
        idle=idle,
        utilization=sum(utils),
        utilization_count=len(utils),
        power=sum(powers),
        power_count=len(powers),
        hottest=[(g.temperature_c or 0.0, g) for g in hottest(gpus)],
        idlest=[(g.utilization or 0.0, g) for g in idlest(gpus)],
    )


def fleet_hottest(sums: Iterable[NodeSums]) -> list[Gpu]:
    """``hottest`` of every node's GPUs, from the nodes' own top GPUs."""
    top = heapq.nlargest(TOP_GPUS, chain.from_iterable(s.hottest for s in sums), key=itemgetter(0))
    return [gpu for _, gpu in top]


def fleet_idlest(sums: Iterable[NodeSums]) -> list[Gpu]:
    """``idlest`` of every node's GPUs, from the nodes' own top GPUs."""
    top = heapq.nsmallest(TOP_GPUS, chain.from_iterable(s.idlest for s in sums), key=itemgetter(0))
    return [gpu for _, gpu in top]


def gpu_model_summaries(sums: Iterable[NodeSums]) -> list[GpuModelSummary]:
    """Per GPU model: nodes, GPUs, allocated (from pods' requests), in use, idle and free."""
    acc: dict[str, Counter] = defaultdict(Counter)
    for s in sums:
        if s.model:
            acc[s.model].update(nodes=1, total=s.total, allocated=s.allocated, idle=s.idle)
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
    sums: list[NodeSums],
    models: list[GpuModelSummary],
    tenants: int,
    workloads: int,
    pods: int,
) -> FleetTotals:
    utilization_count = sum(s.utilization_count for s in sums)
    utilization = sum(s.utilization for s in sums)
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
        utilization=utilization / utilization_count if utilization_count else None,
        power_watts=sum(s.power for s in sums) if any(s.power_count for s in sums) else None,
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
