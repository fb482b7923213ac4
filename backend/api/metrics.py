"""Prometheus metrics for ``/metrics``: request latency per route, and the backend's state.

Each app has its own registry (several backends may live in one test process). Request latency is
recorded by a plain ASGI middleware, labelled with the route *template* (``/api/v1/nodes/{name}``)
so that names from the cluster never become label values. Everything else is read from the
served source at scrape time by a custom collector, so there is nothing to keep in step.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from backend.api.protocols import ServedSource
from backend.cputime import spent
from backend.reads_first import RequestsInFlight
from backend.schemas import Alert

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UNMATCHED = "unmatched"


class BackendCollector(Collector):
    """Cache, telemetry and model state, read from the served source when scraped."""

    def __init__(self, source: ServedSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        source = self.source
        fresh = source.freshness()
        yield _gauge(
            "opsconsole_cluster_synced",
            "1 once every watched kind was listed.",
            float(fresh.synced),
        )
        yield _gauge(
            "opsconsole_cluster_cache_age_seconds",
            "Seconds since the last contact with the Kubernetes API (-1 = never).",
            _age(fresh.cluster_age_seconds),
        )
        restarts = CounterMetricFamily(
            "opsconsole_watch_restarts", "Watch streams restarted after an error or 410."
        )
        restarts.add_metric([], fresh.watch_restarts)
        yield restarts
        objects = GaugeMetricFamily(
            "opsconsole_cluster_objects", "Cached objects per kind.", labels=["kind"]
        )
        for kind, count in source.object_counts().items():
            objects.add_metric([kind], count)
        yield objects
        yield _gauge(
            "opsconsole_telemetry_age_seconds",
            "Seconds since the newest complete telemetry round (-1 = never).",
            _age(fresh.telemetry_age_seconds),
        )
        yield _gauge(
            "opsconsole_telemetry_sources", "Telemetry sources scraped.", fresh.telemetry_sources
        )
        yield _gauge(
            "opsconsole_telemetry_errors",
            "Sources whose last scrape failed.",
            fresh.telemetry_errors,
        )
        yield _gauge(
            "opsconsole_inference_age_seconds",
            "Seconds since the newest model server metrics round that read something (-1 = never).",
            _age(fresh.inference_age_seconds),
        )
        yield _gauge(
            "opsconsole_inference_sources", "Model server sources read.", fresh.inference_sources
        )
        yield _gauge(
            "opsconsole_inference_errors",
            "Model server sources whose last read failed.",
            fresh.inference_errors,
        )
        stats = source.model_stats
        yield _gauge(
            "opsconsole_model_build_duration_seconds",
            "Duration of the last fleet model build.",
            stats.last_duration,
        )
        builds = CounterMetricFamily("opsconsole_model_builds", "Fleet model builds.")
        builds.add_metric([], stats.builds)
        yield builds
        if source.alerts is not None:
            yield _alerts(source.alerts.view.alerts)
        yield _work_cpu()


class RequestsCollector(Collector):
    """The requests being answered, and how long the fleet model paused for them."""

    def __init__(self, requests: RequestsInFlight) -> None:
        self.requests = requests

    def collect(self) -> Iterator[Any]:
        yield _gauge(
            "opsconsole_http_requests_in_flight",
            "HTTP requests being answered.",
            self.requests.count,
        )
        paused = CounterMetricFamily(
            "opsconsole_model_paused_seconds",
            "Seconds the fleet model's worker paused for requests in flight.",
        )
        paused.add_metric([], self.requests.paused_seconds)
        yield paused


def _alerts(current: Iterable[Alert]) -> GaugeMetricFamily:
    """Current alerts per rule and state (resolved: in the last hour)."""
    family = GaugeMetricFamily(
        "opsconsole_alerts", "Current alerts per rule and state.", labels=["rule", "state"]
    )
    for (rule, state), count in sorted(Counter((a.rule, a.state.value) for a in current).items()):
        family.add_metric([rule, state], count)
    return family


def _work_cpu() -> CounterMetricFamily:
    """CPU seconds of the background work that is accounted (``backend.cputime``): its share
    of ``process_cpu_seconds_total``."""
    family = CounterMetricFamily(
        "opsconsole_work_cpu_seconds",
        "CPU seconds spent per kind of background work (alerts, cost).",
        labels=["work"],
    )
    for work, seconds in sorted(spent().items()):
        family.add_metric([work], seconds)
    return family


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _age(value: float | None) -> float:
    return -1.0 if value is None else value


class ApiMetrics:
    """The registry of one app, and the request-latency histogram the middleware feeds."""

    def __init__(self, source: ServedSource, requests: RequestsInFlight | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.latency = Histogram(
            "opsconsole_http_request_duration_seconds",
            "HTTP request latency by method, route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(BackendCollector(source))
        self.requests = requests if requests is not None else RequestsInFlight()
        self.registry.register(RequestsCollector(self.requests))
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, CPU, fds

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def route_template(scope: dict) -> str:
    """The matched route's template, e.g. ``/api/v1/tenants/{name}`` (without its convertors:
    not ``{name:name}``). Unmatched requests share one label."""
    template = getattr(scope.get("route"), "path_format", None)
    return template or UNMATCHED


class MetricsMiddleware:
    """Times every HTTP request, and counts the ones in flight (which the fleet model's updates
    give way to); pure ASGI: cheaper than BaseHTTPMiddleware."""

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        start = time.perf_counter()
        self.metrics.requests.count += 1
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.count -= 1
            template = route_template(scope)
            self.metrics.latency.labels(scope["method"], template, str(status["code"])).observe(
                time.perf_counter() - start
            )
