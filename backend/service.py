"""The backend service: cluster cache + telemetry + fleet model, served over HTTP.

``Backend`` composes the parts and keeps ``model`` (an immutable FleetModel) current: a background
task rebuilds it in a worker thread when the cache or the telemetry changed, at most once per
``model_debounce`` seconds, so that every read request is answered from precomputed data.
``RunningBackend`` serves a Backend with uvicorn on a pre-bound socket in the current event loop
(tests and the embedded console use it); ``main`` is ``opsconsole serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import signal
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from backend.cluster.cache import CacheOptions, ClusterCache
from backend.cluster.kubeconfig import ClusterAccess, ClusterAccessError, load_cluster_access
from backend.db.engine import Database, redact
from backend.db.migrate import upgrade
from backend.fleet.model import FleetModel, build_fleet_model
from backend.fleet.nodes import GpuRules
from backend.http_server import ServedApp, bind_socket
from backend.schemas import BackendInfo, DataFreshness
from backend.settings import Settings
from backend.telemetry.base import TelemetrySnapshot, TelemetryUnavailable
from backend.telemetry.nvml import NvmlCollector
from backend.telemetry.scrape import ScrapeTarget, TelemetryCollector

log = logging.getLogger("opsconsole.serve")


def _installed_version() -> str:
    try:
        return importlib.metadata.version("opsconsole")
    except importlib.metadata.PackageNotFoundError:  # running from a bare checkout
        return "0+unknown"


VERSION = _installed_version()

# dcgm-exporter's labels: the GPU operator's, and the upstream Helm chart's.
EXTRA_DCGM_SELECTOR = "app.kubernetes.io/name=dcgm-exporter"


@dataclass
class ModelStats:
    builds: int = 0
    failures: int = 0
    last_duration: float = 0.0
    last_built_at: float | None = None


def parse_selector(selector: str) -> dict[str, str]:
    """``a=b,c=d`` -> {"a": "b", "c": "d"} (equality selectors only, as exporters are found)."""
    pairs = (part.split("=", 1) for part in selector.split(",") if "=" in part)
    return {k.strip(): v.strip().removeprefix("=") for k, v in pairs}


def exporter_pods(pods: Iterator[dict], selectors: list[dict[str, str]]) -> Iterator[dict]:
    """Running pods whose labels match any of the selectors."""
    for pod in pods:
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        labels = pod["metadata"].get("labels") or {}
        if any(all(labels.get(k) == v for k, v in sel.items()) for sel in selectors):
            yield pod


def auth_headers(api_client: Any) -> dict[str, str]:
    """The API client's header credentials (refreshed tokens included), for the pod proxy."""
    cfg = api_client.configuration
    headers = {
        auth["key"]: auth["value"]
        for auth in cfg.auth_settings().values()
        if auth.get("in") == "header" and auth.get("value")
    }
    if cfg.username and cfg.password and "authorization" not in headers:
        headers["authorization"] = cfg.get_basic_auth_token()
    return headers


def tls_context(api_client: Any) -> ssl.SSLContext:
    """TLS settings for scraping through the API server, equal to the kubeconfig's: CA, client certificate, skip-verify."""
    cfg = api_client.configuration
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
    if not cfg.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    return ctx


