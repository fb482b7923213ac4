"""TelemetryCollector: scrape every DCGM exporter of the fleet, concurrently, in rounds.

The HTTP client is aiohttp (already required by ``kubernetes.aio``): measured against 1,000
exporters behind the sandbox's pod proxy, a round cost 0.25 s of CPU with aiohttp and 5.4 s with
httpx, whose connection pool dominated the backend's CPU at fleet scale. The pages are read and
parsed in a worker process (``in_worker``) or in the event loop (``backend.telemetry.pages``).

Targets come from a callable evaluated in a thread at the start of each round (the cluster
cache knows which exporter pods exist now; a callable that reads it takes its pods at once).
Each target speaks only for the GPUs of its node (``backend.telemetry.trust``): refused samples
make the target a failure of the round. A target may name an HTTP proxy, as a kubeconfig's
``proxy-url`` does for the API server. A failing
exporter does not fail the round: it is counted in ``errors`` and its GPUs keep their last
sample, whose ``sampled_at`` then shows its age. GPUs of targets that are no longer listed are
dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from backend.telemetry.base import RoundCollector
from backend.telemetry.dcgm import GpuSample, parse_dcgm
from backend.telemetry.pages import FetchOptions, PageGroup, Verify, page_reader
from backend.telemetry.trust import Origin, Report, screen


@dataclass
class ScrapeTarget:
    """One exporter endpoint; ``node`` is the node its pod runs on and ``pod`` its pod's name,
    when known; ``proxy`` the HTTP proxy that reaches it, if any."""

    url: str
    node: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    pod: str | None = None
    proxy: str | None = None

    def origin(self) -> Origin:
        return Origin(source=self.url, node=self.node, pod=self.pod)


def exporter_gpus(texts: list[str], node: str | None) -> list[GpuSample]:
    """An exporter's page as its GPUs (the parser of a scrape's page group)."""
    return parse_dcgm(texts[0], node=node)


class TelemetryCollector(RoundCollector):
    """Scrapes DCGM exporters every ``interval`` seconds; see the module docstring."""

    def __init__(
        self,
        targets: Callable[[], list[ScrapeTarget]],
        *,
        interval: float = 10.0,
        history_length: int = 60,
        concurrency: int = 64,
        verify: Verify = True,
        timeout: float = 5.0,
        in_worker: bool = False,
    ) -> None:
        super().__init__(interval=interval, history_length=history_length)
        self.targets = targets
        self.pages = page_reader(FetchOptions(verify, concurrency, timeout), in_worker)
        self.last_errors: dict[str, str] = {}  # url -> why its last scrape failed
        self._by_target: dict[str, list[GpuSample]] = {}

    async def stop(self) -> None:
        await super().stop()
        await self.pages.close()

    async def scrape_once(self) -> None:
        """One complete round over the current targets, then publish it."""
        started = time.monotonic()
        targets, groups = await asyncio.to_thread(self._current_targets)
        results = await self.pages.read(groups)
        errors: dict[str, str] = {}
        reports: list[Report] = []
        for target, (gpus, error) in zip(targets, results, strict=True):
            if error is not None:
                errors[target.url] = error
                gpus = self._by_target.get(target.url, [])
            reports.append((target.origin(), gpus))
        owners = {gpu.uuid: gpu.node for gpus in self._by_target.values() for gpu in gpus}
        await asyncio.sleep(0)  # the requests that came in meanwhile first (GPUS_PER_TURN)
        accepted, refused = screen(reports, owners)
        await asyncio.sleep(0)
        by_target = {t.url: gpus for t, gpus in zip(targets, accepted, strict=True)}
        fresh = {gpu.uuid for url, gpus in by_target.items() if url not in errors for gpu in gpus}
        errors = {**refused, **errors}
        self._by_target = by_target
        self.last_errors = errors
        samples = {gpu.uuid: gpu for gpus in by_target.values() for gpu in gpus}
        await self._publish(samples, fresh, sources=len(targets), failures=errors, started=started)

    def _current_targets(self) -> tuple[list[ScrapeTarget], list[PageGroup]]:
        """The targets now, each URL once, and their pages (in a thread: finding the exporters
        looks at every pod of the fleet, ~20 ms of CPU on the large one)."""
        targets = list({target.url: target for target in self.targets()}.values())
        return targets, [_group(target) for target in targets]


def _group(target: ScrapeTarget) -> PageGroup:
    return PageGroup(
        (target.url,), exporter_gpus, (target.node,), headers=target.headers, proxy=target.proxy
    )
