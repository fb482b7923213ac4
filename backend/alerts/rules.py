"""The alert rules: each observes one value per subject in the fleet, and compares it.

A rule is a function from the inputs (the fleet model and the telemetry snapshot) to
``{subject key: Observation}`` plus a comparison with its threshold, so that a new rule is one
observer and one ``RuleKind``. Every observer is one linear pass over the model's lists (GPUs,
workloads, endpoints, tenants, nodes). Thresholds, durations, severities and which rules are on
come from the settings.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from backend.fleet.model import FleetModel
from backend.schemas import (
    AlertSubject,
    AlertSubjectKind,
    EndpointHealth,
    Gpu,
    ProblemSeverity,
    RolloutProgress,
    TenantQuota,
    Workload,
)
from backend.settings import AlertRule
from backend.telemetry.base import TelemetrySnapshot

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
}


@dataclass(frozen=True, slots=True)
class AlertInputs:
    """What the rules read: one model and the telemetry it was built from."""

    model: FleetModel
    telemetry: TelemetrySnapshot


class Observation:
    """One subject's observed value; what it is about and what else explains it (shown in the
    message) are worked out only when asked, that is for the few that hold: a rule observes
    every GPU of the fleet."""

    __slots__ = ("_explain", "_facts", "value")

    def __init__(self, value: float, explain: Callable[[], tuple[AlertSubject, str]]) -> None:
        self.value = value
        self._explain = explain
        self._facts: tuple[AlertSubject, str] | None = None

    def _explained(self) -> tuple[AlertSubject, str]:
        if self._facts is None:
            self._facts = self._explain()
        return self._facts

    @property
    def subject(self) -> AlertSubject:
        return self._explained()[0]

    @property
    def detail(self) -> str:
        return self._explained()[1]


Observer = Callable[[AlertInputs], Iterator[tuple[str, Observation]]]


@dataclass(frozen=True, slots=True)
class RuleKind:
    """A built-in rule: what it observes, how it compares, how it reads (and which overview
    problem says the same, so the overview does not list it twice)."""

    name: str
    title: str
    op: str
    unit: str
    problem_kind: str
    observe: Observer
    phrase: Callable[[Observation], str] | None = None
    """What a true condition reads as, where "<title> <value> <op> <threshold>" reads badly."""


@dataclass(frozen=True, slots=True)
class ConfiguredRule:
    """A rule with its settings."""

    kind: RuleKind
    threshold: float
    for_seconds: float
    severity: ProblemSeverity

    @property
    def name(self) -> str:
        return self.kind.name

    def holds(self, value: float) -> bool:
        return COMPARISONS[self.kind.op](value, self.threshold)

    def message(self, observation: Observation) -> str:
        """``GPU utilization 97% > 95% for 10 min (pod team-a/x)``."""
        k = self.kind
        value, threshold = number(observation.value), number(self.threshold)
        text = (
            k.phrase(observation)
            if k.phrase is not None
            else f"{k.title} {value}{_unit(k.unit)} {k.op} {threshold}{_unit(k.unit)}"
        )
        if self.for_seconds:
            text += f" for {duration(self.for_seconds)}"
        return f"{text} ({observation.detail})" if observation.detail else text


def _unit(unit: str) -> str:
    """``97%`` but ``89 °C``."""
    return unit if unit in ("", "%") else f" {unit}"


def number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def duration(seconds: float) -> str:
    """``45 s``, ``10 min``, ``2 h``."""
    if seconds < 120:
        return f"{number(seconds)} s"
    if seconds < 7200:
        return f"{number(seconds / 60)} min"
    return f"{number(seconds / 3600)} h"


# -- subjects ------------------------------------------------------------------------------------


def gpu_subject(gpu: Gpu) -> AlertSubject:
    return AlertSubject(
        kind=AlertSubjectKind.GPU,
        name=f"{gpu.node}/gpu{gpu.index}",
        node=gpu.node,
        gpu_uuid=gpu.uuid,
        namespace=gpu.namespace,
        tenant=gpu.tenant,
    )


def workload_subject(workload: Workload) -> AlertSubject:
    return AlertSubject(
        kind=AlertSubjectKind.WORKLOAD,
        name=f"{workload.namespace}/{workload.name}",
        namespace=workload.namespace,
        workload_kind=workload.kind.value,
        workload=workload.name,
        tenant=workload.tenant,
    )


def endpoint_subject(endpoint: EndpointHealth) -> AlertSubject:
    return AlertSubject(
        kind=AlertSubjectKind.WORKLOAD,
        name=f"{endpoint.namespace}/{endpoint.name}",
        namespace=endpoint.namespace,
        workload_kind=endpoint.kind.value,
        workload=endpoint.name,
        tenant=endpoint.tenant,
    )


def _holder(gpu: Gpu) -> str:
    return f"pod {gpu.namespace}/{gpu.pod}" if gpu.pod else ""


def _about_gpu(gpu: Gpu) -> Callable[[], tuple[AlertSubject, str]]:
    return lambda: (gpu_subject(gpu), _holder(gpu))


# -- observers -----------------------------------------------------------------------------------


def gpu_utilization(inputs: AlertInputs) -> Iterator[tuple[str, Observation]]:
    for gpu in inputs.model.gpus.items:
        if gpu.utilization is not None:
            yield gpu.uuid, Observation(gpu.utilization, _about_gpu(gpu))


def allocated_gpu_utilization(inputs: AlertInputs) -> Iterator[tuple[str, Observation]]:
    for gpu in inputs.model.gpus.items:
        if gpu.allocated and gpu.utilization is not None:
            yield gpu.uuid, Observation(gpu.utilization, _about_gpu(gpu))


def gpu_xid(inputs: AlertInputs) -> Iterator[tuple[str, Observation]]:
    for gpu in inputs.model.gpus.items:
        if gpu.last_xid is not None:
            yield gpu.uuid, Observation(float(gpu.last_xid), _about_gpu(gpu))


def gpu_temperature(inputs: AlertInputs) -> Iterator[tuple[str, Observation]]:
    for gpu in inputs.model.gpus.items:
        if gpu.temperature_c is not None:
            yield gpu.uuid, Observation(gpu.temperature_c, _about_gpu(gpu))


def rollout_stuck(inputs: AlertInputs) -> Iterator[tuple[str, Observation]]:
    """1 for a rollout past its progress deadline, 0 for one that is not."""
    for workload in inputs.model.workloads.items:
        rollout = workload.rollout
        if rollout is not None:
            key = f"{workload.namespace}/{workload.kind.value}/{workload.name}"
            yield key, Observation(float(rollout.stuck), _about_rollout(workload, rollout))


def _about_rollout(
    workload: Workload, rollout: RolloutProgress
) -> Callable[[], tuple[AlertSubject, str]]:
    progress = f"{rollout.updated}/{rollout.desired} updated, {rollout.available} available"
    return lambda: (workload_subject(workload), progress if rollout.stuck else "")


def _endpoint_key(endpoint: EndpointHealth) -> str:
    return f"{endpoint.namespace}/{endpoint.kind.value}/{endpoint.name}"


def endpoint_error_rate(inputs: AlertInputs) -> Iterator[tuple[str, Observation]]:
    """The share of requests answered with an error, percent, of endpoints that served any."""
    for endpoint in inputs.model.endpoints.items:
        if endpoint.error_rate is not None:
            detail = f"{number(endpoint.request_rate or 0.0)} requests/s"
            yield (
                _endpoint_key(endpoint),
                Observation(endpoint.error_rate * 100.0, _about_endpoint(endpoint, detail)),
            )


def endpoint_p99_over_slo(inputs: AlertInputs) -> Iterator[tuple[str, Observation]]:
    """p99 latency ÷ the workload's objective, of endpoints that have one (an annotation)."""
    for endpoint in inputs.model.endpoints.items:
        slo, p99 = endpoint.slo_p99_seconds, endpoint.p99_seconds
        if slo is not None and p99 is not None:
            detail = f"p99 {p99:.2f} s, objective {number(slo)} s"
            yield _endpoint_key(endpoint), Observation(p99 / slo, _about_endpoint(endpoint, detail))


