"""The sandbox's model servers: every model release pod answers ``/metrics`` like vLLM, and every
InferenceService predictor pod also like Knative's queue-proxy.

Reached as the DCGM exporters are, through the API server's pod proxy:
``pods/<pod>:8000/proxy/metrics`` (a Deployment's vLLM server: its container port),
``pods/<pod>:8080/proxy/metrics`` (KServe's model container) and ``pods/<pod>:9091/proxy/metrics``
(queue-proxy's user metrics). The names are the real ones: vLLM's ``vllm:num_requests_running``,
``vllm:num_requests_waiting``, ``vllm:request_success_total{finished_reason}``,
``vllm:e2e_request_latency_seconds`` (histogram), the OpenAI server's ``http_requests_total
{handler,method,status}`` (prometheus-fastapi-instrumentator, status grouped as ``2xx``/``5xx``),
and queue-proxy's ``revision_app_request_count`` / ``revision_app_request_latencies`` (ms) labelled
with the revision, configuration and service names.

Load is simulated lazily, on scrape: each pod keeps cumulative counters that grow by the request
rate times the clock time since its last scrape (since its start, on the first), so counters only
increase and a frozen clock freezes them. The rate follows a slow wave per workload; an
InferenceService revision gets its share of the traffic split. One release is a bad revision,
chosen when the fleet is built and keyed on its pod template (a Deployment's
``pod-template-hash``, an InferenceService's revision): its requests fail 8% of the time and take
3x as long, so rolling it back brings the metrics back to normal.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from backend.conventions import ISVC_LABEL, MODEL_LABEL, QUEUE_LABEL, STAGE_LABEL
from backend.k8s.annotations import REVISION_ANNOTATION
from backend.sandbox.clock import Clock
from backend.sandbox.controllers.kserve import REVISION_LABEL
from backend.sandbox.store import DEPLOYMENT, INFERENCE_SERVICE, REPLICA_SET, JsonObject, Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
VLLM_PORT = "8000"
KSERVE_PORT = "8080"
QUEUE_PROXY_PORT = "9091"
TEMPLATE_HASH = "pod-template-hash"
# vLLM's buckets for vllm:e2e_request_latency_seconds, and Knative's for request latencies (ms).
VLLM_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
KNATIVE_BUCKETS_MS = (
    5, 10, 20, 40, 60, 80, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 900,
    1000, 2000, 5000, 10000, 20000, 50000, 100000,
)  # fmt: skip
LATENCY_SIGMA = 0.45  # log-normal spread of request latencies
BAD_ERROR_RATIO = 0.08
BAD_LATENCY_FACTOR = 3.0
LOAD_PERIOD_SECONDS = 900.0
Handler = Callable[[JsonObject, str, str], tuple[int, str, bytes]]


def _unit(*parts: str) -> float:
    """A deterministic number in [0, 1) from ``parts``."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def lognormal_cdf(x: float, median: float, sigma: float = LATENCY_SIGMA) -> float:
    """P(latency <= x) for a log-normal latency with ``median``."""
    if x <= 0:
        return 0.0
    return 0.5 * (1.0 + math.erf(math.log(x / median) / (sigma * math.sqrt(2.0))))


@dataclass(frozen=True)
class Quality:
    """How a pod's requests go: the share that fails and the median latency."""

    error_ratio: float
    median_seconds: float


@dataclass
class PodCounters:
    """A pod's cumulative counters since it started, as floats (as prometheus_client keeps and
    renders them): fractions keep short windows' ratios exact."""

    last: float  # clock time (s) of the last update
    requests: float = 0.0
    errors: float = 0.0
    latency_sum: float = 0.0
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(VLLM_BUCKETS))
    knative_buckets: list[float] = field(default_factory=lambda: [0.0] * len(KNATIVE_BUCKETS_MS))


@dataclass(frozen=True)
class BadRevisions:
    """The templates that serve badly: Deployment pod-template hashes, KServe revision names."""

    template_hashes: frozenset[str] = frozenset()
    kserve_revisions: frozenset[str] = frozenset()


