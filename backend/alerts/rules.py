"""The alert rules: each observes one value per subject in the fleet, and compares it.

A rule is a function from the inputs (the fleet model and the telemetry snapshot) to readings
(subject key, value, the row it was read from) plus a comparison with its threshold and an
explanation of a row (what the alert is about, worked out only for the readings that hold), so
that a new rule is one observer, one explainer and one ``RuleKind``. Every observer is one linear pass over the model's lists (GPUs,
workloads, endpoints, tenants, nodes). Thresholds, durations, severities and which rules are on
come from the settings.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from backend.fleet.model import FleetModel
from backend.schemas import (
    AlertSubject,
    AlertSubjectKind,
    EndpointHealth,
    Gpu,
    ProblemSeverity,
    Tenant,
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


Reading = tuple[str, float, Any]
"""One subject's key, its observed value and what it was read from (a row of the model)."""
Observer = Callable[[AlertInputs], Iterator[Reading]]
Explainer = Callable[[Any], tuple[AlertSubject, str]]
"""What a reading is about and what else explains it (shown in the message), from its source."""


class Observation:
    """One subject's observed value; what it is about and what else explains it are worked out
    only when asked, that is for the few that hold: a rule observes every GPU of the fleet.

    The value and the explanation are a function of ``source`` (a row of the model, which a
    model update replaces only when it changed): the same source reads the same."""

    __slots__ = ("_explain", "_facts", "source", "value")

    def __init__(self, value: float, source: Any, explain: Explainer) -> None:
        self.value = value
        self.source = source
        self._explain = explain
        self._facts: tuple[AlertSubject, str] | None = None

    def _explained(self) -> tuple[AlertSubject, str]:
        if self._facts is None:
            self._facts = self._explain(self.source)
        return self._facts

    @property
    def subject(self) -> AlertSubject:
        return self._explained()[0]

    @property
    def detail(self) -> str:
        return self._explained()[1]


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
    explain: Explainer
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


def explain_gpu(gpu: Gpu) -> tuple[AlertSubject, str]:
    return gpu_subject(gpu), _holder(gpu)


# -- observers -----------------------------------------------------------------------------------


def gpu_utilization(inputs: AlertInputs) -> Iterator[Reading]:
    for gpu in inputs.model.gpus.items:
        if gpu.utilization is not None:
            yield gpu.uuid, gpu.utilization, gpu


def allocated_gpu_utilization(inputs: AlertInputs) -> Iterator[Reading]:
    for gpu in inputs.model.gpus.items:
        if gpu.allocated and gpu.utilization is not None:
            yield gpu.uuid, gpu.utilization, gpu


def gpu_xid(inputs: AlertInputs) -> Iterator[Reading]:
    for gpu in inputs.model.gpus.items:
        if gpu.last_xid is not None:
            yield gpu.uuid, float(gpu.last_xid), gpu


def gpu_temperature(inputs: AlertInputs) -> Iterator[Reading]:
    for gpu in inputs.model.gpus.items:
        if gpu.temperature_c is not None:
            yield gpu.uuid, gpu.temperature_c, gpu


def rollout_stuck(inputs: AlertInputs) -> Iterator[Reading]:
    """1 for a rollout past its progress deadline, 0 for one that is not."""
    for workload in inputs.model.workloads.items:
        rollout = workload.rollout
        if rollout is not None:
            key = f"{workload.namespace}/{workload.kind.value}/{workload.name}"
            yield key, float(rollout.stuck), workload


def explain_rollout(workload: Workload) -> tuple[AlertSubject, str]:
    rollout = workload.rollout
    assert rollout is not None  # observed only with one
    progress = f"{rollout.updated}/{rollout.desired} updated, {rollout.available} available"
    return workload_subject(workload), progress if rollout.stuck else ""


def _endpoint_key(endpoint: EndpointHealth) -> str:
    return f"{endpoint.namespace}/{endpoint.kind.value}/{endpoint.name}"


def endpoint_error_rate(inputs: AlertInputs) -> Iterator[Reading]:
    """The share of requests answered with an error, percent, of endpoints that served any."""
    for endpoint in inputs.model.endpoints.items:
        if endpoint.error_rate is not None:
            yield _endpoint_key(endpoint), endpoint.error_rate * 100.0, endpoint


def explain_error_rate(endpoint: EndpointHealth) -> tuple[AlertSubject, str]:
    return endpoint_subject(endpoint), f"{number(endpoint.request_rate or 0.0)} requests/s"