def _about_endpoint(
    endpoint: EndpointHealth, detail: str
) -> Callable[[], tuple[AlertSubject, str]]:
    return lambda: (endpoint_subject(endpoint), detail)


def tenant_starving(inputs: AlertInputs) -> Iterator[tuple[str, Observation]]:
    """GPUs a tenant waits for on the GPU models where it uses less than its quota."""
    for tenant in inputs.model.tenants.items:
        starving = [q for q in tenant.quotas if q.pending > 0 and q.used < q.nominal]
        pending = sum(q.pending for q in starving)
        yield tenant.name, Observation(float(pending), _about_tenant(tenant.name, starving))


def _about_tenant(name: str, starving: list[TenantQuota]) -> Callable[[], tuple[AlertSubject, str]]:
    detail = ", ".join(f"{q.gpu_model}: {q.used} of {q.nominal} used" for q in starving)
    return lambda: (AlertSubject(kind=AlertSubjectKind.TENANT, name=name, tenant=name), detail)


def telemetry_samples(inputs: AlertInputs) -> Iterator[tuple[str, Observation]]:
    """GPUs with a sample, per GPU node; nothing before telemetry's first round (nor when it
    is off), when no node can be judged."""
    telemetry = inputs.telemetry
    if telemetry.completed_at is None:
        return
    sampled: Mapping[str, int] = _sampled_per_node(inputs.model.gpus.items)
    failing = len(telemetry.failures)
    detail = f"{failing} telemetry source(s) failing" if failing else ""
    for node in inputs.model.nodes.items:
        if node.gpus_capacity > 0:
            value = float(sampled.get(node.name, 0))
            yield node.name, Observation(value, _about_node(node.name, detail))


