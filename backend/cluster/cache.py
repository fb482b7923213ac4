"""A list+watch cache of the cluster objects the fleet model needs (an informer, in client-go terms).

One thread per watched kind runs the blocking official client (its ``ApiClient``, requests by
path: the typed API classes are never imported): a paged list (raw JSON decoded into the slim
shapes of ``backend.cluster.slim``, never the typed models, which are ~10x slower in bulk), then a
watch from the list's resourceVersion, line by line. Objects are slimmed in the thread; every
change is handed to the event loop with ``call_soon_threadsafe`` and applied there, so readers on
the loop never see a half-applied change and the loop never blocks on the network.

Recovery follows client-go's reflector: a watch that ends normally (its ``timeoutSeconds``) resumes
from the last resourceVersion; 410 Expired (as an HTTP answer or an ERROR event) relists; a
connection failure waits (exponential backoff, capped, jittered) and relists, which also copes
with an API server whose storage was replaced. A kind whose API is not served (404: Kueue or KServe
not installed) or not allowed (403) is marked so, counts as synced, and is checked again only
after ``absent_retry`` seconds.

An open watch proves nothing about a hung API server (a stopped process keeps its sockets open),
so each kind's data counts as current only while the server confirms it: a watch line (an event
or a bookmark, which servers send when asked with ``allowWatchBookmarks``) or, when a stream has
been quiet for ``probe_interval``, a cheap ``GET /version``. A kind with no confirmation for
``stale_after`` seconds is stale, and says so, until the server answers again.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from backend.cluster.kubeconfig import ClusterAccess
from backend.cluster.slim import JsonObject, decode_list, object_key, slim

log = logging.getLogger(__name__)

Key = tuple[str, str]
MAX_JOURNAL = 100_000  # changes kept for changes_since; older ones are forgotten in halves


@dataclass(frozen=True)
class KindSpec:
    """How to list and watch one kind: its API group and the versions to try."""

    name: str  # the plural, also the cache's name for it
    kind: str
    group: str  # "" = core
    versions: tuple[str, ...]  # tried in order; the first one served is used

    def path(self, version: str) -> str:
        """The kind's collection across all namespaces (or cluster-scoped) at ``version``."""
        prefix = f"/apis/{self.group}" if self.group else "/api"
        return f"{prefix}/{version}/{self.name}"


KIND_SPECS: dict[str, KindSpec] = {
    s.name: s
    for s in (
        KindSpec("namespaces", "Namespace", "", ("v1",)),
        KindSpec("nodes", "Node", "", ("v1",)),
        KindSpec("pods", "Pod", "", ("v1",)),
        KindSpec("events", "Event", "", ("v1",)),
        KindSpec("resourcequotas", "ResourceQuota", "", ("v1",)),
        KindSpec("deployments", "Deployment", "apps", ("v1",)),
        KindSpec("replicasets", "ReplicaSet", "apps", ("v1",)),
        KindSpec("jobs", "Job", "batch", ("v1",)),
        KindSpec("resourceflavors", "ResourceFlavor", "kueue.x-k8s.io", ("v1beta2", "v1beta1")),
        KindSpec("clusterqueues", "ClusterQueue", "kueue.x-k8s.io", ("v1beta2", "v1beta1")),
        KindSpec("localqueues", "LocalQueue", "kueue.x-k8s.io", ("v1beta2", "v1beta1")),
        KindSpec("workloads", "Workload", "kueue.x-k8s.io", ("v1beta2", "v1beta1")),
        KindSpec("inferenceservices", "InferenceService", "serving.kserve.io", ("v1beta1",)),
    )
}
WATCHED: tuple[str, ...] = tuple(KIND_SPECS)

# Kind states, as /readyz and /metrics report them.
PENDING, LISTED, ABSENT, FORBIDDEN = "pending", "listed", "absent", "forbidden"
# A listed kind, as its freshness: confirmed current lately, or not.
LIVE, STALE = "live", "stale"


@dataclass(frozen=True)
class KindHealth:
    """One kind's freshness: pending | live | stale | absent | forbidden, its age, why not."""

    state: str
    age: float | None  # seconds since its data was last confirmed current (0 while live)
    error: str | None


class _Expired(Exception):
    """The watch's resourceVersion is too old (410): relist."""


class _Stopped(Exception):
    """The cache is stopping."""


