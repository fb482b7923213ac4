"""PrometheusCollector: GPU telemetry read from a Prometheus server that scrapes dcgm-exporter.

Many clusters already run Prometheus with dcgm-exporter; reading from it costs a few queries per
round instead of a scrape per exporter. A round is instant queries through ``/api/v1/query``:
one per DCGM field the exporter scrape understands (``dcgm.FIELDS``), and ``up``, all at once.
Prometheus answers them in parallel, and each answer is read while the later ones are still
being made: on the large fleet (80,000 series, 32 MB of JSON) a single query had Prometheus
encode everything before the backend could parse any of it. The series become GpuSamples
through the same label mapping as a direct scrape (``dcgm.GpuTable``, in the fields' order, so
that a GPU appears where one query for every field would list it), after undoing what
Prometheus does to labels: it adds ``instance``/``job`` and, when a target label collides with
a scraped one (honor_labels off), keeps the exporter's value as ``exported_<name>``
(``exported_pod``, ``exported_namespace``).

Staleness is reported as the exporter scrape reports it. Prometheus unreachable, answering an
error, or refusing the credentials: the round fails, the GPUs keep their last samples and the
snapshot's age keeps counting, with the reason in ``failures``. A target that Prometheus reports
down (``up == 0``) keeps its GPUs' last samples and is listed in ``failures``; a target that is
gone from ``up`` takes its GPUs with it.

Exporters are trusted as in a direct scrape (``backend.telemetry.trust``), with what Prometheus
knows of each target, read from the labels of its ``up`` series (never the exporter's): a target
whose ``namespace`` label is not an exporter namespace is refused, and one with a ``node`` label
speaks only for that node's GPUs. Those labels exist only where the scrape configuration adds them
(kube-prometheus's ServiceMonitors add ``namespace`` and ``pod``; ``node`` needs a relabeling of
``__meta_kubernetes_pod_node_name``); without them only the UUID rule applies, with each sample's
host label standing for its node.

The utilization history is read once through ``/api/v1/query_range`` on the first successful
round, so sparklines are full as soon as the backend starts; later rounds append to it.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson

from backend.telemetry.base import RoundCollector
from backend.telemetry.dcgm import (
    FIELDS,
    INT32_BLANK,
    GpuSample,
    GpuTable,
    gpu_key,
    is_blank,
)
from backend.telemetry.pages import tls_verification
from backend.telemetry.trust import ANY_NAMESPACE, Origin, namespace_allowed, screen

UTILIZATION = "DCGM_FI_DEV_GPU_UTIL"
FIELD_QUERIES = sorted(FIELDS)  # as a query of them all would list their series: by name
EXPORTED = "exported_"

# (job, instance): the Prometheus target a series was scraped from
Target = tuple[str, str]


class PrometheusError(RuntimeError):
    """A query that did not answer data: why, in an operator's words."""


def exporter_labels(metric: Mapping[str, str]) -> Mapping[str, str]:
    """A series' labels as the exporter wrote them: ``exported_x`` restored to ``x``.

    ``instance``/``job`` stay (no DCGM label uses those names), and so may ``__name__``: a
    series without ``exported_`` labels is returned as it is, uncopied (a fleet has 80,000)."""
    exported = _exported(tuple(metric))
    if not exported:
        return metric
    labels = dict(metric)
    labels.pop("__name__", None)
    for key in exported:
        labels[key.removeprefix(EXPORTED)] = labels.pop(key)
    return labels


@functools.lru_cache(maxsize=1024)
def _exported(keys: tuple[str, ...]) -> tuple[str, ...]:
    """The ``exported_`` labels among a series' label names. A fleet's 80,000 series share a
    few sets of names: looking each set up once made a round's labels three times cheaper."""
    return tuple(key for key in keys if key.startswith(EXPORTED))


def add_vector(
    tables: dict[Target, GpuTable], name: str, result: list[dict[str, Any]], now: float
) -> None:
    """An instant vector of the field ``name`` into the GPUs of the targets that scraped it."""
    for series in result:
        metric = series["metric"]
        target = (metric.get("job", ""), metric.get("instance", ""))
        table = tables.get(target)
        if table is None:
            table = tables[target] = GpuTable(now=now)
        table.add(name, exporter_labels(metric), float(series["value"][1]))


