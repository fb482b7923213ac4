"""Endpoint health: the sandbox's model servers, the backend reading them by scraping and through
a real Prometheus, the console's list of endpoints, the bad revision and its recovery after a
rollback through the API."""

from __future__ import annotations

import asyncio
import itertools
import math
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend.conventions import ISVC_LABEL, MODEL_LABEL, SLO_P99_ANNOTATION
from backend.fleet.endpoints import histogram_quantile, request_stats
from backend.main import RunningBackend
from backend.sandbox.clock import Clock
from backend.sandbox.modelserver import BadRevisions, Handler, ModelServers
from backend.sandbox.store import INFERENCE_SERVICE, POD, JsonObject, Store
from backend.schemas import EndpointHealth
from backend.service import Backend as Service
from backend.settings import Settings
from backend.telemetry.inference import InferenceSnapshot, PodTraffic
from backend.telemetry.inference_prometheus import (
    PrometheusInference,
    pod_traffic,
    traffic_queries,
)
from backend.telemetry.inference_scrape import (
    ScrapedInference,
    direct_urls,
    model_server_pods,
    model_server_ports,
)
from backend.telemetry.prometheus_api import PrometheusCollector
from opsconsole.app import OpsConsoleApp
from opsconsole.screens.endpoints import EndpointsScreen
from opsconsole.screens.workload_detail import WorkloadDetailScreen
from opsconsole.settings import ConsoleSettings
from tests.conftest import SEED
from tests.prom_fixture import PromServer, pod_scrape_config, running_prometheus
from tests.support.console import screen_text, wait_for
from tests.support.sandbox import SandboxThread, sandbox_ca, tls_context
from tests.support.tokens import admin_headers, bearer, issue_token

FROZEN = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
BAD = ("Deployment", "team-g", "llama-8b-prod")  # the demo fleet's bad release (seed 7)


# -- Prometheus's histogram_quantile, exactly --------------------------------------------------
BUCKETS = ((0.5, 10.0), (1.0, 20.0), (2.0, 40.0), (math.inf, 40.0))


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.25, 0.5),  # the rank is exactly a bucket's count: its upper bound
        (0.125, 0.25),  # inside the first bucket: from 0
        (0.375, 0.75),
        (0.5, 1.0),
        (0.75, 1.5),
        (1.0, 2.0),
    ],
)
def test_quantiles_interpolate_as_prometheus_does(q: float, expected: float) -> None:
    assert histogram_quantile(q, BUCKETS) == pytest.approx(expected)


def test_a_rank_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.99, ((1.0, 10.0), (2.0, 50.0), (math.inf, 100.0))) == 2.0
    assert histogram_quantile(0.99, ((1.0, 0.0), (math.inf, 0.0))) is None
    assert histogram_quantile(0.5, ()) is None


def test_pods_add_up_to_an_endpoint() -> None:
    a = PodTraffic(10.0, 100.0, 1.0, ((1.0, 50.0), (math.inf, 100.0)))
    b = PodTraffic(5.0, 100.0, 9.0, ((1.0, 50.0), (math.inf, 100.0)))
    stats = request_stats([a, b])
    assert stats.request_rate == pytest.approx(30.0)  # 10/s + 20/s
    assert stats.error_rate == pytest.approx(0.05)  # 10 of 200
    assert stats.p50_seconds == pytest.approx(1.0)
    assert request_stats([]).request_rate is None
    idle = request_stats([PodTraffic(10.0, 0.0, 0.0, ((math.inf, 0.0),))])
    assert (idle.request_rate, idle.error_rate, idle.p99_seconds) == (0.0, None, None)


# -- the sandbox's model servers under a controlled clock ----------------------------------------
def _pod(name: str, labels: dict[str, str], started: datetime) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "team-a", "uid": name, "labels": labels},
        "spec": {"containers": [{"name": "server", "ports": [{"containerPort": 8000}]}]},
        "status": {"phase": "Running", "startTime": started.strftime("%Y-%m-%dT%H:%M:%SZ")},
    }


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _scrape(servers: ModelServers, pod: dict[str, Any], port: str = "8000") -> dict[str, Any]:
    status, content_type, body = servers.handle(pod, port, "metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    return _families(body.decode())


def _requests(families: dict[str, Any]) -> tuple[float, float, list[tuple[float, float]]]:
    http = families["http_requests"].samples
    total = sum(s.value for s in http)
    errors = sum(s.value for s in http if s.labels["status"] == "5xx")
    buckets = [
        (float(s.labels["le"]), s.value)
        for s in families["vllm:e2e_request_latency_seconds"].samples
        if s.name.endswith("_bucket")
    ]
    return total, errors, buckets


@pytest.fixture
def servers() -> tuple[ModelServers, Clock, Store]:
    clock = Clock(frozen=FROZEN)
    store = Store()
    bad = BadRevisions(template_hashes=frozenset({"bad1"}))
    refused = (503, "text/plain", b"not a model server")
    return ModelServers(store, clock, SEED, lambda *_: refused, bad), clock, store


def test_counters_only_grow_with_the_clock(servers: tuple[ModelServers, Clock, Store]) -> None:
    model_servers, clock, _ = servers
    labels = {"app": "llm", MODEL_LABEL: "llama", "pod-template-hash": "good1"}
    pod = _pod("llm-good1-aaaaa", labels, FROZEN - timedelta(hours=1))
    first = _requests(_scrape(model_servers, pod))
    assert first[0] > 0, "an hour of traffic since the pod started"
    assert _requests(_scrape(model_servers, pod)) == first, "a frozen clock freezes the counters"
    previous = first
    for _ in range(5):
        clock.frozen = (clock.frozen or FROZEN) + timedelta(seconds=7)
        now = _requests(_scrape(model_servers, pod))
        assert now[0] > previous[0] and now[1] >= previous[1]
        assert all(b >= a for (_, a), (_, b) in zip(previous[2], now[2], strict=True))
        assert [c for _, c in now[2]] == sorted(c for _, c in now[2]), "cumulative buckets"
        previous = now
    families = _scrape(model_servers, pod)
    assert families["vllm:num_requests_running"].samples[0].labels == {"model_name": "llama"}
    assert model_servers.handle(pod, "9400", "metrics")[0] == 503, "another port: not vLLM"
    assert model_servers.handle(pod, "8000", "health")[0] == 404


def _window_stats(model_servers: ModelServers, clock: Clock, pod: dict[str, Any]) -> Any:
    before = _requests(_scrape(model_servers, pod))
    clock.frozen = (clock.frozen or FROZEN) + timedelta(minutes=10)
    after = _requests(_scrape(model_servers, pod))
    buckets = tuple((le, b - a) for (le, a), (_, b) in zip(before[2], after[2], strict=True))
    return request_stats([PodTraffic(600.0, after[0] - before[0], after[1] - before[1], buckets)])


def test_the_bad_template_fails_more_and_is_slower(
    servers: tuple[ModelServers, Clock, Store],
) -> None:
    model_servers, clock, _ = servers
    started = FROZEN - timedelta(minutes=1)
    good = _pod(
        "llm-good1-aaaaa", {"app": "llm", MODEL_LABEL: "x", "pod-template-hash": "good1"}, started
    )
    bad = _pod(
        "llm-bad1-bbbbb", {"app": "llm", MODEL_LABEL: "x", "pod-template-hash": "bad1"}, started
    )
    healthy, broken = (_window_stats(model_servers, clock, pod) for pod in (good, bad))
    assert healthy.error_rate < 0.005
    assert broken.error_rate == pytest.approx(0.08, abs=0.005)
    assert broken.p99_seconds > 2.5 * healthy.p99_seconds
    assert broken.p50_seconds > 2.5 * healthy.p50_seconds


def test_an_inference_service_revision_gets_its_share_of_the_split(
    servers: tuple[ModelServers, Clock, Store],
) -> None:
    model_servers, clock, store = servers
    store.create(
        INFERENCE_SERVICE,
        {
            "metadata": {"name": "svc", "namespace": "team-a"},
            "spec": {"predictor": {"canaryTrafficPercent": 0}},
            "status": {
                "components": {
                    "predictor": {
                        "traffic": [
                            {"revisionName": "svc-predictor-00002", "percent": 0},
                            {"revisionName": "svc-predictor-00001", "percent": 100, "tag": "prev"},
                        ]
                    }
                }
            },
        },
    )
    labels = {
        ISVC_LABEL: "svc",
        "serving.knative.dev/revision": "svc-predictor-00001",
        "serving.knative.dev/configuration": "svc-predictor",
        "serving.knative.dev/service": "svc-predictor",
    }
    prev = _pod("svc-predictor-00001-deployment-1-a", labels, FROZEN)
    latest = _pod(
        "svc-predictor-00002-deployment-2-b",
        {**labels, "serving.knative.dev/revision": "svc-predictor-00002"},
        FROZEN,
    )
    clock.frozen = FROZEN + timedelta(minutes=5)
    assert model_servers.handle(prev, "8000", "metrics")[0] == 503, "KServe listens on 8080"
    routed = _families(model_servers.handle(prev, "9091", "metrics")[2].decode())
    pinned_away = _families(model_servers.handle(latest, "9091", "metrics")[2].decode())
    count = routed["revision_app_request_count"].samples
    assert {s.labels["revision_name"] for s in count} == {"svc-predictor-00001"}
    assert {s.labels["response_code_class"] for s in count} == {"2xx", "5xx"}
    assert sum(s.value for s in count) > 0
    assert sum(s.value for s in pinned_away["revision_app_request_count"].samples) == 0
    vllm = _families(model_servers.handle(prev, "8080", "metrics")[2].decode())
    assert "http_requests" not in vllm, "KServe's server: queue-proxy counts the answers"
    assert vllm["vllm:e2e_request_latency_seconds"].samples


# -- a backend on a sandbox running in real time ------------------------------------------------
@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxThread]:
    path = tmp_path_factory.mktemp("endpoints-sandbox") / "kubeconfig"
    running = SandboxThread(path, fleet="demo", seed=SEED, settle_seconds=0)
    try:
        yield running
    finally:
        running.close()