def choose_bad_revisions(store: Store) -> BadRevisions:
    """The first production model Deployment with a previous revision to roll back to, and the
    first InferenceService in canary with a rolled-out revision behind it: their current templates
    are the bad ones. Deployments whose pods Kueue does not gate come first: a rollback's new pods
    then need only room under the namespace's ResourceQuota, not a queue's admission."""
    hashes: list[str] = []
    for deploy in sorted(store.list(DEPLOYMENT), key=_queued_then_key):
        meta = deploy["metadata"]
        labels = meta.get("labels") or {}
        if MODEL_LABEL not in labels or labels.get(STAGE_LABEL) != "production":
            continue
        if (deploy.get("spec") or {}).get("paused"):
            continue
        current = _current_template_hash(store, deploy)
        if current is not None:
            hashes.append(current)
            break
    revisions: list[str] = []
    for isvc in sorted(store.list(INFERENCE_SERVICE), key=_key):
        if (isvc["spec"].get("predictor") or {}).get("canaryTrafficPercent") is None:
            continue
        predictor = ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}
        latest, previous = predictor.get("latestCreatedRevision"), _previous(predictor)
        if latest and previous and latest != previous:
            revisions.append(latest)
            break
    return BadRevisions(frozenset(hashes), frozenset(revisions))


