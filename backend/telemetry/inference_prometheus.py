"""Inference traffic read from Prometheus (telemetry mode prometheus).

Three instant queries a round, each ``increase()`` over the window and summed by the target
labels Prometheus's Kubernetes service discovery gives a pod's series (``namespace``, ``pod``):
requests and 5xx answers from the serving layer (the OpenAI server's ``http_requests_total``, or
queue-proxy's ``revision_app_request_count``), and vLLM's latency histogram by ``le``. The
quantiles are computed from the summed buckets exactly as ``histogram_quantile()`` does
(``backend.fleet.endpoints``), so this source and the scrape sources agree.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from backend.telemetry.inference import (
    LATENCY_BUCKET,
    OPENAI_REQUESTS,
    QUEUE_PROXY_REQUESTS,
    InferenceCollector,
    PodKey,
    PodTraffic,
    RoundRead,
)
from backend.telemetry.prometheus_api import PrometheusError

Query = Callable[[str, float], Awaitable[list[dict[str, Any]]]]
BY_POD = "namespace, pod"


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


def _pod(series: dict[str, Any]) -> PodKey | None:
    metric = series["metric"]
    namespace, pod = metric.get("namespace"), metric.get("pod")
    return (namespace, pod) if namespace and pod else None


class PrometheusInference(InferenceCollector):
    """Reads every pod's traffic over ``window`` seconds through ``query`` (the Prometheus
    collector's ``/api/v1/query``, with its URL, token and CA)."""

    def __init__(
        self,
        query: Query,
        source: str,
        *,
        window: float = 60.0,
        interval: float = 15.0,
        history_length: int = 60,
    ) -> None:
        super().__init__(interval=interval, history_length=history_length)
        self.query = query
        self.source = source
        self.window = window

    async def read_round(self) -> RoundRead:
        at = time.time()
        requests_q, errors_q, buckets_q = traffic_queries(self.window)
        try:
            requests = await self.query(requests_q, at)
            errors = await self.query(errors_q, at)
            buckets = await self.query(buckets_q, at)
        except PrometheusError as exc:
            return RoundRead(None, 1, {self.source: str(exc)})
        failed = {key: float(s["value"][1]) for s in errors if (key := _pod(s))}
        histograms: dict[PodKey, dict[float, float]] = {}
        for series in buckets:
            key = _pod(series)
            if key is not None:
                le = float(series["metric"].get("le", "+Inf"))
                histograms.setdefault(key, {})[le] = float(series["value"][1])
        pods: dict[PodKey, PodTraffic] = {}
        for series in requests:
            key = _pod(series)
            value = float(series["value"][1])
            if key is None or math.isnan(value):
                continue
            histogram = tuple(sorted(histograms.get(key, {}).items()))
            pods[key] = PodTraffic(self.window, value, failed.get(key, 0.0), histogram)
        return RoundRead(pods, 1)
