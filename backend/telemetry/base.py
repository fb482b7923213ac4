"""What every telemetry source shares: the snapshot it publishes and its round loop.

A source works in rounds (scrape all exporters, or read all local GPUs). Only a finished round
changes what readers see: it publishes an immutable TelemetrySnapshot and bumps ``version``, so
the fleet model can rebuild when, and only when, the telemetry changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from backend.reads_first import in_turns
from backend.telemetry.dcgm import GpuSample
from backend.telemetry.history import UtilizationHistory

log = logging.getLogger(__name__)

# GPUs a round handles between two turns of the event loop (a few ms of CPU on a slow core): a
# large fleet's round would otherwise hold every request in flight for ~0.1 s.
GPUS_PER_TURN = 512


class TelemetryUnavailable(RuntimeError):
    """The telemetry source cannot work on this host at all (e.g. no NVIDIA driver)."""


@dataclass(frozen=True, slots=True)
class TelemetrySnapshot:
    """The newest complete round; built once per round, shared by every reader."""

    samples: Mapping[str, GpuSample] = field(default_factory=dict)  # by (MIG-aware) uuid
    history: Mapping[str, Sequence[float | None]] = field(default_factory=dict)  # oldest first
    completed_at: float | None = None  # time.time() of the newest round that read something
    sources: int = 0  # exporters (or NVML hosts) in the round
    failures: Mapping[str, str] = field(default_factory=dict)  # source -> why it failed

    @property
    def errors(self) -> int:
        """Sources whose last scrape failed."""
        return len(self.failures)


class Periodic:
    """Runs ``run_round`` every ``interval`` seconds in a background task until stopped; a round
    that fails is logged and the next one still comes on time (a source that is down for a
    while must not stop being retried)."""

    interval: float
    _task: asyncio.Task[None] | None = None

    async def run_round(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def start(self) -> None:
        """Start rounds in the background; the first one begins immediately."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=type(self).__name__)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.run_round()
            except Exception:
                log.exception("%s: a round failed", type(self).__name__)
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))


class RoundCollector(Periodic):
    """Runs ``scrape_once`` every ``interval`` seconds and publishes its results."""

    def __init__(self, *, interval: float = 10.0, history_length: int = 60) -> None:
        self.interval = interval
        self.version = 0
        self.last_round_seconds: float | None = None
        self._history = UtilizationHistory(history_length)
        self._snapshot = TelemetrySnapshot()

    def snapshot(self) -> TelemetrySnapshot:
        """The newest complete round (no copying: it was frozen when the round ended)."""
        return self._snapshot

    async def scrape_once(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def run_round(self) -> None:
        await self.scrape_once()

    async def _publish(
        self,
        samples: dict[str, GpuSample],
        fresh: set[str],
        *,
        sources: int,
        failures: Mapping[str, str],
        started: float,
    ) -> None:
        """End a round: extend the history (None for GPUs not read this round), freeze, bump.

        A round in which every source failed read nothing: the data's age keeps counting from
        the last round that read something."""
        failed_all = sources > 0 and len(failures) >= sources and not fresh
        async for batch in in_turns(list(samples.items()), GPUS_PER_TURN):
            for uuid, sample in batch:
                self._history.append(uuid, sample.utilization if uuid in fresh else None)
        self._history.retain(samples)
        self._snapshot = TelemetrySnapshot(
            samples=samples,
            history=self._history.freeze(),
            completed_at=self._snapshot.completed_at if failed_all else time.time(),
            sources=sources,
            failures=dict(failures),
        )
        self.last_round_seconds = time.monotonic() - started
        self.version += 1
