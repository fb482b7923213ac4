"""The backend's runtime: cluster cache + telemetry + fleet model, kept current.

``Backend`` composes the parts and keeps ``model`` (an immutable FleetModel) current: a background
task updates it in a worker thread when the cache or the telemetry changed, at most once per
``model_debounce`` seconds, so that every read request is answered from precomputed data. An
update recomputes only what the changed objects (the cache's ``changes_since``) and the new
telemetry touch; the first model, and any after a kind was listed again, is built whole. There
is no model until one was built from every kind's first list: before that, an empty fleet would
read as a healthy one. The collectors read their pages in worker processes
(``backend.telemetry.pages``) and the cyclic garbage collector is kept off the fleet's objects
(``backend.garbage``), so that the event loop has little to do but answer. It is what
``backend.api`` serves (through its protocols); ``backend.main`` assembles and serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from backend.alerts.monitor import AlertMonitor, monitor_from_settings
from backend.audit.log import AuditLog
from backend.audit.store import AuditStore
from backend.changes.head import ConfigMapHead
from backend.changes.inference import InferenceServicePromote, InferenceServiceRollback
from backend.changes.kube import ClusterClient
from backend.changes.path import ChangePath
from backend.changes.quota import QuotaContext, quota_kinds
from backend.changes.rollout import DeploymentUndo
from backend.cluster.cache import LIVE, PENDING, STALE, CacheOptions, ClusterCache, KindHealth
from backend.cluster.kubeconfig import ClusterAccess, load_cluster_access
from backend.cost.answers import prerender_cost
from backend.cost.basis import CostBasis
from backend.db.engine import Database, redact
from backend.db.migrate import upgrade
from backend.db.quota_usage import QuotaUsageHistory, QuotaUsageStore, UsageSample
from backend.fleet.inputs import TelemetryLike
from backend.fleet.model import FleetModel, build_fleet_model, update_fleet_model
from backend.fleet.nodes import GpuRules
from backend.fleet.readiness import sync_progress
from backend.fleet.stepping import step_towards
from backend.garbage import FleetGarbage
from backend.identity.authenticate import TokenAuthenticator
from backend.identity.tokens import TokenStore
from backend.reads_first import RequestsInFlight
from backend.schemas import BackendInfo, DataFreshness, KindFreshness, TelemetryFailure
from backend.settings import Settings
from backend.telemetry.base import RoundCollector, TelemetrySnapshot, TelemetryUnavailable
from backend.telemetry.discovery import ExporterDiscovery, tls_files, url_targets
from backend.telemetry.inference import InferenceCollector, InferenceSnapshot
from backend.telemetry.inference_scrape import ScrapedInference, direct_urls, proxy_urls
from backend.telemetry.pages import TlsFiles
from backend.telemetry.scrape import ScrapeTarget, TelemetryCollector
from backend.version import VERSION

log = logging.getLogger("opsconsole.serve")
USAGE_TELEMETRY_WAIT = 60.0  # seconds the first usage recording waits for telemetry
# GPUs of a telemetry round brought into the model per update: a round that changes all 8,000
# GPUs of a large fleet then takes 8 short updates (each pays the model's fixed costs, so more
# and shorter ones cost more CPU), and a cluster change never waits long.
TELEMETRY_STEP_GPUS = 1000
# How long the event loop waits for the GIL while a model update, an alert evaluation or a cost
# answer runs in a worker thread: it gives the GIL up at every socket call (a request read, an
# answer written) and gets it back only when the thread is made to yield, after CPython's
# default 5 ms, so every request in flight then waits 5 ms per socket call.
THREAD_SWITCH_INTERVAL = 0.0005
# How long the answer to a change waits at most for a model made from the objects it wrote.
CATCH_UP_SECONDS = 5.0


@dataclass
class ModelStats:
    """How the fleet model's rebuilds went (for ``/metrics``)."""

    builds: int = 0
    failures: int = 0
    last_duration: float = 0.0
    last_built_at: float | None = None
    last_was_full: bool = True  # built whole, rather than updated with what changed