def target_health(up: list[dict[str, Any]]) -> dict[Target, float]:
    """``up`` by target: 1 when its last scrape worked, 0 when it failed."""
    return {
        (s["metric"].get("job", ""), s["metric"].get("instance", "")): float(s["value"][1])
        for s in up
    }


def target_labels(up: list[dict[str, Any]]) -> dict[Target, Mapping[str, str]]:
    """The labels Prometheus gave each target (``up`` carries no label of the exporter's)."""
    return {(s["metric"].get("job", ""), s["metric"].get("instance", "")): s["metric"] for s in up}


class PrometheusCollector(RoundCollector):
    """Reads the fleet's GPUs from Prometheus every ``interval`` seconds; see the module doc."""

    def __init__(
        self,
        url: str,
        *,
        namespaces: Iterable[str] = (ANY_NAMESPACE,),
        interval: float = 10.0,
        history_length: int = 60,
        token: str | None = None,
        token_file: Path | None = None,
        verify: bool | str | ssl.SSLContext = True,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(interval=interval, history_length=history_length)
        self.url = url.rstrip("/")
        self.namespaces = tuple(namespaces)
        self.token = token
        self.token_file = token_file
        self.timeout = timeout
        self.verify = verify
        self.last_error: str | None = None
        self._client: httpx.AsyncClient | None = None
        self._by_target: dict[Target, list[GpuSample]] = {}
        self._history_read = False

    async def stop(self) -> None:
        await super().stop()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def scrape_once(self) -> None:
        """One round: the current series and target health, published as one snapshot."""
        started = time.monotonic()
        at = time.time()
        try:
            by_target, up = await asyncio.gather(self._gpus(at), self.query("up", at))
            if not self._history_read:
                await self._read_history(at)
            health = target_health(up)
            labels = target_labels(up)
        except PrometheusError as exc:
            await self._fail(str(exc), started)
            return
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            await self._fail(f"malformed answer: {type(exc).__name__}: {exc}", started)
            return
        self.last_error = None
        await self._round(by_target, health, labels, started)

    async def _gpus(self, at: float) -> dict[Target, list[GpuSample]]:
        """Every DCGM field's series, all asked for at once and read in the fields' order as
        they come, as the GPUs of each target."""
        queries = [asyncio.ensure_future(self.query(name, at)) for name in FIELD_QUERIES]
        tables: dict[Target, GpuTable] = {}
        try:
            for name, query in zip(FIELD_QUERIES, queries, strict=True):
                add_vector(tables, name, await query, at)
        finally:  # one failed: the others are not waited for
            for query in queries:
                query.cancel()
            await asyncio.gather(*queries, return_exceptions=True)
        return {target: table.samples() for target, table in tables.items()}

    async def _fail(self, error: str, started: float) -> None:
        """A round that read nothing: every GPU keeps its last sample, the age keeps counting."""
        self.last_error = error
        samples = {gpu.uuid: gpu for gpus in self._by_target.values() for gpu in gpus}
        await self._publish(samples, set(), sources=1, failures={self.url: error}, started=started)

    async def _round(
        self,
        by_target: dict[Target, list[GpuSample]],
        health: dict[Target, float],
        labels: dict[Target, Mapping[str, str]],
        started: float,
    ) -> None:
        """Publish the fresh GPUs that their targets may give; a target Prometheus reports down
        keeps its last GPUs."""
        failures: dict[str, str] = {}
        for target in list(by_target):
            namespace = labels.get(target, {}).get("namespace")
            if namespace is not None and not namespace_allowed(namespace, self.namespaces):
                del by_target[target]
                failures[_target_name(target)] = f"namespace {namespace} is not an exporter's"
        fresh_targets = set(by_target)
        for target, gpus in self._by_target.items():
            if target not in by_target and health.get(target) == 0:
                by_target[target] = gpus
                failures[_target_name(target)] = "target down in Prometheus (up == 0)"
        targets = list(by_target)
        reports = [(_origin(t, labels.get(t, {})), by_target[t]) for t in targets]
        owners = {gpu.uuid: gpu.node for gpus in self._by_target.values() for gpu in gpus}
        await asyncio.sleep(0)  # the requests that came in meanwhile first (GPUS_PER_TURN)
        accepted, refused = screen(reports, owners)
        await asyncio.sleep(0)
        self._by_target = dict(zip(targets, accepted, strict=True))
        fresh = {g.uuid for t, gpus in self._by_target.items() if t in fresh_targets for g in gpus}
        samples = {gpu.uuid: gpu for gpus in self._by_target.values() for gpu in gpus}
        failures = {**refused, **failures}
        await self._publish(
            samples, fresh, sources=len(targets), failures=failures, started=started
        )

    async def _read_history(self, at: float) -> None:
        """Fill the history with the utilization Prometheus kept before this round."""
        steps = self._history.length - 1
        if steps > 0:
            start = at - steps * self.interval
            end = at - self.interval
            result = await self.query_range(UTILIZATION, start, end, self.interval)
            for uuid, values in utilization_history(result, start, self.interval, steps).items():
                for value in values:
                    self._history.append(uuid, value)
        self._history_read = True

    # -- the HTTP API --------------------------------------------------------------------------
    async def query(self, promql: str, at: float) -> list[dict[str, Any]]:
        """``/api/v1/query``: the instant vector's series (raises PrometheusError)."""
        data = await self._get("/api/v1/query", {"query": promql, "time": f"{at:.3f}"})
        return _result(data, "vector")

    async def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        """``/api/v1/query_range``: the matrix's series (raises PrometheusError)."""
        params = {
            "query": promql,
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{step:g}",
        }
        return _result(await self._get("/api/v1/query_range", params), "matrix")

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        try:
            response = await self._http().get(path, params=params, headers=self._headers())
        except httpx.TimeoutException:
            raise PrometheusError(f"timed out after {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise PrometheusError(f"unreachable: {type(exc).__name__}: {exc}") from None
        try:
            body = orjson.loads(response.content)  # a fleet's answer is tens of MB of JSON
        except orjson.JSONDecodeError:
            body = None
        ok = isinstance(body, dict) and body.get("status") == "success"
        if response.status_code >= 400 or not ok:
            raise PrometheusError(_error_text(response, body))
        return body.get("data")

    def _headers(self) -> dict[str, str]:
        """The bearer token; a token file is read each time, as rotated tokens require."""
        token = self.token
        if self.token_file is not None:
            try:
                token = self.token_file.read_text().strip()
            except OSError as exc:
                raise PrometheusError(f"token file {self.token_file}: {exc.strerror}") from None
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.url, timeout=self.timeout, verify=tls_verification(self.verify)
            )
        return self._client


def utilization_history(
    result: list[dict[str, Any]], start: float, step: float, steps: int
) -> dict[str, list[float | None]]:
    """A query_range matrix of utilization -> per GPU, ``steps`` values (None = no sample)."""
    history: dict[str, list[float | None]] = {}
    for series in result:
        uuid = gpu_key(exporter_labels(series["metric"]), None)
        if uuid is None:
            continue
        values = history.setdefault(uuid, [None] * steps)
        for t, text in series["values"]:
            slot = round((float(t) - start) / step)
            value = float(text)
            if 0 <= slot < steps and not is_blank(value, INT32_BLANK):
                values[slot] = value
    return history


def _result(data: Any, kind: str) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or data.get("resultType") != kind:
        got = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise PrometheusError(f"expected a {kind} result, got {got}")
    result: list[dict[str, Any]] = data.get("result") or []
    return result


def _error_text(response: httpx.Response, body: Any) -> str:
    """``HTTP 422: execution: <error>`` from an error body; the status line otherwise."""
    status = f"HTTP {response.status_code}"
    if isinstance(body, dict) and body.get("status") == "error":
        return f"{status}: {body.get('errorType', 'error')}: {body.get('error', '')}"
    if response.status_code >= 400:
        return f"{status} {response.reason_phrase}".rstrip()
    return f"{status}: not a Prometheus API answer"


def _target_name(target: Target) -> str:
    job, instance = target
    return f"{job}/{instance}"


def _origin(target: Target, labels: Mapping[str, str]) -> Origin:
    """Who the target is, as far as Prometheus's target labels say."""
    return Origin(_target_name(target), node=labels.get("node"), pod=labels.get("pod"))
