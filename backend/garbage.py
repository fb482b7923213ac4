"""The cyclic garbage collector, for a process that holds a whole fleet in memory.

A large fleet's cache and model are millions of dicts, lists and models, and a full collection
of CPython's cyclic collector walks all of them with the GIL held: measured on the large sandbox
fleet, 1.3 s per full collection, five a minute, each one a stall of every request in flight
(the p99 of reads under load). Yet the fleet's objects need no cyclic collection: the cache's
parsed JSON and the immutable models hold no cycles, and reference counting frees them when a
watch event or a newer model replaces them.

So after each model the collector collects the young generations (the cycles just made, mostly
by requests) and then freezes everything still alive (``gc.freeze``): later collections skip
it, and reference counting still frees it. What became cyclic garbage after growing old is
caught by an occasional full collection of everything, unfrozen for it (``full_interval``):
one stall every ten minutes rather than five a minute.

From the start until the first model the collector is paused: the first lists allocate the
whole fleet, and each time the tracked objects grow by a quarter a full collection walked all of
them, more than half of the lists' time. The first model then freezes what lives without a young
collection: everything allocated during the pause is still young, and collecting it would walk
the whole fleet once more (~1 s of CPU on the large fleet, before the backend is ready).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

FIRST_SYNC_PAUSE = 120.0  # seconds the collector stays paused at most, waiting for a model
FULL_INTERVAL = 600.0  # seconds between two collections of everything


class FleetGarbage:
    """The collector's schedule in a backend process (see the module docstring)."""

    def __init__(
        self,
        *,
        freeze: bool = True,
        full_interval: float = FULL_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.freeze = freeze
        self.full_interval = full_interval
        self.clock = clock
        self.full_collections = 0
        self._last_full = clock()
        self._resume: asyncio.TimerHandle | None = None

    def pause(self) -> None:
        """Pause collection until ``resume`` or ``FIRST_SYNC_PAUSE`` seconds (on the loop)."""
        if gc.isenabled():
            gc.disable()
            loop = asyncio.get_running_loop()
            self._resume = loop.call_later(FIRST_SYNC_PAUSE, self.resume)

    def resume(self) -> bool:
        """Resume collection if paused; whether it was."""
        if self._resume is None:
            return False
        self._resume.cancel()
        self._resume = None
        gc.enable()
        return True

    def after_model(self) -> None:
        """A new model replaced the previous one: resume collection if paused, collect the
        young, freeze what lives; everything, unfrozen, once per ``full_interval``. After a
        pause, only freeze (see the module docstring)."""
        paused = self.resume()
        if not self.freeze or not gc.isenabled():
            return
        if paused:
            gc.freeze()
            return
        if self.clock() - self._last_full >= self.full_interval:
            gc.unfreeze()
            gc.collect()
            self.full_collections += 1
            self._last_full = self.clock()
        else:
            gc.collect(1)
        gc.freeze()
