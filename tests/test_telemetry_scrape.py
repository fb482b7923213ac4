"""TelemetryCollector against real HTTP exporters on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

import certifi
import pytest

from backend.telemetry.base import GPUS_PER_TURN, TelemetrySnapshot
from backend.telemetry.dcgm import GpuSample
from backend.telemetry.history import UtilizationHistory
from backend.telemetry.pages import (
    GROUPS_PER_SLICE,
    WORKER_NICENESS,
    PageGroup,
    PageResult,
    WorkerPages,
    tls_verification,
)
from backend.telemetry.scrape import ScrapeTarget, TelemetryCollector
from tests.support.exporters import Exporters, running_exporters


def exporter_text(node: str, utilization: float, gpus: int = 2) -> str:
    lines = [
        "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).",
        "# TYPE DCGM_FI_DEV_GPU_UTIL gauge",
    ]
    for gpu in range(gpus):
        labels = f'gpu="{gpu}", UUID="GPU-{node}-{gpu}",Hostname="{node}",pod="",namespace=""'
        lines.append(f"DCGM_FI_DEV_GPU_UTIL{{{labels}}} {utilization + gpu}")
        lines.append(f"DCGM_FI_DEV_FB_USED{{{labels}}} 1024")
    return "\n".join(lines) + "\n"


@pytest.fixture
def exporters() -> Iterator[Exporters]:
    with running_exporters() as state:
        yield state


# Pages read in the event loop, and in a worker process (the backend's default).
READERS = pytest.mark.parametrize("in_worker", [False, True], ids=["loop", "worker"])


def worker_collector(
    exporters: Exporters, utilization: float
) -> tuple[TelemetryCollector, WorkerPages]:
    """A collector of one exporter (``/a``: node-a's GPU at ``utilization``) that reads its
    pages in a worker process, and that reader."""
    exporters.responses["/a"] = (200, exporter_text("node-a", utilization))
    collector = TelemetryCollector(lambda: [exporters.target("/a")], in_worker=True)
    assert isinstance(collector.pages, WorkerPages)
    return collector, collector.pages


async def test_a_worker_that_dies_fails_one_round_and_the_next_starts_a_new_one(
    exporters: Exporters,
) -> None:
    """Killed between rounds (out of memory, an operator's kill): the round that finds it dead
    counts every exporter as failed, keeping their last samples; the next round reads again."""
    collector, pages = worker_collector(exporters, 10)
    try:
        await collector.scrape_once()
        first = await pages.worker_pid()
        os.kill(first, signal.SIGKILL)
        await asyncio.sleep(0.5)  # the pool notices its worker is gone
        exporters.responses["/a"] = (200, exporter_text("node-a", 20))
        await collector.scrape_once()
        dead = collector.snapshot()
        await collector.scrape_once()
        second = await pages.worker_pid()
    finally:
        await collector.stop()
    assert dead.errors == 1 and "worker process stopped" in collector_error(dead)
    assert dead.samples["GPU-node-a-0"].utilization == 10.0  # the last sample, kept
    assert second != first
    assert collector.snapshot().errors == 0
    assert collector.snapshot().samples["GPU-node-a-0"].utilization == 20.0


async def test_the_worker_reads_at_a_lower_cpu_priority_than_the_backend(
    exporters: Exporters,
) -> None:
    """Parsing a round is background work: the worker yields the CPU to the requests."""
    collector, pages = worker_collector(exporters, 10)
    try:
        await collector.scrape_once()
        worker = await pages.worker_pid()
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, worker) == min(own + WORKER_NICENESS, 19)
    finally:
        await collector.stop()
    assert collector.snapshot().samples["GPU-node-a-0"].utilization == 10.0


async def test_a_worker_round_of_several_slices_comes_back_whole_and_in_order(
    exporters: Exporters,
) -> None:
    """The worker sends its results in slices of GROUPS_PER_SLICE exporters: two full slices
    and one of a single exporter, with failures among them, each result still its target's."""
    count = 2 * GROUPS_PER_SLICE + 1
    for n in range(count):
        exporters.responses[f"/{n}"] = (200, exporter_text(f"node-{n}", n, gpus=1))
    failing = {5, GROUPS_PER_SLICE, count - 1}  # in the first, second and last slice
    for n in failing:
        exporters.responses[f"/{n}"] = (503, "busy")
    targets = [exporters.target(f"/{n}") for n in range(count)]
    collector = TelemetryCollector(lambda: targets, in_worker=True)
    try:
        await collector.scrape_once()
    finally:
        await collector.stop()
    snapshot = collector.snapshot()
    assert set(snapshot.failures) == {f"{exporters.url}/{n}" for n in failing}
    read = {uuid: gpu.utilization for uuid, gpu in snapshot.samples.items()}
    assert read == {f"GPU-node-{n}-0": float(n) for n in range(count) if n not in failing}


class ReadyPages:
    """Pages already read: answers at once, without a turn of the event loop."""

    def __init__(self, results: list[PageResult]) -> None:
        self.results = results
        self.answered = False

    async def read(self, groups: Sequence[PageGroup]) -> list[PageResult]:
        self.answered = True
        return self.results

    async def close(self) -> None:
        pass


async def test_a_large_round_lets_the_event_loop_turn_between_its_slices() -> None:
    """A large fleet's results are taken in on the backend's event loop in slices, so that the
    requests in flight are answered in between: once read, a turn before and after screening
    the round, and one per GPUS_PER_TURN GPUs recorded (3 slices, 2 turns between them)."""
    nodes = ["node-a", "node-b", "node-c"]
    results: list[PageResult] = [
        (
            [
                gpu_sample(f"GPU-{node}-{i}", node, utilization=i % 100)
                for i in range(GPUS_PER_TURN)
            ],
            None,
        )
        for node in nodes
    ]
    collector = TelemetryCollector(lambda: [ScrapeTarget(f"http://{n}", node=n) for n in nodes])
    pages = collector.pages = ReadyPages(results)
    turns = await loop_turns_during(collector.scrape_once(), since=lambda: pages.answered)
    assert turns == 2 + 2
    snapshot = collector.snapshot()
    assert len(snapshot.samples) == len(snapshot.history) == 3 * GPUS_PER_TURN
    assert snapshot.history[f"GPU-node-c-{GPUS_PER_TURN - 1}"] == ((GPUS_PER_TURN - 1) % 100,)


async def test_the_targets_are_looked_for_in_a_thread(exporters: Exporters) -> None:
    """Finding the exporters looks at every pod of the fleet: not on the event loop."""
    exporters.responses["/a"] = (200, exporter_text("node-a", 10, gpus=1))
    asked_in: list[threading.Thread] = []

    def targets() -> list[ScrapeTarget]:
        asked_in.append(threading.current_thread())
        return [exporters.target("/a")]

    collector = TelemetryCollector(targets)
    try:
        await collector.scrape_once()
    finally:
        await collector.stop()
    assert asked_in and threading.main_thread() not in asked_in
    assert collector.snapshot().samples["GPU-node-a-0"].utilization == 10.0


def gpu_sample(uuid: str, node: str, utilization: float) -> GpuSample:
    return GpuSample(uuid, 0, node, "NVIDIA H100", None, None, None, None, utilization)


async def loop_turns_during(work: Coroutine[Any, Any, None], since: Callable[[], bool]) -> int:
    """How many times ``work`` let the event loop run another task once ``since()`` was true."""
    turns = 0
    done = False

    async def count() -> None:
        nonlocal turns
        while not done:
            await asyncio.sleep(0)
            turns += since()

    counter = asyncio.create_task(count())
    await asyncio.sleep(0)  # the counter waits for its first turn
    start = turns
    await work
    during = turns - start
    done = True
    await counter
    return during


def collector_error(snapshot: TelemetrySnapshot) -> str:
    return next(iter(snapshot.failures.values()))


@READERS
async def test_round_with_one_failing_exporter(exporters: Exporters, in_worker: bool) -> None:
    exporters.responses["/a"] = (200, exporter_text("node-a", 10))
    exporters.responses["/b"] = (200, exporter_text("node-b", 50))
    exporters.responses["/broken"] = (500, "boom")
    targets = [exporters.target("/a"), exporters.target("/b"), exporters.target("/broken")]
    collector = TelemetryCollector(lambda: targets, history_length=3, in_worker=in_worker)
    try:
        assert collector.snapshot().completed_at is None
        await collector.scrape_once()
    finally:
        await collector.stop()
    snapshot = collector.snapshot()
    assert collector.version == 1
    assert (snapshot.sources, snapshot.errors) == (3, 1)
    assert "500" in collector.last_errors[f"{exporters.url}/broken"]
    assert set(snapshot.samples) == {"GPU-node-a-0", "GPU-node-a-1", "GPU-node-b-0", "GPU-node-b-1"}
    gpu = snapshot.samples["GPU-node-b-1"]
    assert (gpu.node, gpu.utilization, gpu.fb_used_mib, gpu.pod) == ("node-b", 51.0, 1024.0, None)
    assert snapshot.history["GPU-node-a-0"] == (10.0,)
    assert snapshot.completed_at is not None


@READERS
async def test_failing_exporter_keeps_its_last_samples_which_age(
    exporters: Exporters, in_worker: bool
) -> None:
    exporters.responses["/a"] = (200, exporter_text("node-a", 10))
    exporters.responses["/b"] = (200, exporter_text("node-b", 50))
    targets = [exporters.target("/a"), exporters.target("/b")]
    collector = TelemetryCollector(lambda: targets, history_length=3, in_worker=in_worker)
    try:
        await collector.scrape_once()
        first = collector.snapshot()
        exporters.responses["/a"] = (200, exporter_text("node-a", 20))
        exporters.responses["/b"] = (503, "unavailable")
        await collector.scrape_once()
    finally:
        await collector.stop()
    second = collector.snapshot()
    assert collector.version == 2
    assert (second.sources, second.errors) == (2, 1)
    assert second.samples["GPU-node-a-0"].utilization == 20.0
    kept = second.samples["GPU-node-b-0"]
    assert kept is first.samples["GPU-node-b-0"]  # the last sample, with its old sampled_at
    assert kept.sampled_at < second.samples["GPU-node-a-0"].sampled_at
    assert second.history["GPU-node-a-0"] == (10.0, 20.0)
    assert second.history["GPU-node-b-0"] == (50.0, None)  # a gap while the exporter is down
    # the earlier snapshot is immutable: readers holding it see the first round
    assert first.samples["GPU-node-a-0"].utilization == 10.0
    assert first.history["GPU-node-a-0"] == (10.0,)


async def test_a_round_where_every_exporter_failed_keeps_the_age_and_names_them(
    exporters: Exporters,
) -> None:
    exporters.responses["/a"] = (200, exporter_text("node-a", 10))
    targets = [exporters.target("/a"), exporters.target("/b")]
    exporters.responses["/b"] = (200, exporter_text("node-b", 10))
    collector = TelemetryCollector(lambda: targets, history_length=3)
    try:
        await collector.scrape_once()
        read_at = collector.snapshot().completed_at
        exporters.responses["/a"] = (500, "boom")
        exporters.responses["/b"] = (503, "unavailable")
        await asyncio.sleep(0.05)
        await collector.scrape_once()
    finally:
        await collector.stop()
    snapshot = collector.snapshot()
    assert snapshot.completed_at == read_at  # nothing was read: the data is as old as before
    assert (snapshot.sources, snapshot.errors) == (2, 2)
    assert "500" in snapshot.failures[f"{exporters.url}/a"]
    assert "503" in snapshot.failures[f"{exporters.url}/b"]


async def test_history_is_a_ring_buffer(exporters: Exporters) -> None:
    targets = [exporters.target("/a")]
    collector = TelemetryCollector(lambda: targets, history_length=3)
    try:
        for value in (1, 2, 3, 4, 5):
            exporters.responses["/a"] = (200, exporter_text("node-a", value, gpus=1))
            await collector.scrape_once()
    finally:
        await collector.stop()
    assert collector.version == 5
    assert collector.snapshot().history["GPU-node-a-0"] == (3.0, 4.0, 5.0)


async def test_targets_are_read_each_round_and_removed_ones_are_forgotten(
    exporters: Exporters,
) -> None:
    exporters.responses["/a"] = (200, exporter_text("node-a", 10, gpus=1))
    exporters.responses["/b"] = (200, exporter_text("node-b", 10, gpus=1))
    targets = [exporters.target("/a"), exporters.target("/b")]
    collector = TelemetryCollector(lambda: list(targets))
    try:
        await collector.scrape_once()
        assert set(collector.snapshot().samples) == {"GPU-node-a-0", "GPU-node-b-0"}
        targets.pop()
        await collector.scrape_once()
    finally:
        await collector.stop()
    snapshot = collector.snapshot()
    assert set(snapshot.samples) == {"GPU-node-a-0"}
    assert set(snapshot.history) == {"GPU-node-a-0"}
    assert snapshot.sources == 1


async def test_headers_and_node_of_the_target(exporters: Exporters) -> None:
    exporters.responses["/proxy"] = (200, exporter_text("dcgm-exporter-x7k2p", 10, gpus=1))
    target = exporters.target("/proxy", node="gpu-node-07", Authorization="Bearer t0ken")
    target.pod = "dcgm-exporter-x7k2p"
    collector = TelemetryCollector(lambda: [target])
    try:
        await collector.scrape_once()
    finally:
        await collector.stop()
    assert exporters.headers["/proxy"]["Authorization"] == "Bearer t0ken"
    assert "text/plain" in exporters.headers["/proxy"]["Accept"]
    # the pod's node wins over a Hostname label that names the exporter pod (its hostname
    # when it runs without NODE_NAME)
    snapshot = collector.snapshot()
    assert snapshot.samples["GPU-dcgm-exporter-x7k2p-0"].node == "gpu-node-07"
    assert not snapshot.failures


async def test_garbage_and_unreachable_exporters_are_errors_not_crashes(
    exporters: Exporters,
) -> None:
    exporters.responses["/html"] = (200, "<html>login</html>")
    exporters.responses["/slow"] = (200, exporter_text("node-s", 1))
    exporters.delay["/slow"] = 1.0
    targets = [
        exporters.target("/html"),
        exporters.target("/slow"),
        ScrapeTarget(url="http://127.0.0.1:9/metrics"),  # nothing listens on port 9
    ]
    collector = TelemetryCollector(lambda: targets, timeout=0.3)
    try:
        await collector.scrape_once()
    finally:
        await collector.stop()
    snapshot = collector.snapshot()
    assert (snapshot.sources, snapshot.errors, snapshot.samples) == (3, 3, {})
    assert collector.version == 1
    errors = collector.last_errors
    assert "not Prometheus text format" in errors[f"{exporters.url}/html"]
    assert "timed out" in errors[f"{exporters.url}/slow"]


async def test_start_runs_rounds_until_stopped(exporters: Exporters) -> None:
    exporters.responses["/a"] = (200, exporter_text("node-a", 10, gpus=1))
    targets = [exporters.target("/a")]
    collector = TelemetryCollector(lambda: targets, interval=0.01)
    await collector.start()
    try:
        for _ in range(500):
            if collector.version >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        await collector.stop()
    assert collector.version >= 3
    stopped_at = collector.version
    await asyncio.sleep(0.05)
    assert collector.version == stopped_at
    assert collector.snapshot() is collector.snapshot()  # no copying per read


async def test_a_failing_targets_callable_does_not_kill_the_loop(exporters: Exporters) -> None:
    exporters.responses["/a"] = (200, exporter_text("node-a", 10, gpus=1))
    calls = 0

    def targets() -> list[ScrapeTarget]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("cluster cache not synced")
        return [exporters.target("/a")]

    collector = TelemetryCollector(targets, interval=0.01)
    await collector.start()
    try:
        for _ in range(500):
            if collector.version >= 1:
                break
            await asyncio.sleep(0.01)
    finally:
        await collector.stop()
    assert calls >= 2
    assert "GPU-node-a-0" in collector.snapshot().samples


def test_tls_verification_accepts_a_ca_file_path(tmp_path: Path) -> None:
    assert isinstance(tls_verification(certifi.where()), ssl.SSLContext)
    assert isinstance(tls_verification(str(tmp_path)), ssl.SSLContext)  # a folder of CAs
    assert tls_verification(False) is False
    context = ssl.create_default_context()
    assert tls_verification(context) is context


def test_utilization_history_unit() -> None:
    history = UtilizationHistory(2)
    for value in (1.0, None, 3.0):
        history.append("a", value)
    history.append("b", 5.0)
    frozen = history.freeze()
    assert frozen == {"a": (None, 3.0), "b": (5.0,)}
    history.append("a", 4.0)
    assert frozen["a"] == (None, 3.0)  # a frozen copy does not move
    history.retain(["b"])
    assert len(history) == 1 and history.freeze() == {"b": (5.0,)}
    with pytest.raises(ValueError, match="at least 1"):
        UtilizationHistory(0)
