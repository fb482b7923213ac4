"""Inference traffic per model server pod: what each pod served during one window, kept for the
last rounds (the history the endpoint sparklines are drawn from).

A source reads, once per round, every model server pod's requests, 5xx answers and end-to-end
latency histogram over a window: the scrape sources as the difference of two consecutive scrapes
of the pod's cumulative counters, the Prometheus source as ``increase()`` over a range. Either way
a round is a ``PodTraffic`` per ``(namespace, pod)``; ``backend.fleet.endpoints`` joins pods to
their workloads and revisions.

The metric names are the serving stack's: requests and errors from the serving layer (vLLM's
OpenAI server's ``http_requests_total{status}``, or Knative queue-proxy's
``revision_app_request_count{response_code_class}`` for InferenceServices; vLLM's own
``vllm:request_success_total`` when neither is there), latency from vLLM's
``vllm:e2e_request_latency_seconds`` histogram.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.telemetry.base import Periodic
from backend.telemetry.prometheus import PromSample, base_name, parse_samples

OPENAI_REQUESTS = "http_requests_total"
QUEUE_PROXY_REQUESTS = "revision_app_request_count"
VLLM_SUCCESS = "vllm:request_success_total"
LATENCY_BUCKET = "vllm:e2e_request_latency_seconds_bucket"
# Sample names without ``_total`` (which the reference parser may add to counters) -> metric.
COUNTERS = {
    base_name(metric): metric for metric in (OPENAI_REQUESTS, QUEUE_PROXY_REQUESTS, VLLM_SUCCESS)
}
PodKey = tuple[str, str]  # (namespace, pod)
Buckets = tuple[tuple[float, float], ...]  # (le, cumulative count), ascending, +Inf last


@dataclass(frozen=True, slots=True)
class PodTraffic:
    """What one pod served during ``seconds``: requests, failed ones, latency histogram."""

    seconds: float
    requests: float
    errors: float
    buckets: Buckets = ()


@dataclass(frozen=True, slots=True)
class InferenceRound:
    """One round's traffic of every model server pod read."""

    at: float  # time.time() at the end of the window
    pods: Mapping[PodKey, PodTraffic] = field(default_factory=dict)
    # What readers derive from this round once, for as long as the round is kept (the fleet
    # model's per-endpoint figures).
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class InferenceSnapshot:
    """The last rounds, oldest first, and the sources whose last read failed."""

    rounds: tuple[InferenceRound, ...] = ()
    failures: Mapping[str, str] = field(default_factory=dict)
    summary_rounds: int = 1  # the newest rounds an endpoint's headline figures cover
    sources: int = 0  # model server pods (or Prometheus servers) the last round read
    completed_at: float | None = None  # time.time() of the newest round that read something


@dataclass(frozen=True, slots=True)
class RoundRead:
    """What one round read: the pods' traffic since the previous round (None: nothing to compare
    with yet), how many sources it asked, and the ones that failed (source -> why). ``earlier``
    are rounds from before this one, oldest first, that the source kept (Prometheus's history,
    read on start) and that go into the history ahead of it."""

    pods: dict[PodKey, PodTraffic] | None
    sources: int
    failures: dict[str, str] = field(default_factory=dict)
    earlier: tuple[InferenceRound, ...] = ()


@dataclass(frozen=True, slots=True)
class Counters:
    """A pod's cumulative counters as one scrape read them."""

    requests: float
    errors: float
    buckets: Buckets


def is_error(labels: Mapping[str, str]) -> bool:
    """A 5xx answer, by the OpenAI server's ``status`` or queue-proxy's ``response_code_class``."""
    return labels.get("status", "").startswith("5") or labels.get(
        "response_code_class", ""
    ).startswith("5")


def pod_counters(samples: Iterable[PromSample]) -> Counters | None:
    """A pod's cumulative counters from its scraped samples; None when it exposes none."""
    totals = {OPENAI_REQUESTS: 0.0, QUEUE_PROXY_REQUESTS: 0.0, VLLM_SUCCESS: 0.0}
    seen: set[str] = set()
    errors = 0.0
    buckets: dict[float, float] = {}
    for name, labels, value in samples:
        if math.isnan(value):
            continue
        if name == LATENCY_BUCKET:
            le = float(labels.get("le", "inf"))
            buckets[le] = buckets.get(le, 0.0) + value
            continue
        metric = COUNTERS.get(base_name(name))
        if metric is None:
            continue
        seen.add(metric)
        totals[metric] += value
        if metric != VLLM_SUCCESS and is_error(labels):
            errors += value
    for metric in (OPENAI_REQUESTS, QUEUE_PROXY_REQUESTS, VLLM_SUCCESS):
        if metric in seen:
            failed = errors if metric != VLLM_SUCCESS else 0.0
            return Counters(totals[metric], failed, tuple(sorted(buckets.items())))
    if buckets:
        return Counters(buckets.get(math.inf, 0.0), 0.0, tuple(sorted(buckets.items())))
    return None


def pod_page_counters(texts: list[str]) -> Counters | None:
    """A pod's counters from its scraped pages (the parser of its page group)."""
    return pod_counters([sample for text in texts for sample in parse_samples(text)])


def increase(before: Counters, after: Counters, seconds: float) -> PodTraffic:
    """What happened between two scrapes; a counter that went down restarted from zero (as
    Prometheus's ``increase()`` reads a reset)."""
    reset = after.requests < before.requests
    old = dict(before.buckets)
    buckets = tuple(
        (le, count if reset or count < old.get(le, 0.0) else count - old.get(le, 0.0))
        for le, count in after.buckets
    )
    if reset:
        return PodTraffic(seconds, after.requests, after.errors, buckets)
    errors = max(0.0, after.errors - before.errors)
    return PodTraffic(seconds, after.requests - before.requests, errors, buckets)


class InferenceCollector(Periodic):
    """Reads a round every ``interval`` seconds and keeps the last ``history_length`` of them."""

    def __init__(
        self, *, interval: float = 15.0, history_length: int = 60, summary_rounds: int = 1
    ) -> None:
        self.interval = interval
        self.summary_rounds = summary_rounds
        self.version = 0
        self._rounds: deque[InferenceRound] = deque(maxlen=history_length)
        self._snapshot = InferenceSnapshot()

    def snapshot(self) -> InferenceSnapshot:
        return self._snapshot

    async def read_round(self) -> RoundRead:
        """The pods' traffic since the last round, the sources read and the ones that failed."""
        raise NotImplementedError  # pragma: no cover - abstract

    async def collect_once(self) -> None:
        """One round, published as a new snapshot. A round in which every source failed read
        nothing: the data's age keeps counting from the last round that read something."""
        read = await self.read_round()
        now = time.time()
        self._rounds.extend(read.earlier)
        if read.pods is not None:
            self._rounds.append(InferenceRound(now, read.pods))
        failed_all = read.sources > 0 and len(read.failures) >= read.sources
        self._snapshot = InferenceSnapshot(
            tuple(self._rounds),
            read.failures,
            self.summary_rounds,
            sources=read.sources,
            completed_at=self._snapshot.completed_at if failed_all else now,
        )
        self.version += 1

    async def run_round(self) -> None:
        await self.collect_once()
