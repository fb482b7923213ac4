"""``backend.cputime``: the CPU a kind of work spends, counted per thread, shown on /metrics."""

from __future__ import annotations

import threading
import time

from backend.cputime import accounted, spent


def busy(seconds: float) -> None:
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        pass


def test_the_block_counts_its_threads_cpu_not_its_waits() -> None:
    before = spent().get("test-busy", 0.0)
    with accounted("test-busy"):
        busy(0.05)
        time.sleep(0.1)
    added = spent()["test-busy"] - before
    assert 0.05 <= added < 0.09


def test_other_threads_working_meanwhile_are_not_counted() -> None:
    before = spent().get("test-alone", 0.0)
    other = threading.Thread(target=busy, args=(0.2,))
    with accounted("test-alone"):
        other.start()
        other.join()
    assert spent()["test-alone"] - before < 0.05
