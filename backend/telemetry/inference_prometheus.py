"""Inference traffic read from Prometheus (telemetry mode prometheus).

Three instant queries a round, each ``increase()`` over the window and summed by the target
labels Prometheus's Kubernetes service discovery gives a pod's series (``namespace``, ``pod``):
requests and 5xx answers from the serving layer (the OpenAI server's ``http_requests_total``, or
queue-proxy's ``revision_app_request_count``), and vLLM's latency histogram by ``le``. The
quantiles are computed from the summed buckets exactly as ``histogram_quantile()`` does
(``backend.fleet.endpoints``), so this source and the scrape sources agree.

On start the same three queries go through ``/api/v1/query_range`` over the history's length, a
step per round, so that the endpoints' sparklines show what happened before the backend started
(a restart during an incident) instead of filling round by round.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from backend.telemetry.inference import (
    LATENCY_BUCKET,
    OPENAI_REQUESTS,
    QUEUE_PROXY_REQUESTS,
    InferenceCollector,
    InferenceRound,
    PodKey,
    PodTraffic,
    RoundRead,
)
from backend.telemetry.prometheus_api import PrometheusError

Series = list[dict[str, Any]]  # an answer's result: a vector's or a matrix's series
Query = Callable[[str, float], Awaitable[Series]]
RangeQuery = Callable[[str, float, float, float], Awaitable[Series]]
BY_POD = "namespace, pod"
# The history read on start, at most. A round of the large fleet is ~70,000 series (16 latency
# buckets a pod): its whole history (60 rounds by default) would be ~4 million points, a gigabyte
# of parsed JSON and a minute of CPU. This much is 3 of its rounds (2.4 s of CPU, once:
# ``bench/prometheus_bench.py --inference``), and the whole history of a fleet of up to ~230
# model server pods.
HISTORY_POINTS = 250_000
log = logging.getLogger(__name__)


def traffic_queries(window: float) -> tuple[str, str, str]:
    """(requests, errors, latency buckets) over ``window`` seconds, per pod."""
    w = f"{max(1, round(window))}s"

    def either(openai: str, queue_proxy: str) -> str:
        return (
            f"sum by ({BY_POD}) (increase({OPENAI_REQUESTS}{openai}[{w}])) or "
            f"sum by ({BY_POD}) (increase({QUEUE_PROXY_REQUESTS}{queue_proxy}[{w}]))"
        )

    return (
        either("", ""),
        either('{status=~"5.."}', '{response_code_class="5xx"}'),
        f"sum by ({BY_POD}, le) (increase({LATENCY_BUCKET}[{w}]))",
    )


def _pod(labels: Mapping[str, str]) -> PodKey | None:
    namespace, pod = labels.get("namespace"), labels.get("pod")
    return (namespace, pod) if namespace and pod else None


def pod_traffic(vectors: Sequence[Series], window: float) -> dict[PodKey, PodTraffic]:
    """The vectors of the three queries (``traffic_queries``) at one time -> each pod's traffic
    over ``window`` seconds."""
    return next(iter(traffic_by_step(vectors, window).values()), {})


def history_rounds(matrices: Sequence[Series], window: float) -> tuple[InferenceRound, ...]:
    """The ``query_range`` matrices of the three queries -> a round per step at which any pod
    served requests, oldest first: each step read as the instant queries at its time read."""
    steps = traffic_by_step(matrices, window)
    return tuple(InferenceRound(float(at), pods) for at, pods in sorted(steps.items()) if pods)


def traffic_by_step(
    answers: Sequence[Series], window: float
) -> dict[float, dict[PodKey, PodTraffic]]:
    """The answers of the three queries (instant vectors or range matrices) -> each pod's
    traffic at each time they hold. One pass over the points: a large fleet's round is ~70,000
    series, and its history several times that."""
    requests, errors, buckets = answers
    failed: defaultdict[float, dict[PodKey, float]] = defaultdict(dict)
    for series in errors:
        if key := _pod(series["metric"]):
            for at, value in _points(series):
                failed[at][key] = float(value)
    histograms: defaultdict[PodKey, defaultdict[float, dict[float, float]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for series in buckets:
        labels = series["metric"]
        if key := _pod(labels):
            le, by_time = float(labels.get("le", "+Inf")), histograms[key]
            for at, value in _points(series):
                by_time[at][le] = float(value)
    steps: defaultdict[float, dict[PodKey, PodTraffic]] = defaultdict(dict)
    for series in requests:
        if key := _pod(series["metric"]):
            pod_buckets = histograms.get(key)
            for at, value in _points(series):
                served = float(value)
                if math.isnan(served):
                    continue
                found = pod_buckets.get(at) if pod_buckets else None
                histogram = tuple(sorted(found.items())) if found else ()
                steps[at][key] = PodTraffic(window, served, failed[at].get(key, 0.0), histogram)
    return steps


def _points(series: dict[str, Any]) -> Iterable[tuple[float, str]]:
    """A series' (time, value) points: a matrix's ``values``, a vector's one ``value``."""
    values = series.get("values")
    return values if values is not None else (series["value"],)


class PrometheusInference(InferenceCollector):
    """Reads every pod's traffic over ``window`` seconds through ``query`` (the Prometheus
    collector's ``/api/v1/query``, with its URL, token and CA); on the first round, also the
    rounds before it that Prometheus still holds, through ``query_range``."""

    def __init__(
        self,
        query: Query,
        query_range: RangeQuery,
        source: str,
        *,
        window: float = 60.0,
        interval: float = 15.0,
        history_length: int = 60,
        history_points: int = HISTORY_POINTS,
    ) -> None:
        super().__init__(interval=interval, history_length=history_length)
        self.query = query
        self.query_range = query_range
        self.source = source
        self.window = window
        self.history_length = history_length
        self.history_points = history_points
        self._history_read = False

    async def read_round(self) -> RoundRead:
        at = time.time()
        try:
            vectors = [await self.query(q, at) for q in traffic_queries(self.window)]
        except PrometheusError as exc:
            return RoundRead(None, 1, {self.source: str(exc)})
        series = sum(map(len, vectors))
        earlier = () if self._history_read else await self._read_history(at, series)
        return RoundRead(pod_traffic(vectors, self.window), 1, earlier=earlier)

    async def _read_history(self, at: float, series: int) -> tuple[InferenceRound, ...]:
        """The rounds before ``at``, one per interval, as far back as the history's length and
        ``history_points`` at ``series`` series a round allow. Asked for once: when Prometheus
        refuses, the history fills round by round, as in the other modes, rather than the live
        figures waiting for it."""
        self._history_read = True
        steps = min(self.history_length - 1, self.history_points // max(series, 1))
        if steps <= 0:
            return ()
        start, end = at - steps * self.interval, at - self.interval
        try:
            matrices = [
                await self.query_range(q, start, end, self.interval)
                for q in traffic_queries(self.window)
            ]
        except PrometheusError as exc:
            log.warning("endpoint history not read from Prometheus: %s", exc)
            return ()
        return await asyncio.to_thread(history_rounds, matrices, self.window)