class Backend:
    """A backend served on the sandbox's loop, with an admin's headers."""

    def __init__(self, sandbox: SandboxThread, workdir: Path, **settings: Any) -> None:
        self.sandbox = sandbox
        self.database_url = f"sqlite:///{workdir / 'backend.db'}"
        values: dict[str, Any] = {
            "kubeconfig": sandbox.kubeconfig_path,
            "port": 0,
            "database_url": self.database_url,
            "scrape_interval": 1.0,
            "inference_interval": 1.0,
            "history_length": 12,
            "inference_window": 6.0,
            "model_debounce": 0.05,
            **settings,
        }
        self.running = RunningBackend(Settings(**values))
        self.url = self._on_loop(self.running.__aenter__())
        self.headers = admin_headers(self.database_url)

    def _on_loop(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.sandbox.loop).result(timeout=60)

    def stop(self) -> None:
        self._on_loop(self.running.__aexit__(None, None, None))

    def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        answer = httpx.get(
            self.url + path, params=params, headers=headers or self.headers, timeout=10.0
        )
        answer.raise_for_status()
        return answer.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        answer = httpx.post(self.url + path, json=body, headers=self.headers, timeout=30.0)
        assert answer.status_code < 300, answer.text
        return answer.json()

    def endpoints(self, rounds: int, timeout: float = 40.0) -> list[dict[str, Any]]:
        """The endpoints, once every endpoint with pods has ``rounds`` measured rounds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                items = self.get("/api/v1/endpoints", limit=1000)["items"]
            except httpx.HTTPStatusError:  # 503 until the first model
                items = []
            if items and len(items[0]["history"]["request_rate"]) >= rounds:
                return items
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {rounds} rounds of endpoint health")
            time.sleep(0.3)


@pytest.fixture
def scraping(sandbox: SandboxThread, tmp_path: Path) -> Iterator[Backend]:
    backend = Backend(sandbox, tmp_path, telemetry_mode="proxy")
    yield backend
    backend.stop()


def test_scraped_endpoints_worst_first_with_the_bad_release_on_top(scraping: Backend) -> None:
    endpoints = scraping.endpoints(rounds=6)
    assert len(endpoints) > 20, "every model Deployment and InferenceService"
    worst = endpoints[0]
    assert (worst["kind"], worst["namespace"], worst["name"]) == BAD
    healthy = [e for e in endpoints[1:] if e["request_rate"] and e["kind"] == "Deployment"]
    assert healthy and all(e["request_rate"] > 0 and e["p99_seconds"] for e in healthy)
    assert worst["error_rate"] > 0.04
    assert all(e["error_rate"] < 0.02 for e in healthy)
    assert worst["p99_seconds"] > 2 * statistics.median(e["p99_seconds"] for e in healthy)
    (current,) = worst["revisions"]
    assert current["current"] and current["request_rate"] == pytest.approx(worst["request_rate"])
    assert len(current["history"]["p99_seconds"]) == len(worst["history"]["p99_seconds"])

    detail = scraping.get("/api/v1/workloads/team-g/Deployment/llama-8b-prod")
    assert detail["endpoint"]["name"] == "llama-8b-prod"
    assert detail["endpoint"]["revisions"][0]["revision"] == detail["revision"]
    overview = scraping.get("/api/v1/overview")
    assert overview["worst_endpoints"][0]["name"] == "llama-8b-prod"
    assert overview["worst_endpoints"][0]["revisions"] == []
    cpu = scraping.get("/api/v1/workloads", kind="Deployment", q="gateway", limit=1)["items"][0]
    assert (
        scraping.get(f"/api/v1/workloads/{cpu['namespace']}/Deployment/{cpu['name']}")["endpoint"]
        is None
    ), "a Deployment that serves no model is no endpoint"


def test_the_bad_release_raises_its_error_and_latency_alerts(
    sandbox: SandboxThread, tmp_path: Path
) -> None:
    """The endpoint rules over scraped traffic: the bad release's 5xx share is above 1 %, and
    once an operator gives it a p99 objective (an annotation, written here as kubectl would)
    its p99 is over it; healthy endpoints without an objective raise no latency alert."""
    api = kubernetes.client.AppsV1Api(
        kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig_path))
    )
    api.patch_namespaced_deployment(
        BAD[2], BAD[1], {"metadata": {"annotations": {SLO_P99_ANNOTATION: "1"}}}
    )
    instant = {"for_seconds": 0}
    rules = {"endpoint_errors": instant, "endpoint_slow": instant}
    backend = Backend(
        sandbox, tmp_path, telemetry_mode="proxy", alert_rules=rules, alert_interval=0.5
    )
    try:
        backend.endpoints(rounds=3)
        deadline = time.monotonic() + 30
        while True:
            alerts = backend.get("/api/v1/alerts")["items"]
            found = {(a["rule"], a["subject"]["name"]) for a in alerts}
            wanted = {
                ("endpoint_errors", "team-g/llama-8b-prod"),
                ("endpoint_slow", "team-g/llama-8b-prod"),
            }
            if wanted <= found:
                break
            assert time.monotonic() < deadline, f"no endpoint alerts for the bad release: {found}"
            time.sleep(0.3)
        assert {name for rule, name in found if rule == "endpoint_slow"} == {"team-g/llama-8b-prod"}
        slow = next(a for a in alerts if a["rule"] == "endpoint_slow")
        assert slow["subject"]["workload_kind"] == "Deployment" and slow["value"] > 1.0
    finally:
        backend.stop()
        api.patch_namespaced_deployment(
            BAD[2], BAD[1], {"metadata": {"annotations": {SLO_P99_ANNOTATION: None}}}
        )


def test_the_canary_is_split_per_revision(scraping: Backend) -> None:
    endpoints = scraping.endpoints(rounds=3)
    canaries = [e for e in endpoints if any(r["traffic_percent"] == 10 for r in e["revisions"])]
    (canary,) = canaries
    latest, prev = canary["revisions"]
    assert latest["current"] and latest["traffic_percent"] == 10 and prev["traffic_percent"] == 90
    assert prev["request_rate"] > 5 * latest["request_rate"] > 0
    assert latest["p99_seconds"] > 2 * prev["p99_seconds"], "the canary is the bad revision"


def test_a_tenant_scoped_reader_sees_only_its_endpoints(scraping: Backend) -> None:
    scraping.endpoints(rounds=1)
    token = issue_token(scraping.database_url, "carol", "viewer", frozenset({"team-b"}))
    page = scraping.get("/api/v1/endpoints", headers=bearer(token), limit=1000)
    assert page["items"] and {e["tenant"] for e in page["items"]} == {"team-b"}
    overview = scraping.get("/api/v1/overview", headers=bearer(token))
    assert {e["tenant"] for e in overview["worst_endpoints"]} <= {"team-b"}
    everything = scraping.get("/api/v1/endpoints", tenant="team-b", limit=1000)
    assert page["total"] == everything["total"]


def test_the_source_follows_the_telemetry_mode(sandbox: SandboxThread) -> None:
    def source(**settings: Any) -> object:
        return Service(Settings(kubeconfig=sandbox.kubeconfig_path, **settings)).inference

    assert isinstance(source(), ScrapedInference)
    assert isinstance(source(telemetry_mode="direct"), ScrapedInference)
    prometheus = source(telemetry_mode="prometheus", inference_window=30)
    assert isinstance(prometheus, PrometheusInference) and prometheus.window == 30
    assert source(telemetry_mode="urls") is None
    assert source(inference_metrics=False) is None


async def test_the_model_servers_are_looked_for_in_a_thread() -> None:
    """Finding the model servers looks at every pod of the fleet: not on the event loop."""
    asked_in: list[threading.Thread] = []

    def pods() -> list[JsonObject]:
        asked_in.append(threading.current_thread())
        return []

    source = ScrapedInference(pods, direct_urls)
    try:
        await source.collect_once()
    finally:
        await source.stop()
    assert asked_in and threading.main_thread() not in asked_in
    assert source.snapshot().sources == 0


# -- the console's list of endpoints --------------------------------------------------------------
@pytest.fixture
def bad_release_slo(sandbox: SandboxThread) -> Iterator[None]:
    """The bad release's p99 objective: 1 s, which its p99 is far over."""
    api = kubernetes.client.AppsV1Api(
        kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig_path))
    )

    def annotate(value: str | None) -> None:
        body = {"metadata": {"annotations": {SLO_P99_ANNOTATION: value}}}
        api.patch_namespaced_deployment(BAD[2], BAD[1], body)

    annotate("1")
    yield
    annotate(None)