def _queued_then_key(deploy: JsonObject) -> tuple[bool, str, str]:
    template = ((deploy.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return QUEUE_LABEL in (template.get("labels") or {}), *_key(deploy)


def _key(obj: JsonObject) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _previous(predictor: JsonObject) -> str | None:
    rolled = predictor.get("latestRolledoutRevision")
    if rolled and rolled != predictor.get("latestCreatedRevision"):
        return str(rolled)
    previous = predictor.get("previousRolledoutRevision")
    return str(previous) if previous else None


def _current_template_hash(store: Store, deploy: JsonObject) -> str | None:
    """The pod-template-hash of the Deployment's newest ReplicaSet, when an older one exists."""
    meta = deploy["metadata"]
    owned = [
        rs
        for rs in store.scan(REPLICA_SET, meta["namespace"])
        if any(
            ref.get("kind") == "Deployment" and ref.get("name") == meta["name"]
            for ref in rs["metadata"].get("ownerReferences") or ()
        )
    ]
    if len(owned) < 2:
        return None
    newest = max(owned, key=lambda rs: int(rs["metadata"].get("annotations", {}).get(
        REVISION_ANNOTATION, "0") or 0))  # fmt: skip
    return (newest["metadata"].get("labels") or {}).get(TEMPLATE_HASH)


class ModelServers:
    """Answers proxied ``/metrics`` requests of model server pods; others go to ``fallback``."""

    def __init__(
        self, store: Store, clock: Clock, seed: int, fallback: Handler, bad: BadRevisions
    ) -> None:
        self.store = store
        self.clock = clock
        self.seed = seed
        self.fallback = fallback
        self.bad = bad
        self._counters: dict[str, PodCounters] = {}  # pod uid -> counters

    def handle(self, pod: JsonObject, port: str, path: str) -> tuple[int, str, bytes]:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        isvc = labels.get(ISVC_LABEL)
        if isvc is None and MODEL_LABEL not in labels:
            return self.fallback(pod, port, path)
        ports = (KSERVE_PORT, QUEUE_PROXY_PORT) if isvc else (VLLM_PORT,)
        if str(port) not in ports:
            return self.fallback(pod, port, path)
        if path.strip("/") != "metrics":
            return 404, "text/plain; charset=utf-8", b"Not Found"
        counters = self._update(pod)
        if str(port) == QUEUE_PROXY_PORT:
            text = self.queue_proxy_text(pod, counters)
        else:
            text = self.vllm_text(pod, counters, openai_server=isvc is None)
        return 200, CONTENT_TYPE, text.encode()

    # -- the simulated load ----------------------------------------------------------------------
    def workload_key(self, pod: JsonObject) -> str:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        owner = labels.get(ISVC_LABEL) or labels.get("app") or meta["name"]
        return f"{meta.get('namespace', '')}/{owner}"

    def quality(self, pod: JsonObject) -> Quality:
        labels = pod["metadata"].get("labels") or {}
        key = self.workload_key(pod)
        error_ratio = 0.001 + 0.003 * _unit(str(self.seed), key, "errors")
        median = 0.35 + 0.6 * _unit(str(self.seed), key, "latency")
        bad = labels.get(TEMPLATE_HASH) in self.bad.template_hashes or (
            labels.get(REVISION_LABEL) in self.bad.kserve_revisions
        )
        if bad:
            return Quality(BAD_ERROR_RATIO, median * BAD_LATENCY_FACTOR)
        return Quality(error_ratio, median)

    def request_rate(self, pod: JsonObject, t: float) -> float:
        """Requests per second reaching the pod at clock time ``t``."""
        key = self.workload_key(pod)
        base = 5.0 + 25.0 * _unit(str(self.seed), key, "rate")
        phase = 2 * math.pi * _unit(str(self.seed), key, "phase")
        wave = 1.0 + 0.3 * math.sin(2 * math.pi * t / LOAD_PERIOD_SECONDS + phase)
        return base * wave * self._traffic_share(pod)

    def _traffic_share(self, pod: JsonObject) -> float:
        """An InferenceService revision's share of the split (1 for everything else)."""
        labels = pod["metadata"].get("labels") or {}
        name, revision = labels.get(ISVC_LABEL), labels.get(REVISION_LABEL)
        if not name:
            return 1.0
        isvc = self.store.find(INFERENCE_SERVICE, pod["metadata"].get("namespace", ""), name)
        status = (isvc or {}).get("status") or {}
        traffic = ((status.get("components") or {}).get("predictor") or {}).get("traffic") or []
        percent = sum(
            int(t.get("percent") or 0) for t in traffic if t.get("revisionName") == revision
        )
        return percent / 100.0

    def _update(self, pod: JsonObject) -> PodCounters:
        """Grow the pod's counters to now (lazily: only pods that are scraped cost anything)."""
        meta = pod["metadata"]
        uid = meta.get("uid") or f"{meta.get('namespace')}/{meta['name']}"
        now = self.clock.now().timestamp()
        counters = self._counters.get(uid)
        if counters is None:
            counters = self._counters[uid] = PodCounters(last=self._started(pod, now))
        seconds = now - counters.last
        if seconds > 0:
            self._grow(pod, counters, seconds, counters.last + seconds / 2)
            counters.last = now
        if len(self._counters) > 100_000:
            self._counters = {uid: counters}
        return counters

    def _grow(self, pod: JsonObject, counters: PodCounters, seconds: float, mid: float) -> None:
        quality = self.quality(pod)
        requests = self.request_rate(pod, mid) * seconds
        counters.requests += requests
        counters.errors += requests * quality.error_ratio
        counters.latency_sum += requests * quality.median_seconds * math.exp(LATENCY_SIGMA**2 / 2)
        for i, le in enumerate(VLLM_BUCKETS):
            counters.buckets[i] += requests * lognormal_cdf(le, quality.median_seconds)
        for i, le_ms in enumerate(KNATIVE_BUCKETS_MS):
            counters.knative_buckets[i] += requests * lognormal_cdf(
                le_ms / 1000.0, quality.median_seconds
            )

    @staticmethod
    def _started(pod: JsonObject, now: float) -> float:
        stamp = (pod.get("status") or {}).get("startTime") or pod["metadata"].get(
            "creationTimestamp"
        )
        try:
            started = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return now
        return min(started, now)

    # -- the texts -------------------------------------------------------------------------------
    def running_requests(self, pod: JsonObject, quality: Quality) -> float:
        """Little's law: requests in flight = rate x latency."""
        t = self.clock.now().timestamp()
        return float(math.floor(self.request_rate(pod, t) * quality.median_seconds))

    def vllm_text(self, pod: JsonObject, c: PodCounters, *, openai_server: bool) -> str:
        labels = pod["metadata"].get("labels") or {}
        model = _label_value(labels.get(MODEL_LABEL) or labels.get(ISVC_LABEL) or "")
        quality = self.quality(pod)
        running = self.running_requests(pod, quality)
        ok = c.requests - c.errors
        stop = ok * 0.9
        m = f'model_name="{model}"'
        lines = [
            "# HELP vllm:num_requests_running Number of requests currently running on GPU.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{m}}} {running:.1f}",
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{m}}} {math.floor(running * 0.2):.1f}",
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success_total counter",
            f'vllm:request_success_total{{finished_reason="stop",{m}}} {stop:.3f}',
            f'vllm:request_success_total{{finished_reason="length",{m}}} {ok - stop:.3f}',
            "# HELP vllm:e2e_request_latency_seconds Histogram of end to end request latency in "
            "seconds.",
            "# TYPE vllm:e2e_request_latency_seconds histogram",
        ]
        for le, count in zip(VLLM_BUCKETS, c.buckets, strict=True):
            lines.append(f'vllm:e2e_request_latency_seconds_bucket{{le="{le}",{m}}} {count:.3f}')
        total = c.requests
        lines += [
            f'vllm:e2e_request_latency_seconds_bucket{{le="+Inf",{m}}} {total:.3f}',
            f"vllm:e2e_request_latency_seconds_count{{{m}}} {total:.3f}",
            f"vllm:e2e_request_latency_seconds_sum{{{m}}} {c.latency_sum:.3f}",
        ]
        if openai_server:
            handler = 'handler="/v1/chat/completions",method="POST"'
            lines += [
                "# HELP http_requests_total Total number of requests by method, status and "
                "handler.",
                "# TYPE http_requests_total counter",
                f'http_requests_total{{{handler},status="2xx"}} {total - c.errors:.3f}',
                f'http_requests_total{{{handler},status="5xx"}} {c.errors:.3f}',
            ]
        return "\n".join(lines) + "\n"

    def queue_proxy_text(self, pod: JsonObject, c: PodCounters) -> str:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        revision = labels.get(REVISION_LABEL, "")
        configuration = labels.get("serving.knative.dev/configuration", "")
        service = labels.get("serving.knative.dev/service", "")
        common = (
            f'configuration_name="{_label_value(configuration)}",container_name="queue-proxy",'
            f'namespace_name="{_label_value(meta.get("namespace", ""))}",'
            f'pod_name="{_label_value(meta["name"])}",'
        )
        tail = f'revision_name="{_label_value(revision)}",service_name="{_label_value(service)}"'
        errors, total = c.errors, c.requests
        ok = f'{common}response_code="200",response_code_class="2xx",{tail}'
        failed = f'{common}response_code="503",response_code_class="5xx",{tail}'
        lines = [
            "# HELP revision_app_request_count The number of requests that are routed to "
            "user-container",
            "# TYPE revision_app_request_count counter",
            f"revision_app_request_count{{{ok}}} {total - errors:.3f}",
            f"revision_app_request_count{{{failed}}} {errors:.3f}",
            "# HELP revision_app_request_latencies The response time in millisecond",
            "# TYPE revision_app_request_latencies histogram",
        ]
        for le, count in zip(KNATIVE_BUCKETS_MS, c.knative_buckets, strict=True):
            lines.append(f'revision_app_request_latencies_bucket{{{ok},le="{le}"}} {count:.3f}')
        lines += [
            f'revision_app_request_latencies_bucket{{{ok},le="+Inf"}} {total:.3f}',
            f"revision_app_request_latencies_sum{{{ok}}} {c.latency_sum * 1000:.3f}",
            f"revision_app_request_latencies_count{{{ok}}} {total:.3f}",
        ]
        return "\n".join(lines) + "\n"
