"""What the console knows about its backend connection, in one place.

The status bar and the banner are drawn from this state, so they always agree, and the age of
the data is computed honestly: time since the last good answer plus how old the backend's own
picture of the cluster was at that moment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from backend.schemas import BackendInfo


class Link(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    UNREACHABLE = "unreachable"
    ERROR = "error"


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

    def ok(self) -> None:
        self.link = Link.CONNECTED
        self.error = None
        self.failures = 0
        self.next_retry = None
        self.last_ok = self.clock()

    def failed(self, message: str, unreachable: bool, *, from_health: bool = False) -> None:
        self.link = Link.UNREACHABLE if unreachable else Link.ERROR
        self.error = message
        self.error_from_health = from_health

    def health_clears(self) -> bool:
        """Whether a good ``/info`` answer ends the current trouble: yes when the backend was
        unreachable; not when a data endpoint answers errors while ``/info`` is fine."""
        return self.link is not Link.ERROR or self.error_from_health

    def data_age(self) -> float | None:
        """Seconds since the data on screen was true, or ``None`` before any data arrived."""
        if self.last_ok is None:
            return None
        age = max(0.0, self.clock() - self.last_ok)
        freshness = self.info.freshness if self.info else None
        if freshness is not None and freshness.cluster_age_seconds is not None:
            age += max(0.0, freshness.cluster_age_seconds)
        return age

    def banner(self) -> str | None:
        """The banner's line, or ``None`` while everything is fine."""
        if self.link in (Link.CONNECTED, Link.CONNECTING):
            return None
        parts = [self.error or "backend unreachable"]
        age = self.data_age()
        parts.append("no data yet" if age is None else f"showing data from {seconds_str(age)} ago")
        if self.next_retry is not None:
            parts.append(f"retrying in {seconds_str(self.next_retry - self.clock())}")
        return " — ".join(parts)