class Backend:
    """Everything ``opsconsole serve`` runs, minus the HTTP server."""

    def __init__(
        self,
        settings: Settings,
        access: ClusterAccess | None = None,
        cache_options: CacheOptions | None = None,
        *,
        cache: ClusterCache | None = None,
        garbage: FleetGarbage | None = None,
        alert_clock: Callable[[], float] = time.time,
    ) -> None:
        """Resolve cluster access now (``ClusterAccessError`` if there is none); start nothing.
        A ``cache`` (of ``access``) and a paused ``garbage`` may have been started already:
        ``opsconsole serve`` starts the lists before it imports this module. The alert rules'
        durations run on ``alert_clock`` (a sandbox's frozen clock, in its pictures)."""
        self.settings = settings
        self.access = access or load_cluster_access(settings.kubeconfig, settings.context)
        self.cache = cache or ClusterCache(self.access, options=cache_options)
        self.telemetry: RoundCollector = self._make_telemetry()
        self.inference: InferenceCollector | None = self._make_inference()
        self.database: Database | None = None
        self.model_stats = ModelStats()
        self._telemetry_snapshot = self.telemetry.snapshot()
        self.rules = GpuRules(
            idle_utilization_percent=settings.idle_utilization_percent,
            hot_temperature_c=settings.hot_temperature_c,
        )
        self._model: FleetModel | None = None  # built from every kind's first list, then kept
        self._model_version = -1  # the cache version the model was built from
        self._model_built = asyncio.Condition()  # notified with each new model
        self._model_telemetry: TelemetryLike | None = None  # the telemetry it was built from
        self._rounds_pending = False  # the newest telemetry or traffic round is not all in yet
        self._rounds_skipped = False  # the last update left the rounds' next step out
        self.cluster = ClusterClient(self.access.api_client)
        self.audit: AuditLog | None = None  # from start(), when the database is there
        self.changes: ChangePath | None = None
        self.identities: TokenAuthenticator | None = None  # from start(), like the audit log
        self.quota_usage: QuotaUsageHistory | None = None
        self.cost_basis = CostBasis.from_settings(settings)
        self.alerts: AlertMonitor | None = None  # from start(): its history is in the database
        self.alert_clock = alert_clock
        self._usage_task: asyncio.Task[None] | None = None
        self._model_task: asyncio.Task[None] | None = None
        self._recovery_task: asyncio.Task[None] | None = None
        self._collectors_task: asyncio.Task[None] | None = None
        self.garbage = garbage or FleetGarbage(freeze=settings.gc_freeze)
        # Counted by the HTTP app; a model update gives way to them.
        self.requests = RequestsInFlight(budget=settings.model_pause_budget)
        self._started = False

    # -- telemetry -----------------------------------------------------------------------------
    def _make_telemetry(self) -> RoundCollector:
        s = self.settings
        # The NVML and Prometheus collectors are imported here: of no use to the other modes,
        # and the start (while the cluster is listed) pays for every import.
        if s.telemetry_mode == "nvml":
            from backend.telemetry.nvml import NvmlCollector

            return NvmlCollector(interval=s.scrape_interval, history_length=s.history_length)
        if s.telemetry_mode == "prometheus":
            from backend.telemetry.prometheus_api import PrometheusCollector

            return PrometheusCollector(
                s.prometheus_url,
                namespaces=s.dcgm_namespaces,
                interval=s.scrape_interval,
                history_length=s.history_length,
                token=s.prometheus_token,
                token_file=s.prometheus_token_file,
                verify=str(s.prometheus_ca_file) if s.prometheus_ca_file else True,
            )
        discovery = ExporterDiscovery(
            pods=self._pods,
            selector=s.dcgm_selector,
            port=s.dcgm_port,
            namespaces=tuple(s.dcgm_namespaces),
        )
        access = self.access
        targets: Callable[[], list[ScrapeTarget]] = {
            "proxy": lambda: discovery.proxy_targets(access.server, access.api_client),
            "direct": discovery.direct_targets,
            "urls": lambda: url_targets(s.dcgm_urls),
            "off": list,
        }[s.telemetry_mode]
        return TelemetryCollector(
            targets,
            interval=s.scrape_interval,
            history_length=s.history_length,
            verify=self._pod_proxy_tls(),
            in_worker=s.scrape_in_worker,
        )

    def _make_inference(self) -> InferenceCollector | None:
        """Model server traffic from the same source as the GPU telemetry (none for the modes
        that do not reach pods: fixed exporter URLs, NVML, off)."""
        s, access = self.settings, self.access
        if not s.inference_metrics:
            return None
        if s.telemetry_mode == "prometheus":
            from backend.telemetry.inference_prometheus import PrometheusInference
            from backend.telemetry.prometheus_api import PrometheusCollector

            assert isinstance(self.telemetry, PrometheusCollector)
            return PrometheusInference(
                self.telemetry.query,
                self.telemetry.query_range,
                s.prometheus_url,
                window=s.inference_window,
                interval=s.inference_interval,
                history_length=s.history_length,
            )
        pods = self._pods
        if s.telemetry_mode == "proxy":
            return ScrapedInference(
                pods,
                lambda pod: proxy_urls(pod, access.server),
                api_client=access.api_client,
                verify=self._pod_proxy_tls(),
                interval=s.inference_interval,
                history_length=s.history_length,
                window=s.inference_window,
                in_worker=s.scrape_in_worker,
            )
        if s.telemetry_mode == "direct":
            return ScrapedInference(
                pods,
                direct_urls,
                interval=s.inference_interval,
                history_length=s.history_length,
                window=s.inference_window,
                in_worker=s.scrape_in_worker,
            )
        return None

    def _pod_proxy_tls(self) -> bool | TlsFiles:
        """The kubeconfig's TLS settings, for pages read through the API server's pod proxy."""
        if self.settings.telemetry_mode == "proxy" and self.access.server.startswith("https"):
            return tls_files(self.access.api_client)
        return True

    def _pods(self) -> list[Mapping[str, Any]]:
        """Every pod, as a list taken at once: the telemetry rounds look for their targets among
        them in a thread, while the event loop applies the watches' changes to the cache."""
        return list(self.cache.objects("pods").values())

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start watching (unless the cache was started already) and migrate the database;
        returns before the first sync. Scraping begins with the first model.

        The cluster lists start first: they are most of the first sync's time, and the
        database's migration and the rest of the start overlap them."""
        self.garbage.pause()  # until the first model (backend.garbage)
        try:
            await self.cache.start()
            await self._start_rest()
        except BaseException:
            await self.cache.stop()
            self.garbage.resume()
            raise

    async def _start_rest(self) -> None:
        """Everything but the cluster cache: the database and what needs it, telemetry, the
        model's loop."""
        await asyncio.to_thread(upgrade, self.settings.database_url)
        self.database = Database(self.settings.database_url)
        self.identities = TokenAuthenticator(
            TokenStore(self.database.engine), cache_seconds=self.settings.token_cache_seconds
        )
        await self._start_changes(self.database)
        self.quota_usage = QuotaUsageHistory(
            QuotaUsageStore(self.database.engine),
            self.settings.quota_usage_days,
            self.settings.quota_oversubscription,
            interval=self.settings.quota_usage_interval,
        )
        self._usage_task = asyncio.create_task(self._usage_loop(), name="quota-usage")
        self.alerts = monitor_from_settings(
            self.settings, self.database.engine, clock=self.alert_clock
        )
        await self.alerts.start(lambda: (self._model, self._telemetry_snapshot))
        self._collectors_task = asyncio.create_task(self._start_collectors(), name="collectors")
        self._model_task = asyncio.create_task(self._model_loop(), name="fleet-model")
        self._started = True
        log.info(
            "watching %s (context %s), database %s, telemetry %s",
            self.access.server,
            self.access.context or "-",
            redact(self.settings.database_url),
            self.settings.telemetry_mode,
        )

    async def _start_collectors(self) -> None:
        """Start the telemetry and model server rounds once the first model is built.

        Their sources are found among the cluster's pods: a round begun before the pods were
        listed found none, and the first one that read anything came an interval later (15 s by
        default). Begun after the first model, the rounds do not take the CPU from it either."""
        async with self._model_built:
            await self._model_built.wait_for(lambda: self._model is not None)
        if self.settings.telemetry_mode != "off":
            try:
                await self.telemetry.start()
            except TelemetryUnavailable as exc:  # e.g. nvml without a driver: serve the cluster
                log.error("telemetry disabled: %s", exc)
        if self.inference is not None:
            await self.inference.start()

    async def _start_changes(self, database: Database) -> None:
        """The audit log and the change path; unfinished changes are finished in the background
        (the API server may not answer yet)."""
        head = ConfigMapHead(self.cluster, self.settings.audit_namespace)
        self.audit = AuditLog(AuditStore(database.engine), head=head)
        await self.audit.start()
        self.changes = ChangePath(
            [
                DeploymentUndo(),
                InferenceServiceRollback(),
                InferenceServicePromote(),
                *quota_kinds(
                    QuotaContext(
                        self.settings.quota_oversubscription,
                        cached=self.cache.snapshot,
                        fleet=lambda: self._model,
                    )
                ),
            ],
            self.cluster,
            self.audit,
            cache_update=self.cache.upsert,
            settled=self.model_caught_up,
        )
        self._recovery_task = asyncio.create_task(self._recover(), name="change-recovery")

    async def _recover(self) -> None:
        assert self.changes is not None
        delay = 1.0
        while True:
            try:
                for result in await self.changes.recover():
                    log.warning(
                        "change %s, interrupted by a restart, finished: %s (%s)",
                        result.change_id,
                        result.outcome.value,
                        result.error or "",
                    )
                return
            except Exception as exc:  # the API server or the database is not there yet
                log.error("finishing interrupted changes failed, retrying: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def stop(self) -> None:
        for task in (self._recovery_task, self._usage_task, self._collectors_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._recovery_task = self._usage_task = self._collectors_task = None
        if self.alerts is not None:
            await self.alerts.stop()
        if self.audit is not None:
            await self.audit.stop()
        if self._model_task is not None:
            self._model_task.cancel()
            await asyncio.gather(self._model_task, return_exceptions=True)
            self._model_task = None
        if self._started and self.settings.telemetry_mode != "off":
            await self.telemetry.stop()
        if self.inference is not None:
            await self.inference.stop()
        await self.cache.stop()
        self.garbage.resume()
        if self.database is not None:
            self.database.dispose()
        self._started = False

    # -- the quota usage history ---------------------------------------------------------------
    async def _usage_loop(self) -> None:
        """Record every tenant's quota usage per GPU model, once per interval, from the model.

        The first recording waits for the first model, and for a model with telemetry (where a
        GPU without any would count as not busy), at most ``USAGE_TELEMETRY_WAIT`` seconds."""
        deadline = time.monotonic() + USAGE_TELEMETRY_WAIT
        while self._model is None or (
            not self._telemetry_snapshot.samples
            and self.settings.telemetry_mode != "off"
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(1.0)
        while True:
            try:
                await self.record_quota_usage()
            except Exception:  # the database may be away for a while: try again next time
                log.exception("recording the quota usage history failed")
            await asyncio.sleep(self.settings.quota_usage_interval)

    async def record_quota_usage(self) -> None:
        """One recording: allocated, busy (allocated and not idle) and pending GPUs; then the
        newest model's cost answers, which read the recording, are rendered again."""
        model, history = self._model, self.quota_usage
        if model is None or history is None:
            return
        samples = [
            UsageSample(r.tenant, r.gpu_model, r.used, max(0, r.allocated - r.idle), r.pending)
            for r in model.quota_rows()
        ]
        await history.record(samples)
        latest = self._model or model
        await asyncio.to_thread(prerender_cost, latest, history, self.cost_basis, latest)

    # -- the fleet model -----------------------------------------------------------------------
    @property
    def model(self) -> FleetModel | None:
        """The newest model; None until one was built from a synced cache."""
        return self._model

    def _inputs_version(self) -> tuple[int, int, int]:
        inference = self.inference.version if self.inference is not None else 0
        return self.cache.version, self.telemetry.version, inference

    async def _model_loop(self) -> None:
        """Bring the model up to date when its inputs change, off the event loop: at most once
        per ``model_debounce`` seconds, and after a whole rebuild (which a big fleet pays in
        seconds of CPU) never busier than half the time. The first model is begun the moment
        every kind is listed."""
        sys.setswitchinterval(THREAD_SWITCH_INTERVAL)
        debounce = self.settings.model_debounce
        built = (-1, -1, -1)
        last_end = 0.0
        while True:
            idle = self._inputs_version() == built and not self._rounds_pending
            if idle or not self.cache.synced:  # before the first full list there is no model
                # Woken by cache changes (the sync among them); polled for telemetry rounds.
                await self.cache.wait_changed(timeout=max(debounce, 0.25))
                continue
            stats = self.model_stats
            gap = max(debounce, stats.last_duration if stats.last_was_full else 0.0)
            wait = gap - (time.monotonic() - last_end)
            if wait > 0:
                await asyncio.sleep(wait)
            built = self._inputs_version()
            try:
                await self.rebuild_model()
            except Exception:  # never let the loop die: the model would freeze silently
                log.exception("fleet model rebuild failed")
            last_end = time.monotonic()

    def _build(
        self,
        cluster: dict,
        changed: set[tuple[str, tuple[str, str]]] | None,
        telemetry: TelemetrySnapshot,
        inference: InferenceSnapshot | None,
    ) -> tuple[FleetModel, TelemetryLike]:
        """The next model and the telemetry it was made from: the previous model updated with
        what changed and the next step of the newest round, or, when there is nothing to update
        from, a whole build with the newest round. The model servers' traffic is taken whole
        (its figures are computed once per round)."""
        previous, applied = self._model, self._model_telemetry
        if previous is not None and applied is not None and changed is not None:
            # A cluster change goes in alone, unless the last update already left the rounds
            # out: a steady stream of changes slows a round down but never stops it.
            step, traffic = applied, previous.inference
            if not changed or self._rounds_skipped:
                step = step_towards(applied, telemetry, TELEMETRY_STEP_GPUS)
                traffic = inference
            self._rounds_skipped = (step is applied and applied is not telemetry) or (
                traffic is not inference
            )
            try:
                model = update_fleet_model(previous, cluster, changed, step, inference=traffic)
                return model, step
            except Exception:  # a bug in an update must not stop the model: build it whole
                log.exception("updating the fleet model failed; building it whole")
        model = build_fleet_model(cluster, telemetry, rules=self.rules, inference=inference)
        return model, telemetry

    def _next_model(
        self,
        cluster: dict,
        changed: set[tuple[str, tuple[str, str]]] | None,
        telemetry: TelemetrySnapshot,
        inference: InferenceSnapshot | None,
    ) -> tuple[FleetModel, TelemetryLike]:
        """``_build``, with the cost answers that requests asked of the previous model rendered
        before it is published (those requests then only copy bytes)."""
        previous = self._model
        with self.requests.giving_way():
            model, applied = self._build(cluster, changed, telemetry, inference)
        if previous is not None:
            prerender_cost(model, self.quota_usage, self.cost_basis, previous)
        return model, applied

    async def model_caught_up(self, timeout: float = CATCH_UP_SECONDS) -> None:
        """Wait until the model is made from the cache as it is now, so that the next read
        shows what was just written into it; at most ``timeout`` seconds (a model that cannot
        be built must not hold the answer to a change that was made)."""
        version = self.cache.version
        with contextlib.suppress(TimeoutError), self.requests.set_aside():
            async with asyncio.timeout(timeout), self._model_built:
                await self._model_built.wait_for(lambda: self._model_version >= version)

    async def rebuild_model(self) -> None:
        """Bring the model up to the current inputs: from the previous model and what changed
        since it when there is one, whole otherwise; keep the old one if that fails."""
        if not self.cache.synced:  # a partial fleet would read as a healthy one
            return
        cluster = self.cache.snapshot()  # on the loop: a consistent copy
        version = self.cache.version
        changed = None if self._model is None else self.cache.changes_since(self._model_version)
        telemetry = self.telemetry.snapshot()
        inference = self.inference.snapshot() if self.inference is not None else None
        start = time.perf_counter()
        try:
            model, applied = await asyncio.to_thread(
                self._next_model, cluster, changed, telemetry, inference
            )
        except Exception:
            self.model_stats.failures += 1
            log.exception("building the fleet model failed; keeping the previous one")
            return
        self._model = model
        self.garbage.after_model()
        self._model_version = version
        async with self._model_built:
            self._model_built.notify_all()
        self._model_telemetry = applied
        self._rounds_pending = applied is not telemetry or model.inference is not inference
        self._telemetry_snapshot = telemetry
        if self.alerts is not None:
            self.alerts.wake()
        stats = self.model_stats
        stats.builds += 1
        stats.last_duration = time.perf_counter() - start
        stats.last_built_at = time.time()
        stats.last_was_full = changed is None

    # -- answers -------------------------------------------------------------------------------
    def freshness(self) -> DataFreshness:
        now = time.time()
        health = self.cache.kind_health(now)
        ages = [h.age for h in health.values() if h.state in (LIVE, STALE) and h.age is not None]
        tele = self._telemetry_snapshot
        kinds = [
            KindFreshness(kind=kind, state=h.state, age_seconds=h.age, error=h.error)
            for kind, h in health.items()
        ]
        inference = self.inference.snapshot() if self.inference is not None else None
        return DataFreshness(
            synced=self.cache.synced,
            cluster_age_seconds=max(ages) if ages else None,
            cluster_problem=cluster_problem(health),
            kinds=kinds,
            telemetry_age_seconds=_age(tele.completed_at, now),
            watch_restarts=self.cache.watch_restarts,
            telemetry_sources=tele.sources,
            telemetry_errors=tele.errors,
            telemetry_failures=_failures(tele.failures),
            sync=sync_progress(kinds) if self._model is None else None,
            inference_age_seconds=_age(inference.completed_at, now) if inference else None,
            inference_sources=inference.sources if inference else 0,
            inference_errors=len(inference.failures) if inference else 0,
            inference_failures=_failures(inference.failures) if inference else [],
        )

    def info(self) -> BackendInfo:
        return BackendInfo(
            version=VERSION,
            cluster_server=self.cache.server,
            cluster_context=self.cache.context,
            cluster_version=self.cache.cluster_version,
            telemetry_mode=self.settings.telemetry_mode,
            freshness=self.freshness(),
        )

    def not_ready_reason(self) -> str | None:
        """None once the fleet model was built from every kind's first list, the cluster data is
        current and every audit record is written; what is missing otherwise."""
        problem = cluster_problem(self.cache.kind_health())
        if problem is not None:
            return problem
        if self._model is None:
            return "building the fleet model from the first full list"
        if self.audit is not None and self.audit.backlog:
            return (
                f"audit log: {self.audit.backlog} outcome(s) kept in memory, not yet written "
                f"({self.audit.last_error})"
            )
        return None

    def object_counts(self) -> Mapping[str, int]:
        """Cached objects per kind."""
        return self.cache.counts()


def _age(at: float | None, now: float) -> float | None:
    return None if at is None else max(0.0, now - at)


def _failures(failures: Mapping[str, str], shown: int = 20) -> list[TelemetryFailure]:
    """The first ``shown`` failed sources, for ``/info`` (the count says how many in all)."""
    return [TelemetryFailure(source=k, error=v) for k, v in list(failures.items())[:shown]]


def _names(kinds: list[str], shown: int = 4) -> str:
    """``pods, nodes, events, jobs +9 more``."""
    more = f" +{len(kinds) - shown} more" if len(kinds) > shown else ""
    return ", ".join(kinds[:shown]) + more


def cluster_problem(health: Mapping[str, KindHealth]) -> str | None:
    """Why the cluster data is not current, in an operator's words; None when it is."""
    pending = [kind for kind, h in health.items() if h.state == PENDING]
    stale = [kind for kind, h in health.items() if h.state == STALE]
    if pending:
        errors = sorted({h.error for kind, h in health.items() if kind in pending and h.error})
        why = f": {'; '.join(errors)}" if errors else ""
        done = len(health) - len(pending)
        return (
            f"cluster not synced yet: {done} of {len(health)} kinds listed, "
            f"waiting for {_names(pending)}{why}"
        )
    if stale:
        age = max(health[kind].age or 0.0 for kind in stale)
        errors = sorted({h.error for kind, h in health.items() if kind in stale and h.error})
        why = f": {'; '.join(errors)}" if errors else ""
        return f"cluster data stale for {age:.0f} s ({_names(stale)}){why}"
    return None