def _about_node(name: str, detail: str) -> Callable[[], tuple[AlertSubject, str]]:
    return lambda: (AlertSubject(kind=AlertSubjectKind.NODE, name=name, node=name), detail)


def _sampled_per_node(gpus: list[Gpu]) -> Mapping[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for gpu in gpus:
        if gpu.sampled_at is not None:
            counts[gpu.node] += 1
    return counts


RULE_KINDS: dict[str, RuleKind] = {
    kind.name: kind
    for kind in (
        RuleKind("gpu_saturated", "GPU utilization", ">", "%", "gpu-saturated", gpu_utilization),
        RuleKind(
            "gpu_idle", "allocated GPU utilization", "<", "%", "gpu-idle", allocated_gpu_utilization
        ),
        RuleKind("gpu_xid", "XID", ">", "", "xid", gpu_xid, lambda o: f"XID {number(o.value)}"),
        RuleKind("gpu_hot", "GPU temperature", ">=", "°C", "hot", gpu_temperature),
        RuleKind(
            "rollout_stuck",
            "rollout stuck",
            ">",
            "",
            "rollout",
            rollout_stuck,
            lambda _: "rollout stuck past its progress deadline",
        ),
        RuleKind("endpoint_errors", "error rate", ">", "%", "endpoint-errors", endpoint_error_rate),
        RuleKind(
            "endpoint_slow",
            "p99 ÷ objective",
            ">",
            "",
            "endpoint-slow",
            endpoint_p99_over_slo,
            lambda o: f"p99 latency {o.value:.1f}× its objective",
        ),
        RuleKind(
            "tenant_starving",
            "GPUs pending under quota",
            ">",
            "",
            "tenant-starving",
            tenant_starving,
            lambda o: f"{number(o.value)} GPUs pending while under quota",
        ),
        RuleKind(
            "telemetry_missing",
            "GPUs with telemetry",
            "<",
            "",
            "telemetry-missing",
            telemetry_samples,
        ),
    )
}


def configured_rules(
    rules: Mapping[str, AlertRule], hot_temperature_c: float
) -> list[ConfiguredRule]:
    """The enabled rules with their settings (gpu_hot's threshold defaults to the hot
    temperature the overview uses)."""
    out = []
    for name, kind in RULE_KINDS.items():
        setting = rules.get(name)
        if setting is None or not setting.enabled:
            continue
        threshold = setting.threshold
        if threshold is None:
            threshold = hot_temperature_c
        severity = ProblemSeverity(setting.severity)
        out.append(ConfiguredRule(kind, threshold, setting.for_seconds, severity))
    return out