async def test_the_console_lists_the_endpoints_the_worst_first(
    bad_release_slo: None, scraping: Backend
) -> None:
    endpoints = scraping.endpoints(rounds=3)
    assert endpoints[0]["slo_p99_seconds"] == 1.0
    cells = {column.header: column.get for column in EndpointsScreen().columns()}
    token = issue_token(scraping.database_url, "carol", "admin")
    settings = ConsoleSettings(backend=scraping.url, operator="carol", token=token)
    app = OpsConsoleApp(settings, backend_url=scraping.url)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("8")
        await wait_for(pilot, lambda: isinstance(app.screen, EndpointsScreen), "the list")
        screen = app.screen
        assert isinstance(screen, EndpointsScreen)
        await wait_for(pilot, lambda: screen.table.item_at(0) is not None, "the rows")
        assert screen.table.total == len(endpoints)
        worst = screen.table.item_at(0)
        assert worst is not None
        assert (worst.kind.value, worst.namespace, worst.name) == BAD
        text = screen_text(app)
        assert f"Endpoints  {len(endpoints)} rows" in text
        assert "team-g/llama-8b-prod" in text.splitlines()[2]  # under the title and the header
        assert "%" in text.splitlines()[2], "its error rate"
        slo = cells["SLO"](worst)
        assert slo.plain == "1.00s" and slo.spans[-1].style == "bold red", "the p99 is over it"
        healthy = next(EndpointHealth.model_validate(e) for e in endpoints[1:])
        assert cells["SLO"](healthy).plain == "-"
        canary = [e for e in endpoints if any(r["traffic_percent"] == 10 for r in e["revisions"])]
        assert cells["SPLIT"](EndpointHealth.model_validate(canary[0])).plain == "10%"

        # A tenant's endpoints, through the filter; Enter opens the worst one's detail.
        await pilot.press("slash", *"team-a", "enter")
        await wait_for(pilot, lambda: screen.table.query_text == "team-a", "the filter")
        await wait_for(pilot, lambda: (screen.table.total or 0) > 0, "team-a's endpoints")
        first = screen.table.item_at(0)
        assert first is not None and first.tenant == "team-a"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadDetailScreen), "the detail")
        detail = app.screen
        assert isinstance(detail, WorkloadDetailScreen)
        assert (detail.workload_namespace, detail.workload_name) == (first.namespace, first.name)