@dataclass
class CacheOptions:
    """Tunables; tests shrink the timings."""

    page_size: int = 500
    watch_timeout: int = 300  # seconds, sent as timeoutSeconds
    connect_timeout: float = 10.0
    list_read_timeout: float = 120.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    absent_retry: float = 300.0
    probe_interval: float = 3.0  # a quiet stream is confirmed by GET /version this often
    probe_timeout: float = 4.0
    stale_after: float = 10.0  # no confirmation for this long: the kind's data is stale


class ClusterCache:
    """The watched objects, slimmed, keyed by (namespace or "", name), kept current by watches."""

    def __init__(
        self,
        access: ClusterAccess,
        kinds: Iterable[str | KindSpec] = WATCHED,
        options: CacheOptions | None = None,
    ) -> None:
        """``kinds``: names from ``KIND_SPECS``, or specs of other kinds to watch."""
        self.api_client: client.ApiClient = access.api_client
        self.server: str = access.server
        self.context: str | None = access.context
        self.cluster_version: str | None = None
        self.options = options or CacheOptions()
        self.version = 0
        self.last_contact: float | None = None
        self.watch_restarts = 0
        specs = [KIND_SPECS[k] if isinstance(k, str) else k for k in kinds]
        self._specs: dict[str, KindSpec] = {spec.name: spec for spec in specs}
        self._objects: dict[str, dict[Key, JsonObject]] = {k: {} for k in self._specs}
        self._states: dict[str, str] = dict.fromkeys(self._specs, PENDING)
        self._synced = asyncio.Event()
        self._changed = asyncio.Event()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: list[_KindWatcher] = []
        self._streaming: set[str] = set()
        self._contact: dict[str, float] = {}  # kind -> time.time() of its last list or line
        self._errors: dict[str, str] = {}  # kind -> why its last list or watch failed
        self._probe_ok: float | None = None  # time.time() of the last answer to the probe
        self.probe_error: str | None = None  # why the last probe failed
        self._probe_task: asyncio.Task[None] | None = None
        # (version, kind, key) of every applied change, oldest first; trimmed, see changes_since.
        self._journal: list[tuple[int, str, Key]] = []
        self._journal_floor = 0  # changes up to this version are no longer all in the journal

    # -- reading (event loop) ------------------------------------------------------------------
    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def objects(self, kind: str) -> Mapping[Key, JsonObject]:
        """A read-only view of one kind's objects (never mutated in place; replaced on change)."""
        return MappingProxyType(self._objects[kind])

    def snapshot(self) -> dict[str, dict[Key, JsonObject]]:
        """Shallow copies of every kind, safe to read from another thread while the loop applies
        changes (objects themselves are never mutated, only replaced)."""
        return {kind: dict(objects) for kind, objects in self._objects.items()}

    def changes_since(self, version: int) -> set[tuple[str, Key]] | None:
        """The (kind, key) of every object added, replaced or deleted after ``version`` (a
        ``version`` read earlier), so that a reader can recompute only what they touch; None
        when that is not known: a kind was listed again (or dropped) since, or the change is
        older than the journal keeps."""
        if version < self._journal_floor:
            return None
        start = bisect.bisect_right(self._journal, version, key=lambda entry: entry[0])
        return {(kind, key) for _, kind, key in self._journal[start:]}

    def kind_states(self) -> dict[str, str]:
        """Per kind: pending | listed | absent | forbidden."""
        return dict(self._states)

    def kind_health(self, now: float | None = None) -> dict[str, KindHealth]:
        """Per kind: whether its data is current. A listed kind is live while its watch is open
        and the server confirmed it (a line on the stream, or an answer to the probe) within
        ``stale_after`` seconds: any change would then have arrived, however quiet the cluster."""
        now = time.time() if now is None else now
        return {kind: self._health(kind, state, now) for kind, state in self._states.items()}

    def _health(self, kind: str, state: str, now: float) -> KindHealth:
        error = self._errors.get(kind)
        if state != LISTED:
            return KindHealth(state, None, error)
        seen = self._contact.get(kind, 0.0)
        if kind in self._streaming and self._probe_ok is not None:
            seen = max(seen, self._probe_ok)
        age = max(0.0, now - seen)
        if kind in self._streaming and age <= self.options.stale_after:
            return KindHealth(LIVE, 0.0, None)
        return KindHealth(STALE, age, error or self.probe_error)

    @property
    def live(self) -> bool:
        """Synced, and every listed kind confirmed current (see ``kind_health``)."""
        health = self.kind_health().values()
        return self.synced and all(h.state != STALE for h in health)

    def counts(self) -> dict[str, int]:
        return {kind: len(objects) for kind, objects in self._objects.items()}

    def pending_kinds(self) -> list[str]:
        return [k for k, state in self._states.items() if state == PENDING]

    async def wait_synced(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):  # unlike wait_for, never loses a cancellation
                await self._synced.wait()
        except TimeoutError:
            return False
        return True

    async def wait_changed(self, timeout: float) -> bool:
        """Wait for the next applied change (the model builder's wake-up); False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        except TimeoutError:
            return False
        self._changed.clear()
        return True

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start one list+watch thread per kind; returns at once (see ``wait_synced``). Once
        started, until ``stop``, starting again does nothing."""
        if self._watchers:
            return
        self._loop = asyncio.get_running_loop()
        self._stop.clear()
        for spec in self._specs.values():
            watcher = _KindWatcher(self, spec)
            self._watchers.append(watcher)
            watcher.thread.start()
        self._probe_task = asyncio.create_task(self._probe_loop(), name="cluster-probe")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop every watch: close their sockets so that blocked reads return, then join."""
        self._stop.set()
        if self._probe_task is not None:
            self._probe_task.cancel()
        for watcher in self._watchers:
            watcher.interrupt()
        deadline = time.monotonic() + timeout
        for watcher in self._watchers:
            remaining = max(0.0, deadline - time.monotonic())
            await asyncio.to_thread(watcher.thread.join, remaining)
            if watcher.thread.is_alive():
                log.warning("watch thread for %s did not stop in time", watcher.spec.name)
        self._watchers.clear()

    async def _probe_loop(self) -> None:
        """Read the cluster version once, then confirm quiet streams every ``probe_interval``."""
        while not self._stop.is_set():
            if self.cluster_version is None or self._quiet_streams():
                await self._probe()
            await asyncio.sleep(self.options.probe_interval)

    def _quiet_streams(self) -> bool:
        """Whether some open stream brought nothing (no event, no bookmark) for a while."""
        since = time.time() - self.options.probe_interval
        return any(self._contact.get(kind, 0.0) < since for kind in self._streaming)

    async def _probe(self) -> None:
        try:
            self.cluster_version = await asyncio.to_thread(self._read_version)
        except Exception as exc:  # refused, reset, timed out: the server is not answering
            self.probe_error = f"the API server does not answer ({type(exc).__name__})"
            log.debug("cluster probe failed: %s", exc)
            return
        self._probe_ok = time.time()
        self.probe_error = None

    def _read_version(self) -> str | None:
        timeout = self.options.probe_timeout
        resp = _get(self.api_client, "/version", [], (timeout, timeout))
        return orjson.loads(resp.data).get("gitVersion")

    def upsert(self, obj: JsonObject) -> None:
        """Take an object the backend itself just wrote (the API server's answer), so that the
        next read shows the change without waiting for the watch to bring it. On the loop."""
        spec = next((s for s in KIND_SPECS.values() if s.kind == obj.get("kind")), None)
        if spec is None or spec.name not in self._objects:
            return
        slimmed = slim(obj, str(obj.get("apiVersion") or ""), spec.kind)
        self._apply(spec.name, "MODIFIED", object_key(slimmed), slimmed)

    # -- applying changes (event loop; called by the watch threads through post()) ------------
    def post(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop; from any thread. Dropped once the loop is gone."""
        if self._loop is None or self._stop.is_set():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            self._loop.call_soon_threadsafe(fn, *args)

    def _bump(self) -> None:
        self.version += 1
        self.last_contact = time.time()
        self._changed.set()

    def _set_state(self, kind: str, state: str) -> None:
        self._states[kind] = state
        if not self._synced.is_set() and PENDING not in self._states.values():
            self._synced.set()
            self._bump()  # the model builder's cue, even when the last kind was absent
            log.info("cluster cache synced (version %d)", self.version)

    def _replace(self, kind: str, objects: dict[Key, JsonObject]) -> None:
        self._objects[kind] = objects
        self._touch(kind)
        self._errors.pop(kind, None)
        self._bump()
        self._journal_floor = self.version
        self._set_state(kind, LISTED)

    def _apply(self, kind: str, event_type: str, key: Key, obj: JsonObject) -> None:
        if event_type == "DELETED":
            self._objects[kind].pop(key, None)
        else:
            self._objects[kind][key] = obj
        self._touch(kind)
        self._bump()
        self._journal.append((self.version, kind, key))
        if len(self._journal) > MAX_JOURNAL:
            self._journal_floor = self._journal[MAX_JOURNAL // 2][0]
            del self._journal[: MAX_JOURNAL // 2 + 1]

    def _touch(self, kind: str) -> None:
        self.last_contact = self._contact[kind] = time.time()

    def _stream(self, kind: str, is_open: bool) -> None:
        if is_open:
            self._streaming.add(kind)
            self._errors.pop(kind, None)
            self._touch(kind)
        else:
            self._streaming.discard(kind)

    def _unavailable(self, kind: str, state: str) -> None:
        self._errors.pop(kind, None)
        if self._objects[kind]:
            self._objects[kind] = {}
            self._bump()
            self._journal_floor = self.version
        self._set_state(kind, state)

    def _restarted(self, kind: str, why: str) -> None:
        self.watch_restarts += 1
        self._errors[kind] = why
        log.info("watch %s restarting: %s", kind, why)


class _KindWatcher:
    """The list+watch loop of one kind, in its own daemon thread."""

    def __init__(self, cache: ClusterCache, spec: KindSpec) -> None:
        self.cache = cache
        self.spec = spec
        self.options = cache.options
        self.thread = threading.Thread(target=self._run, name=f"watch-{spec.name}", daemon=True)
        self._stop = cache._stop
        self._response: Any = None
        self._version = spec.versions[0]

    def interrupt(self) -> None:
        """Unblock a read in progress (called from the loop thread at stop)."""
        response = self._response
        if response is None:
            return
        with contextlib.suppress(Exception):  # already released or closed: nothing blocks on it
            response.shutdown()

    # -- the loop ------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = self.options.backoff_initial
        resource_version: str | None = None
        expired_before = False  # two 410s without a completed watch between: back off
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    resource_version = self._list()
                    backoff = self.options.backoff_initial
                resource_version = self._watch(resource_version)
                expired_before = False
            except _Stopped:
                return
            except _Expired as exc:
                resource_version = None
                backoff = self._expired(f"expired: {exc}", backoff, expired_before)
                expired_before = True
            except ApiException as exc:
                resource_version = None
                if exc.status == 410:  # watch or continue token too old: relist
                    backoff = self._expired("HTTP 410 Expired", backoff, expired_before)
                    expired_before = True
                    continue
                if exc.status in (403, 404):
                    self._unavailable(exc)
                    continue
                backoff = self._fail(f"HTTP {exc.status} {exc.reason}", backoff)
            except Exception as exc:  # connection refused/reset, timeouts, bad JSON
                resource_version = None
                backoff = self._fail(f"{type(exc).__name__}: {exc}", backoff)

    def _expired(self, why: str, backoff: float, again: bool) -> float:
        """Relist at once after a 410, but not in a hot loop if the server keeps saying so."""
        if again:
            return self._fail(why, backoff)
        self.cache.post(self.cache._restarted, self.spec.name, why)
        return backoff

    def _fail(self, why: str, backoff: float) -> float:
        """Count a restart and sleep a jittered backoff; the next backoff, doubled and capped."""
        if self._stop.is_set():
            return backoff
        self.cache.post(self.cache._restarted, self.spec.name, why)
        self._stop.wait(backoff * random.uniform(0.5, 1.0))
        return min(backoff * 2, self.options.backoff_max)

    def _unavailable(self, exc: ApiException) -> None:
        state = FORBIDDEN if exc.status == 403 else ABSENT
        log.info("%s is %s (HTTP %s); checking again later", self.spec.name, state, exc.status)
        self.cache.post(self.cache._unavailable, self.spec.name, state)
        self._stop.wait(self.options.absent_retry)

    # -- requests ------------------------------------------------------------------------------
    def _call(
        self, version: str, query: list[tuple[str, Any]], timeout: tuple[float, float]
    ) -> Any:
        if self._stop.is_set():
            raise _Stopped
        return _get(self.cache.api_client, self.spec.path(version), query, timeout)

    def _list_version(self) -> Iterator[str]:
        """The API version to use: the one that worked last, then the others in order."""
        yield self._version
        yield from (v for v in self.spec.versions if v != self._version)

    def _list(self) -> str:
        """List every page, hand the whole new set to the loop; return the resourceVersion."""
        last_404: ApiException | None = None
        for version in self._list_version():
            try:
                objects, resource_version = self._list_pages(version)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                last_404 = exc
                continue
            self._version = version
            self.cache.post(self.cache._replace, self.spec.name, objects)
            return resource_version
        assert last_404 is not None
        raise last_404

    def _list_pages(self, version: str) -> tuple[dict[Key, JsonObject], str]:
        api_version = f"{self.spec.group}/{version}" if self.spec.group else version
        objects: dict[Key, JsonObject] = {}
        token: str | None = None
        timeout = (self.options.connect_timeout, self.options.list_read_timeout)
        while True:
            query: list[tuple[str, Any]] = [("limit", self.options.page_size)]
            if token:
                query.append(("continue", token))
            data = self._read_all(self._call(version, query, timeout))
            items, meta = decode_list(data, api_version, self.spec.kind)
            for obj in items:
                objects[object_key(obj)] = obj
            token = meta.get("continue")
            if not token:
                return objects, str(meta.get("resourceVersion") or "")

    def _hold(self, response: Any) -> None:
        """Make ``response`` interruptible by ``stop``. ``stop`` sets the flag, then interrupts
        the held response; checking the flag after holding closes the gap in between."""
        self._response = response
        if self._stop.is_set():
            self._response = None
            response.release_conn()
            raise _Stopped

    def _read_all(self, response: Any) -> bytes:
        self._hold(response)
        try:
            return response.data
        finally:
            self._response = None
            response.release_conn()

    def _watch(self, resource_version: str) -> str:
        """Follow one watch stream until it ends; return the newest resourceVersion seen."""
        query = [
            ("watch", True),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", True),
            ("timeoutSeconds", self.options.watch_timeout),
        ]
        timeout = (self.options.connect_timeout, self.options.watch_timeout + 30)
        response = self._call(self._version, query, timeout)
        self._hold(response)
        self.cache.post(self.cache._stream, self.spec.name, True)
        try:
            for line in _lines(response):
                resource_version = self._handle(orjson.loads(line)) or resource_version
        except Exception:
            if self._stop.is_set():
                raise _Stopped from None
            raise
        finally:
            self._response = None
            self.cache.post(self.cache._stream, self.spec.name, False)
            response.release_conn()
        if self._stop.is_set():
            raise _Stopped
        return resource_version

    def _handle(self, event: JsonObject) -> str | None:
        """Apply one watch event; return its resourceVersion (None when it has none)."""
        event_type = event.get("type")
        obj = event.get("object") or {}
        if event_type == "ERROR":
            if obj.get("code") == 410:
                raise _Expired(obj.get("message", "410"))
            raise RuntimeError(f"watch error: {obj.get('message', obj)}")
        resource_version = (obj.get("metadata") or {}).get("resourceVersion")
        if event_type == "BOOKMARK":
            self.cache.post(self.cache._touch, self.spec.name)
            return resource_version
        if event_type not in ("ADDED", "MODIFIED", "DELETED"):
            return None
        api_version = obj.get("apiVersion") or self._version
        slimmed = slim(obj, api_version, self.spec.kind)
        self.cache.post(self.cache._apply, self.spec.name, event_type, object_key(slimmed), slimmed)
        return resource_version


def _get(
    api_client: client.ApiClient,
    path: str,
    query: list[tuple[str, Any]],
    timeout: tuple[float, float],
) -> urllib3.BaseHTTPResponse:
    """``GET path`` through the official client's request path (its authentication, TLS and
    token refresh), unread; ``ApiException`` for an answer other than 2xx, as the typed API
    methods raise. The typed API classes are not used: importing them builds every model they
    name, seconds of CPU before the first list could start."""
    _, url, headers, _, _ = api_client.param_serialize(
        "GET",
        path,
        query_params=query,
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api("GET", url, header_params=headers, _request_timeout=timeout)
    if not 200 <= response.status <= 299:
        response.read()
        raise ApiException.from_response(http_resp=response, body=None, data=None)
    return response.response


def _lines(response: Any) -> Iterator[bytes]:
    """Newline-delimited JSON lines of a streamed (chunked) response, as they arrive."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=True):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer
