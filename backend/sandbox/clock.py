"""The sandbox's notion of "now": real time, or a frozen instant for reproducible snapshots."""

from __future__ import annotations

from datetime import UTC, datetime


class Clock:
    """``now()`` is wall-clock UTC, or ``frozen`` when one is given (tests, screenshots)."""

    def __init__(self, frozen: datetime | None = None) -> None:
        if frozen is not None and frozen.tzinfo is None:
            frozen = frozen.replace(tzinfo=UTC)
        self.frozen = frozen

    def now(self) -> datetime:
        return self.frozen if self.frozen is not None else datetime.now(UTC)

    def rfc3339(self) -> str:
        """Kubernetes' timestamp format, e.g. ``2026-11-29T02:06:34Z``."""
        return self.now().strftime("%Y-%m-%dT%H:%M:%SZ")