class Backend:
    """Everything ``opsconsole serve`` runs, minus the HTTP server."""

    def __init__(
        self,
        settings: Settings,
        access: ClusterAccess | None = None,
        cache_options: CacheOptions | None = None,
    ) -> None:
        """Resolve cluster access now (``ClusterAccessError`` if there is none); start nothing."""
        self.settings = settings
        self.access = access or load_cluster_access(settings.kubeconfig, settings.context)
        self.cache = ClusterCache(self.access, options=cache_options)
        self.telemetry: TelemetryCollector | NvmlCollector = self._make_telemetry()
        self.database: Database | None = None
        self.model_stats = ModelStats()
        self._telemetry_snapshot = self.telemetry.snapshot()
        self.rules = GpuRules(
            idle_utilization_percent=settings.idle_utilization_percent,
            hot_temperature_c=settings.hot_temperature_c,
        )
        self.model: FleetModel = self._build(self.cache.snapshot(), self._telemetry_snapshot)
        self._model_task: asyncio.Task[None] | None = None
        self._started = False

    # -- telemetry -----------------------------------------------------------------------------
    def _make_telemetry(self) -> TelemetryCollector | NvmlCollector:
        s = self.settings
        if s.telemetry_mode == "nvml":
            return NvmlCollector(interval=s.scrape_interval, history_length=s.history_length)
        targets: Callable[[], list[ScrapeTarget]] = {
            "proxy": self._proxy_targets,
            "direct": self._direct_targets,
            "urls": self._url_targets,
            "off": list,
        }[s.telemetry_mode]
        verify: bool | ssl.SSLContext = True
        if s.telemetry_mode == "proxy" and self.access.server.startswith("https"):
            verify = tls_context(self.access.api_client)
        return TelemetryCollector(
            targets,
            interval=s.scrape_interval,
            history_length=s.history_length,
            verify=verify,
        )

    def _exporters(self) -> Iterator[dict]:
        selectors = [
            parse_selector(self.settings.dcgm_selector),
            parse_selector(EXTRA_DCGM_SELECTOR),
        ]
        return exporter_pods(iter(self.cache.objects("pods").values()), selectors)

    def _proxy_targets(self) -> list[ScrapeTarget]:
        """Through the API server's pod proxy, as ``kubectl get --raw`` reaches them."""
        server = self.access.server.rstrip("/")
        port = self.settings.dcgm_port
        headers = auth_headers(self.access.api_client)
        return [
            ScrapeTarget(
                url=f"{server}/api/v1/namespaces/{p['metadata']['namespace']}/pods/"
                f"{p['metadata']['name']}:{port}/proxy/metrics",
                node=(p.get("spec") or {}).get("nodeName"),
                headers=headers,
            )
            for p in self._exporters()
        ]

    def _direct_targets(self) -> list[ScrapeTarget]:
        """Pod IPs, for a backend running inside the cluster."""
        port = self.settings.dcgm_port
        return [
            ScrapeTarget(
                url=f"http://{p['status']['podIP']}:{port}/metrics",
                node=(p.get("spec") or {}).get("nodeName"),
            )
            for p in self._exporters()
            if (p.get("status") or {}).get("podIP")
        ]

    def _url_targets(self) -> list[ScrapeTarget]:
        return [ScrapeTarget(url=url, node=None) for url in self.settings.dcgm_urls]

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Migrate the database, start watching and scraping; returns before the first sync."""
        await asyncio.to_thread(upgrade, self.settings.database_url)
        self.database = Database(self.settings.database_url)
        await self.cache.start()
        if self.settings.telemetry_mode != "off":
            try:
                await self.telemetry.start()
            except TelemetryUnavailable as exc:  # e.g. nvml without a driver: serve the cluster
                log.error("telemetry disabled: %s", exc)
        self._model_task = asyncio.create_task(self._model_loop(), name="fleet-model")
        self._started = True
        log.info(
            "watching %s (context %s), database %s, telemetry %s",
            self.access.server,
            self.access.context or "-",
            redact(self.settings.database_url),
            self.settings.telemetry_mode,
        )

    async def stop(self) -> None:
        if self._model_task is not None:
            self._model_task.cancel()
            await asyncio.gather(self._model_task, return_exceptions=True)
            self._model_task = None
        if self._started and self.settings.telemetry_mode != "off":
            await self.telemetry.stop()
        await self.cache.stop()
        if self.database is not None:
            self.database.dispose()
        self._started = False

    # -- the fleet model -----------------------------------------------------------------------
    def _inputs_version(self) -> tuple[int, int]:
        return self.cache.version, self.telemetry.version

    async def _model_loop(self) -> None:
        """Rebuild the model when its inputs change, debounced, off the event loop."""
        debounce = self.settings.model_debounce
        built = (-1, -1)
        last_end = 0.0
        while True:
            if self._inputs_version() == built:
                # Woken by cache changes; polled for telemetry rounds.
                await self.cache.wait_changed(timeout=max(debounce, 0.25))
                continue
            # At least the debounce apart, and never busier than half the time on a big fleet.
            gap = max(debounce, self.model_stats.last_duration)
            wait = gap - (time.monotonic() - last_end)
            if wait > 0:
                await asyncio.sleep(wait)
            built = self._inputs_version()
            try:
                await self.rebuild_model()
            except Exception:  # never let the loop die: the model would freeze silently
                log.exception("fleet model rebuild failed")
            last_end = time.monotonic()

    def _build(self, cluster: dict, telemetry: TelemetrySnapshot) -> FleetModel:
        return build_fleet_model(cluster, telemetry, rules=self.rules)

    async def rebuild_model(self) -> None:
        """Build a new model from the current inputs; keep the old one if building fails."""
        cluster = self.cache.snapshot()  # on the loop: a consistent copy
        telemetry = self.telemetry.snapshot()
        start = time.perf_counter()
        try:
            model = await asyncio.to_thread(self._build, cluster, telemetry)
        except Exception:
            self.model_stats.failures += 1
            log.exception("building the fleet model failed; keeping the previous one")
            return
        self.model = model
        self._telemetry_snapshot = telemetry
        stats = self.model_stats
        stats.builds += 1
        stats.last_duration = time.perf_counter() - start
        stats.last_built_at = time.time()

    # -- answers -------------------------------------------------------------------------------
    def freshness(self) -> DataFreshness:
        now = time.time()
        cache, tele = self.cache, self._telemetry_snapshot
        if cache.live:
            cluster_age: float | None = 0.0
        elif cache.last_contact is not None:
            cluster_age = max(0.0, now - cache.last_contact)
        else:
            cluster_age = None
        tele_age = None if tele.completed_at is None else max(0.0, now - tele.completed_at)
        return DataFreshness(
            synced=cache.synced,
            cluster_age_seconds=cluster_age,
            telemetry_age_seconds=tele_age,
            watch_restarts=cache.watch_restarts,
            telemetry_sources=tele.sources,
            telemetry_errors=tele.errors,
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


# -- serving -------------------------------------------------------------------------------------


class RunningBackend:
    """``async with RunningBackend(settings) as url:`` — a started Backend served on
    ``settings.host:settings.port`` (port 0 = a free one) in the current event loop."""

    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings
        self.backend = backend
        self.url = ""
        self._http: ServedApp | None = None

    async def __aenter__(self) -> str:
        from backend.api.app import create_app  # the app imports this module

        if self.backend is None:
            self.backend = Backend(self.settings)
        sock = bind_socket(self.settings.host, self.settings.port)  # a busy port fails first
        await self.backend.start()
        try:
            self._http = ServedApp(create_app(self.backend))
            self.url = await self._http.start(sock)
        except BaseException:
            sock.close()
            await self.backend.stop()
            raise
        return self.url

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.stop()
        if self.backend is not None:
            await self.backend.stop()


async def run_backend(settings: Settings, backend: Backend | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with RunningBackend(settings, backend) as url:
            log.info("opsconsole backend serving on %s", url)
            await stop.wait()
            log.info("shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Environment settings with the command line's flags on top."""
    overrides = {
        key: getattr(args, key)
        for key in ("kubeconfig", "context", "host", "port")
        if getattr(args, key, None) is not None
    }
    return Settings(**overrides)


def main(args: argparse.Namespace) -> int:
    """``opsconsole serve``."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = settings_from_args(args)
        backend = Backend(settings)
    except ClusterAccessError as exc:
        print(f"opsconsole serve: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # invalid settings from the environment
        print(f"opsconsole serve: invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run_backend(settings, backend))
    except OSError as exc:  # e.g. the port is taken
        print(f"opsconsole serve: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:  # e.g. PostgreSQL unreachable
        url = redact(settings.database_url)
        print(f"opsconsole serve: database {url}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