# -- through a real Prometheus -------------------------------------------------------------------
def model_server_targets(sandbox: SandboxThread) -> list[tuple[str, str, int]]:
    answer = httpx.get(
        f"{sandbox.url}/api/v1/pods",
        headers=bearer(sandbox.sandbox.kubeconfig()["users"][0]["user"]["token"]),
        verify=tls_context(),
    )
    answer.raise_for_status()
    return [
        (pod["metadata"]["namespace"], pod["metadata"]["name"], port)
        for pod in model_server_pods(answer.json()["items"])
        for port in model_server_ports(pod)
    ]


@pytest.fixture
def prom(sandbox: SandboxThread) -> Iterator[PromServer]:
    token = sandbox.sandbox.kubeconfig()["users"][0]["user"]["token"]
    targets = model_server_targets(sandbox)
    config = pod_scrape_config(sandbox.url, token, targets, "model-servers", sandbox_ca())
    with running_prometheus([config]) as server:
        server.wait_for("up == 1", len(targets))
        yield server


def test_prometheus_mode_reads_the_same_health(
    prom: PromServer, sandbox: SandboxThread, tmp_path: Path
) -> None:
    time.sleep(4.0)  # a few scrapes inside the window
    backend = Backend(
        sandbox,
        tmp_path,
        telemetry_mode="prometheus",
        prometheus_url=prom.url,
        inference_window=4.0,
    )
    try:
        endpoints = backend.endpoints(rounds=1)
    finally:
        backend.stop()
    worst = endpoints[0]
    assert (worst["namespace"], worst["name"]) == BAD[1:]
    assert len(worst["history"]["request_rate"]) >= 2, "the rounds before the start back-filled"
    assert worst["error_rate"] == pytest.approx(0.08, abs=0.03)
    healthy = [e for e in endpoints[1:] if e["request_rate"] and e["kind"] == "Deployment"]
    assert all(e["error_rate"] < 0.02 for e in healthy)
    assert worst["p99_seconds"] > 2 * statistics.median(e["p99_seconds"] for e in healthy)
    by_name = {(e["namespace"], e["name"]): e for e in endpoints}
    (canary,) = [e for e in endpoints if any(r["traffic_percent"] == 10 for r in e["revisions"])]
    latest, prev = by_name[(canary["namespace"], canary["name"])]["revisions"]
    assert prev["request_rate"] > 5 * latest["request_rate"] > 0


