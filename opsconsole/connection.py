"""What the console knows about its backend connection, in one place.

The status bar and the banner are drawn from this state, so they always agree, and the age of
the data is computed honestly: time since the last good answer plus how old the backend's own
picture of the cluster was at that moment, and no age at all while the backend has no fleet data
yet. Four troubles are told apart: the backend does not answer (or answers errors); it answers but
does not accept the operator's token; it answers but its cluster data is not current (never
synced — still syncing, or the API server refuses its lists or its credentials — or the API
server stopped confirming it); telemetry sources (GPU exporters, model servers) fail. While the
console's own embedded sandbox and backend start, it says so instead of calling the backend
unreachable. Who the backend takes the operator for (``whoami``)
is kept here too, for the status bar and for the actions screens offer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from backend.schemas import (
    BackendInfo,
    DataFreshness,
    SyncProgress,
    SyncReason,
    TelemetryFailure,
    Whoami,
)


class Link(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    UNREACHABLE = "unreachable"
    ERROR = "error"
    UNAUTHENTICATED = "not authenticated"
    STARTING = "starting"


@dataclass(frozen=True)
class Startup:
    """How the console's own embedded cluster is doing: what it is at, or why it failed."""

    stage: str
    error: str | None = None
    token: str | None = None  # the admin token the embedded backend accepts, once made


LEVELS = ("info", "warning", "error")


@dataclass(frozen=True)
class Notice:
    """The banner's text and how bad it is: info, warning or error."""

    text: str
    level: str


def seconds_str(seconds: float) -> str:
    """``42 s``, ``3 min``, ``2 h``: the coarse ages a banner needs."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h"


@dataclass
class ConnectionState:
    """The console's view of its backend; ``clock`` is ``time.time`` outside tests."""

    backend_url: str
    operator: str
    sandbox: bool
    clock: Callable[[], float]
    link: Link = Link.CONNECTING
    error: str | None = None
    last_ok: float | None = None  # clock() of the last good answer
    info: BackendInfo | None = None
    next_retry: float | None = None  # clock() of the next reconnect attempt
    failures: int = field(default=0)
    error_from_health: bool = False
    startup: Callable[[], Startup] | None = None  # the embedded cluster's progress, if any
    identity: Whoami | None = None  # as the backend knows the operator; None = not known
    read_only: bool = False  # the console offers no change (``--read-only``)
    not_synced: SyncProgress | None = None  # a fleet endpoint's last "no fleet data yet"

    def ok(self) -> None:
        """A good answer arrived. It ends a "no fleet data yet" unless ``/info`` still says the
        backend has none (``/info`` answers before the fleet endpoints do)."""
        self.link = Link.CONNECTED
        self.error = None
        self.failures = 0
        self.next_retry = None
        self.last_ok = self.clock()
        freshness = self.info.freshness if self.info else None
        if freshness is None or (freshness.synced and freshness.sync is None):
            self.not_synced = None

    def not_ready(self, sync: SyncProgress) -> None:
        """The backend answers, but has no fleet data yet: no error of the link."""
        self.ok()
        self.not_synced = sync

    def sync(self) -> SyncProgress | None:
        """Why the backend has no fleet data yet, from ``/info`` or the last fleet answer; None
        once it has."""
        freshness = self.info.freshness if self.info else None
        if freshness is not None and freshness.sync is not None:
            return freshness.sync
        return self.not_synced

    def failed(self, message: str, link: Link, *, from_health: bool = False) -> None:
        self.link = link
        self.error = message
        self.error_from_health = from_health

    def health_clears(self) -> bool:
        """Whether a good ``/info`` answer ends the current trouble: yes when the backend was
        unreachable; not when a data endpoint answers errors while ``/info`` is fine."""
        return self.link is not Link.ERROR or self.error_from_health

    def data_age(self) -> float | None:
        """Seconds since the data on screen was true, or ``None`` before any data arrived."""
        freshness = self.info.freshness if self.info else None
        never_synced = self.sync() is not None or (freshness is not None and not freshness.synced)
        if self.last_ok is None or never_synced:
            return None
        age = max(0.0, self.clock() - self.last_ok)
        if freshness is not None and freshness.cluster_age_seconds is not None:
            age += max(0.0, freshness.cluster_age_seconds)
        return age

    def starting(self) -> Startup | None:
        """The embedded cluster's progress until the first good answer; None after, or when the
        console was pointed at a backend."""
        if self.startup is None or self.last_ok is not None:
            return None
        return self.startup()

    def shown_link(self) -> Link:
        """The link as the status bar says it: "starting" rather than "unreachable" while the
        embedded backend is still on its way."""
        progress = self.starting()
        if progress is not None and progress.error is None and self.link is not Link.CONNECTED:
            return Link.STARTING
        return self.link

    def banner(self) -> str | None:
        """The banner's line, or ``None`` while everything is fine."""
        notice = self.notice()
        return None if notice is None else notice.text

    def notice(self) -> Notice | None:
        """What the banner says, most urgent trouble first; ``None`` while everything is fine."""
        progress = self.starting()
        if progress is not None and progress.error is not None:
            return Notice(progress.error, "error")
        if progress is not None and self.link is not Link.CONNECTED:
            return Notice(f"{progress.stage} — no data yet", "info")
        if self.link in (Link.UNREACHABLE, Link.ERROR, Link.UNAUTHENTICATED):
            return Notice(self._link_trouble(), "error")
        freshness = self.info.freshness if self.info else None
        sync = self.sync()
        notices = []
        if sync is not None:
            notices.append(sync_notice(sync))
        elif freshness is not None and freshness.cluster_problem:
            syncing = not freshness.synced and not any(k.error for k in freshness.kinds)
            text = self._cluster_trouble(freshness.cluster_problem, freshness.synced)
            notices.append(Notice(text, "info" if syncing else "warning"))
        if freshness is not None:
            notices.extend(_telemetry_troubles(freshness))
        if not notices:
            return None
        level = max((n.level for n in notices), key=LEVELS.index)
        return Notice("\n".join(n.text for n in notices), level)

    def _link_trouble(self) -> str:
        parts = [self.error or "backend unreachable"]
        age = self.data_age()
        parts.append("no data yet" if age is None else f"showing data from {seconds_str(age)} ago")
        if self.next_retry is not None:
            parts.append(f"retrying in {seconds_str(self.next_retry - self.clock())}")
        return " — ".join(parts)

    def _cluster_trouble(self, problem: str, synced: bool) -> str:
        if not synced:
            return f"no fleet data yet — {problem}"
        age = self.data_age()
        shown = "" if age is None else f" — showing cluster data from {seconds_str(age)} ago"
        return f"cluster data is not current: {problem}{shown}"


