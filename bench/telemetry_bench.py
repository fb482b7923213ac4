"""Time parsing one telemetry round of a large fleet (not a test).

A round is what the collector parses every interval: one DCGM exporter text per node, here
1,000 nodes x 8 GPUs x 10 fields, written the way dcgm-exporter writes them. Prints the median
of several runs for the reference parser (prometheus_client), the fast path, the whole
``parse_dcgm`` on both, and one TelemetryCollector round against exporters served in the same
event loop (the collector's own CPU cost per round: requests, parsing, history, snapshot).

Then the round as the backend reads it, in a worker process, from exporters served by another
process: the longest the event loop was kept from its other tasks meanwhile (a request in flight
waits that long), median over the rounds after the first (the first starts the worker).

    .venv/bin/python -m bench.telemetry_bench [--nodes 1000] [--gpus 8] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import socket
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from backend.telemetry.dcgm import FIELDS, parse_dcgm
from backend.telemetry.prometheus import parse_samples_fast, parse_samples_reference
from backend.telemetry.scrape import ScrapeTarget, TelemetryCollector


def exporter_text(node: str, gpus: int, rng: random.Random) -> str:
    """One node's exporter output: HELP/TYPE per field, then a series per GPU."""
    pods = [f"w-{rng.randrange(99999)}" for _ in range(gpus)]
    lines: list[str] = []
    for field in FIELDS:
        kind = "counter" if field.endswith("ENERGY_CONSUMPTION") else "gauge"
        lines += [f"# HELP {field} {field.lower()}.", f"# TYPE {field} {kind}"]
        for gpu in range(gpus):
            pod = f'pod="{pods[gpu]}",namespace="team-{gpu}",container="main"'
            labels = (
                f'gpu="{gpu}",UUID="GPU-{node}-{gpu:04d}",pci_bus_id="00000000:{gpu:02X}:00.0",'
                f'device="nvidia{gpu}",modelName="NVIDIA H100 80GB HBM3",Hostname="{node}",'
                f"{pod}"
            )
            lines.append(f"{field}{{{labels}}} {rng.uniform(0, 100):.3f}")
    return "\n".join(lines) + "\n"


def median_seconds(work: Callable[[], object], runs: int) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def collector_round(texts: list[str], runs: int) -> float:
    """Median seconds of a complete collector round against exporters on a local HTTP server."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=texts[int(request.match_info["n"])])

    async def rounds() -> float:
        app = web.Application()
        app.router.add_get("/{n}", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        targets = [
            ScrapeTarget(url=f"http://127.0.0.1:{port}/{n}", node=f"node-{n:04d}")
            for n in range(len(texts))
        ]
        collector = TelemetryCollector(lambda: targets)
        timings = []
        try:
            for _ in range(runs):
                start = time.perf_counter()
                await collector.scrape_once()
                timings.append(time.perf_counter() - start)
        finally:
            await collector.stop()
            await runner.cleanup()
        assert collector.snapshot().errors == 0
        return statistics.median(timings)

    return asyncio.run(rounds())


def serve_texts(texts: list[str], port: int) -> None:
    """In a process of its own: ``/<n>`` answers the n-th exporter text."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=texts[int(request.match_info["n"])])

    app = web.Application()
    app.router.add_get("/{n}", answer)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def worker_round_stalls(texts: list[str], runs: int) -> tuple[float, float]:
    """Median seconds of a worker round, and median of each round's longest stall of the loop."""
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=serve_texts, args=(texts, port), daemon=True
    )
    server.start()
    try:
        return asyncio.run(_worker_rounds(len(texts), port, runs))
    finally:
        server.terminate()
        server.join()


async def _worker_rounds(count: int, port: int, runs: int) -> tuple[float, float]:
    targets = [
        ScrapeTarget(url=f"http://127.0.0.1:{port}/{n}", node=f"node-{n:04d}") for n in range(count)
    ]
    await _wait_for_port(port)
    collector = TelemetryCollector(lambda: targets, in_worker=True)
    rounds, stalls = [], []
    try:
        for run in range(runs + 1):
            start = time.perf_counter()
            stall = await longest_stall(collector.scrape_once())
            if run:  # the first round starts the worker process
                rounds.append(time.perf_counter() - start)
                stalls.append(stall)
    finally:
        await collector.stop()
    assert collector.snapshot().errors == 0, collector.snapshot().failures
    return statistics.median(rounds), statistics.median(stalls)


async def longest_stall(work: Coroutine[Any, Any, None]) -> float:
    """The longest time, in seconds, that the event loop ran nothing else while ``work`` ran:
    a task that takes every turn of the loop measures the gaps between its turns."""
    gaps: list[float] = []
    done = False

    async def every_turn() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    watcher = asyncio.create_task(every_turn())
    await work
    done = True
    await watcher
    return max(gaps, default=0.0)


async def _wait_for_port(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise RuntimeError(f"the exporters did not start on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(1)
    texts = [exporter_text(f"node-{n:04d}", args.gpus, rng) for n in range(args.nodes)]
    lines = sum(text.count("\n") for text in texts)
    print(f"{args.nodes} nodes x {args.gpus} GPUs, {lines} lines, {args.runs} runs (median):")
    cases: dict[str, Callable[[], object]] = {
        "reference parser (prometheus_client)": lambda: [parse_samples_reference(t) for t in texts],
        "fast path": lambda: [parse_samples_fast(t) for t in texts],
        "parse_dcgm, reference": lambda: [parse_dcgm(t, fast=False) for t in texts],
        "parse_dcgm, fast": lambda: [parse_dcgm(t) for t in texts],
    }
    for label, work in cases.items():
        print(f"  {label:40s} {median_seconds(work, args.runs):7.3f} s")
    print(
        f"  {'collector round (exporters in this loop)':40s} {collector_round(texts, args.runs):7.3f} s"
    )
    seconds, stall = worker_round_stalls(texts, args.runs)
    print(f"  {'round read in a worker process':40s} {seconds:7.3f} s")
    print(f"  {'  longest stall of the event loop':40s} {stall * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