async def scraped_for(prom: PromServer, seconds: int) -> None:
    """Until Prometheus holds ``seconds`` scrapes of every model server."""
    while min(float(s["value"][1]) for s in prom.query("count_over_time(up[60s])")) < seconds:
        await asyncio.sleep(0.5)


WINDOW = 3.0  # seconds of traffic in a round read through Prometheus, which scrapes every 1 s


async def first_round(prom: PromServer, history_length: int, **options: Any) -> InferenceSnapshot:
    """What the Prometheus source publishes after its first round (rounds 1 s apart)."""
    api = PrometheusCollector(prom.url)
    inference = PrometheusInference(
        api.query,
        api.query_range,
        prom.url,
        window=WINDOW,
        interval=1.0,
        history_length=history_length,
        **options,
    )
    try:
        await inference.collect_once()
    finally:
        await api.stop()
    return inference.snapshot()


async def test_the_endpoint_history_before_the_start_comes_from_query_range(
    prom: PromServer,
) -> None:
    history_length = 8
    await scraped_for(prom, history_length + 4)
    snapshot = await first_round(prom, history_length)
    assert not snapshot.failures
    *past, live = snapshot.rounds
    assert len(past) == history_length - 1, "one round read, yet a full history"
    assert [b.at - a.at for a, b in itertools.pairwise(past)] == [1.0] * (len(past) - 1)
    assert live.at - past[-1].at >= 1.0
    # Each round before the start is what the round's queries answer at its time. The newest
    # two are left out: a scrape begun before their time may land in Prometheus after.
    api = PrometheusCollector(prom.url)
    try:
        for round_ in past[:-2]:
            vectors = [await api.query(q, round_.at) for q in traffic_queries(WINDOW)]
            assert round_.pods == pod_traffic(vectors, WINDOW)
    finally:
        await api.stop()
    bad = [t for (ns, pod), t in past[0].pods.items() if (ns, pod.rsplit("-", 2)[0]) == BAD[1:]]
    assert bad and (request_stats(bad).request_rate or 0) > 0


async def test_the_history_read_on_start_is_bounded_by_its_points(prom: PromServer) -> None:
    await scraped_for(prom, 10)
    series = sum(len(prom.query(q)) for q in traffic_queries(WINDOW))
    room = 2 * series + series // 2  # for two rounds, not three
    snapshot = await first_round(prom, 8, history_points=room)
    assert len(snapshot.rounds) == 1 + 2


async def test_an_endpoint_history_prometheus_refuses_leaves_the_live_round(
    prom: PromServer, caplog: pytest.LogCaptureFixture
) -> None:
    await scraped_for(prom, 4)
    # More steps than Prometheus answers (11,000 a series): the history is refused.
    snapshot = await first_round(prom, 20_000, history_points=10**9)
    (live,) = snapshot.rounds
    assert live.pods and not snapshot.failures
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("endpoint history not read from Prometheus: HTTP 400: bad_data:")
    assert "11,000 points" in warning


# -- the rollback fixes it (last: it changes the cluster) ----------------------------------------
def test_rolling_back_the_bad_release_brings_it_back_to_normal(scraping: Backend) -> None:
    bad = scraping.endpoints(rounds=3)[0]
    assert (bad["namespace"], bad["name"]) == BAD[1:]
    bad_revision = bad["revisions"][0]["revision"]
    base = "/api/v1/workloads/team-g/deployment/llama-8b-prod/rollback"
    plan = scraping.post(f"{base}/plan", {})
    scraping.post(f"{base}/apply", {"fingerprint": plan["fingerprint"], "reason": "bad p99"})

    path = "/api/v1/workloads/team-g/Deployment/llama-8b-prod"
    deadline = time.monotonic() + 40
    while True:
        endpoint = scraping.get(path)["endpoint"]
        serving = [r for r in endpoint["revisions"] if r["request_rate"]]
        if serving and all(r["revision"] != bad_revision for r in serving):
            break  # the window holds only the rolled-back-to revision's requests
        assert time.monotonic() < deadline, f"the bad revision still serves: {serving}"
        time.sleep(0.3)
    assert endpoint["error_rate"] < 0.02
    assert endpoint["p99_seconds"] < bad["p99_seconds"] / 2
    (gone,) = [r for r in endpoint["revisions"] if r["revision"] == bad_revision]
    past = [v for v in gone["history"]["p99_seconds"] if v is not None]
    assert past and max(past) > 2 * endpoint["p99_seconds"], "the replaced revision's past stays"


def test_rolling_back_the_slow_canary_pins_the_traffic_to_the_previous_revision(
    scraping: Backend,
) -> None:
    endpoints = scraping.endpoints(rounds=3)
    (canary,) = [e for e in endpoints if any(r["traffic_percent"] == 10 for r in e["revisions"])]
    slow = canary["p99_seconds"]
    base = f"/api/v1/workloads/{canary['namespace']}/isvc/{canary['name']}/rollback"
    plan = scraping.post(f"{base}/plan", {})
    scraping.post(f"{base}/apply", {"fingerprint": plan["fingerprint"], "reason": "slow canary"})
    path = f"/api/v1/workloads/{canary['namespace']}/InferenceService/{canary['name']}"
    deadline = time.monotonic() + 40
    while True:
        endpoint = scraping.get(path)["endpoint"]
        latest, prev = endpoint["revisions"]
        if latest["request_rate"] == 0 and latest["history"]["request_rate"][-6:] == [0.0] * 6:
            break
        assert time.monotonic() < deadline, f"the canary still gets traffic: {latest}"
        time.sleep(0.3)
    assert (latest["traffic_percent"], prev["traffic_percent"]) == (0, 100)
    assert latest["p99_seconds"] is None, "no requests: no latency"
    assert endpoint["p99_seconds"] == pytest.approx(prev["p99_seconds"], rel=0.05)
    assert endpoint["p99_seconds"] < slow / 1.5


def _failing_metrics(sandbox: SandboxThread, failing: Callable[[JsonObject], bool]) -> Handler:
    """Make the model server pods ``failing`` picks answer 500 to their metrics scrapes; the
    proxy handler that was there, to put back."""
    store = sandbox.sandbox.store
    handler = store.proxy_handler
    assert handler is not None

    def proxy(pod: JsonObject, port: str, path: str) -> tuple[int, str, bytes]:
        if failing(pod):
            return 500, "text/plain; charset=utf-8", b"model server crashed"
        return handler(pod, port, path)

    sandbox.call(setattr, store, "proxy_handler", proxy)
    return handler


def _inference_freshness(
    backend: Backend, done: Callable[[dict[str, Any]], bool], timeout: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not done(freshness := backend.get("/api/v1/info")["freshness"]):
        assert time.monotonic() < deadline, f"not as expected: {freshness}"
        time.sleep(0.3)
    return freshness


def test_model_server_scrape_failures_are_served_with_the_true_age(
    sandbox: SandboxThread, scraping: Backend
) -> None:
    scraping.endpoints(rounds=2)
    pods = sandbox.call(lambda: model_server_pods(sandbox.sandbox.store.list(POD)))
    broken = {f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pods[:3]}

    def picked(pod: JsonObject) -> bool:
        return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}" in broken

    handler = _failing_metrics(sandbox, picked)
    try:
        some = _inference_freshness(scraping, lambda f: f["inference_errors"] == len(broken))
        assert some["inference_sources"] == len(pods)
        assert {f["source"] for f in some["inference_failures"]} == broken
        assert {f["error"] for f in some["inference_failures"]} == {
            "HTTP 500 Internal Server Error"
        }
        assert some["inference_age_seconds"] < 3, "the other pods were read"
        metrics = httpx.get(scraping.url + "/metrics", headers=scraping.headers).text
        assert f"opsconsole_inference_sources {float(len(pods))}" in metrics
        assert f"opsconsole_inference_errors {float(len(broken))}" in metrics
        assert "opsconsole_http_requests_in_flight 1.0" in metrics  # the served app counts

        sandbox.call(setattr, sandbox.sandbox.store, "proxy_handler", handler)
        _failing_metrics(sandbox, lambda pod: bool(model_server_ports(pod)))
        every = _inference_freshness(scraping, lambda f: f["inference_age_seconds"] > 4)
        assert every["inference_errors"] == every["inference_sources"] == len(pods)
        assert len(every["inference_failures"]) == min(20, len(pods))
        worst = scraping.get("/api/v1/overview")["worst_endpoints"][0]
        assert worst["request_rate"] > 0, "rounds that read nothing are no rounds of no traffic"
    finally:
        sandbox.call(setattr, sandbox.sandbox.store, "proxy_handler", handler)
    healed = _inference_freshness(scraping, lambda f: f["inference_errors"] == 0)
    assert healed["inference_age_seconds"] < 3 and healed["inference_failures"] == []