def sync_notice(sync: SyncProgress) -> Notice:
    """``cluster not synced yet: 3 of 13 kinds listed — no fleet data yet``: information while
    the first sync runs, a warning when the API server answers errors, an error when it refuses
    the backend's credentials (the cluster's trouble, not the backend's)."""
    listed = f"{sync.kinds_listed} of {sync.kinds_total} kinds listed"
    error = sync.cluster_error or "an error"
    why, level = {
        SyncReason.SYNCING: (listed, "info"),
        SyncReason.BUILDING: (f"building the fleet model ({listed})", "info"),
        SyncReason.CLUSTER_ERROR: (f"the API server answers {error} ({listed})", "warning"),
        SyncReason.CLUSTER_UNAUTHORIZED: (
            f"the API server refuses the backend's credentials ({error})",
            "error",
        ),
    }[sync.reason]
    return Notice(f"cluster not synced yet: {why} — no fleet data yet", level)


def _telemetry_troubles(freshness: DataFreshness) -> list[Notice]:
    """A warning for each kind of telemetry with failing sources: GPU exporters, model servers."""
    notices = []
    if freshness.telemetry_errors:
        gpu = _sources_trouble(
            "telemetry",
            (freshness.telemetry_errors, freshness.telemetry_sources),
            freshness.telemetry_failures,
            ("GPU data", freshness.telemetry_age_seconds),
        )
        notices.append(Notice(gpu, "warning"))
    if freshness.inference_errors:
        served = _sources_trouble(
            "model server metrics",
            (freshness.inference_errors, freshness.inference_sources),
            freshness.inference_failures,
            ("endpoint data", freshness.inference_age_seconds),
        )
        notices.append(Notice(served, "warning"))
    return notices


def _sources_trouble(
    what: str,
    failing: tuple[int, int],
    failures: list[TelemetryFailure],
    age: tuple[str, float | None],
) -> str:
    """``telemetry: 2 of 12 sources failing — http://…: HTTP 500 (+1 more); GPU data 40 s old``."""
    errors, sources = failing
    text = f"{what}: {errors} of {sources} sources failing"
    if failures:
        first = failures[0]
        more = errors - 1
        text += f" — {first.source}: {first.error}" + (f" (+{more} more)" if more else "")
    if age[1] is not None:
        text += f"; {age[0]} {seconds_str(age[1])} old"
    return text
