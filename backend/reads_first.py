"""Requests before the fleet model: the model's worker thread gives way to requests in flight.

The backend answers requests on its event loop and brings the fleet model up to date in a worker
thread, and both need the GIL. The loop gives the GIL up at every socket call and gets it back
only when the worker is made to yield (``sys.setswitchinterval``), so while a model is made each
request in flight waits once per socket call. On the large fleet with the sandbox's clock
running, the model is updated every second or so (~0.1 s of CPU each, more while a telemetry
round steps in), and the reads in flight meanwhile were among the slowest under load.

So the model's code marks the points where it may pause (``give_way``: between its stages and
every few nodes), and the backend's worker pauses there while requests are in flight: at most
``POINT_LIMIT`` at one point and ``BUDGET`` in one model, so that under a steady load a model is
late by at most the budget, and an idle backend's never waits.

Work done on the event loop itself holds every request up for as long as it runs: a telemetry
round's results (8,000 GPUs on the large fleet) are taken in slices (``in_turns``), and the
loop answers the requests that came in between two slices.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")
POINT_LIMIT = 0.02  # seconds a model waits at most at one point
BUDGET = 0.25  # seconds a model waits at most in all
POLL = 0.001  # seconds between two looks at the requests in flight

_pause: ContextVar[Callable[[], None] | None] = ContextVar("reads_first_pause", default=None)


def give_way() -> None:
    """A point where the model being made may pause for requests in flight (a no-op outside
    ``RequestsInFlight.giving_way``, as in tests and benchmarks that build models directly)."""
    pause = _pause.get()
    if pause is not None:
        pause()


async def in_turns(items: Sequence[T], size: int) -> AsyncIterator[Sequence[T]]:
    """``items`` in slices of ``size``, the event loop running its other tasks (the requests in
    flight) between two slices."""
    for start in range(0, len(items), size):
        if start:
            await asyncio.sleep(0)
        yield items[start : start + size]


class RequestsInFlight:
    """How many HTTP requests are being answered (counted on the event loop), and the pauses
    of a model made meanwhile."""

    def __init__(
        self,
        *,
        point_limit: float = POINT_LIMIT,
        budget: float = BUDGET,
        poll: float = POLL,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.count = 0
        self.point_limit = point_limit
        self.budget = budget
        self.poll = poll
        self.clock = clock
        self.sleep = sleep
        self.paused_seconds = 0.0  # in all models, for ``/metrics``

    @contextmanager
    def set_aside(self) -> Iterator[None]:
        """Within it, the request that waits for a model does not count (the model would give
        way to the very request that waits for it)."""
        self.count -= 1
        try:
            yield
        finally:
            self.count += 1

    @contextmanager
    def giving_way(self) -> Iterator[None]:
        """Within it (in the thread that makes a model), ``give_way`` pauses while requests are
        in flight, within the limits."""
        left = self.budget

        def pause() -> None:
            nonlocal left
            if self.count <= 0 or left <= 0:
                return
            start = self.clock()
            end = start + min(self.point_limit, left)
            while self.count > 0 and self.clock() < end:
                self.sleep(self.poll)
            waited = self.clock() - start
            left -= waited
            self.paused_seconds += waited

        token = _pause.set(pause)
        try:
            yield
        finally:
            _pause.reset(token)
