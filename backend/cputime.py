"""CPU seconds spent per kind of background work, since the process started.

The backend's process CPU (``process_cpu_seconds_total`` on ``/metrics``) says how busy it is,
not what for. Work that runs on its own schedule (alert evaluations, cost answers) is wrapped in
``accounted``, which adds the CPU time of the thread that ran it (``time.thread_time``: time
other threads spend meanwhile is not counted) to a process-wide counter, shown on ``/metrics``
next to the process CPU, so that its share can be read off a running backend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_spent: dict[str, float] = {}


@contextmanager
def accounted(work: str) -> Iterator[None]:
    """Count the calling thread's CPU time inside the block as ``work``'s."""
    started = time.thread_time()
    try:
        yield
    finally:
        seconds = time.thread_time() - started
        with _lock:
            _spent[work] = _spent.get(work, 0.0) + seconds


def spent() -> dict[str, float]:
    """CPU seconds per kind of work so far."""
    with _lock:
        return dict(_spent)