def endpoint_p99_over_slo(inputs: AlertInputs) -> Iterator[Reading]:
    """p99 latency ÷ the workload's objective, of endpoints that have one (an annotation)."""
    for endpoint in inputs.model.endpoints.items:
        slo, p99 = endpoint.slo_p99_seconds, endpoint.p99_seconds
        if slo is not None and p99 is not None:
            yield _endpoint_key(endpoint), p99 / slo, endpoint


def explain_p99(endpoint: EndpointHealth) -> tuple[AlertSubject, str]:
    slo, p99 = endpoint.slo_p99_seconds or 0.0, endpoint.p99_seconds or 0.0
    return endpoint_subject(endpoint), f"p99 {p99:.2f} s, objective {number(slo)} s"


def _starving(tenant: Tenant) -> list[TenantQuota]:
    """The tenant's quotas with GPUs pending while it uses less than the quota."""
    return [q for q in tenant.quotas if q.pending > 0 and q.used < q.nominal]


def tenant_starving(inputs: AlertInputs) -> Iterator[Reading]:
    """GPUs a tenant waits for on the GPU models where it uses less than its quota."""
    for tenant in inputs.model.tenants.items:
        yield tenant.name, float(sum(q.pending for q in _starving(tenant))), tenant


def explain_tenant(tenant: Tenant) -> tuple[AlertSubject, str]:
    detail = ", ".join(f"{q.gpu_model}: {q.used} of {q.nominal} used" for q in _starving(tenant))
    name = tenant.name
    return AlertSubject(kind=AlertSubjectKind.TENANT, name=name, tenant=name), detail


def telemetry_samples(inputs: AlertInputs) -> Iterator[Reading]:
    """GPUs with a sample, per GPU node; nothing before telemetry's first round (nor when it
    is off), when no node can be judged. Read from (node name, detail): a new source each
    time."""
    telemetry = inputs.telemetry
    if telemetry.completed_at is None:
        return
    sampled: Mapping[str, int] = _sampled_per_node(inputs.model.gpus.items)
    failing = len(telemetry.failures)
    detail = f"{failing} telemetry source(s) failing" if failing else ""
    for node in inputs.model.nodes.items:
        if node.gpus_capacity > 0:
            yield node.name, float(sampled.get(node.name, 0)), (node.name, detail)


def explain_node(source: tuple[str, str]) -> tuple[AlertSubject, str]:
    name, detail = source
    return AlertSubject(kind=AlertSubjectKind.NODE, name=name, node=name), detail


def _sampled_per_node(gpus: list[Gpu]) -> Mapping[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for gpu in gpus:
        if gpu.sampled_at is not None:
            counts[gpu.node] += 1
    return counts


RULE_KINDS: dict[str, RuleKind] = {
    kind.name: kind
    for kind in (
        RuleKind(
            "gpu_saturated",
            "GPU utilization",
            ">",
            "%",
            "gpu-saturated",
            gpu_utilization,
            explain_gpu,
        ),
        RuleKind(
            "gpu_idle",
            "allocated GPU utilization",
            "<",
            "%",
            "gpu-idle",
            allocated_gpu_utilization,
            explain_gpu,
        ),
        RuleKind(
            "gpu_xid",
            "XID",
            ">",
            "",
            "xid",
            gpu_xid,
            explain_gpu,
            lambda o: f"XID {number(o.value)}",
        ),
        RuleKind("gpu_hot", "GPU temperature", ">=", "°C", "hot", gpu_temperature, explain_gpu),
        RuleKind(
            "rollout_stuck",
            "rollout stuck",
            ">",
            "",
            "rollout",
            rollout_stuck,
            explain_rollout,
            lambda _: "rollout stuck past its progress deadline",
        ),
        RuleKind(
            "endpoint_errors",
            "error rate",
            ">",
            "%",
            "endpoint-errors",
            endpoint_error_rate,
            explain_error_rate,
        ),
        RuleKind(
            "endpoint_slow",
            "p99 ÷ objective",
            ">",
            "",
            "endpoint-slow",
            endpoint_p99_over_slo,
            explain_p99,
            lambda o: f"p99 latency {o.value:.1f}× its objective",
        ),
        RuleKind(
            "tenant_starving",
            "GPUs pending under quota",
            ">",
            "",
            "tenant-starving",
            tenant_starving,
            explain_tenant,
            lambda o: f"{number(o.value)} GPUs pending while under quota",
        ),
        RuleKind(
            "telemetry_missing",
            "GPUs with telemetry",
            "<",
            "",
            "telemetry-missing",
            telemetry_samples,
            explain_node,
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
