"""First full sync against its floor, alternately, on one sandbox.

Starts one ``opsconsole sandbox`` (``--fleet large`` by default), then ``--runs`` times in turn:

- the floor (``bench/floor_client.py``): a bare client, its own process, that pages through the
  kinds the backend's cache watches with the cache's page size and parses each page with orjson,
  timed from process start to its exit;
- ``opsconsole serve``, timed from process start until ``/readyz`` answers 200 (the fleet model
  built from every kind's first list), then stopped. Its tree's bytecode is written first, as
  installing the package writes it (``backend_bench.compile_sources``).

With ``--base-tree DIR`` (a checkout of another commit), each round also times ``opsconsole
serve`` from that tree's code, so that a change to the start-up is measured before and after in
the same run. Alternating on the same sandbox means all see the same machine load. Each run also
counts the CPU seconds of its process (the floor's until its exit, the backend's until
``/readyz``), which a busy machine distorts less than the wall clock. Prints each run with the
load average, the medians and their ratio to the floor, and, for the last backend run, its log
lines as seconds from process start (where the backend's time goes); writes
``bench/results/sync.json``. ``--kubeconfig`` uses a sandbox that is already running.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import cast

from backend.cluster.cache import KIND_SPECS, CacheOptions
from bench.backend_bench import RESULTS, compile_sources, start_backend, start_sandbox


def list_paths() -> list[str]:
    """The list URL path of every watched kind, at the first version the cache tries."""
    return [spec.path(spec.versions[0]) for spec in KIND_SPECS.values()]


def run_floor(kubeconfig: Path) -> tuple[float, float]:
    """Seconds from the floor client's process start to its exit, and its CPU seconds."""
    command = [sys.executable, "-m", "bench.floor_client", str(kubeconfig)]
    command += [str(CacheOptions().page_size), *list_paths()]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def cpu_seconds(pid: int) -> float:
    """A running process's CPU seconds so far (user and system, all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_backend(kubeconfig: Path, workdir: Path) -> tuple[float, float, list[tuple[float, str]]]:
    """Seconds from ``opsconsole serve``'s start to ``/readyz`` 200, the CPU seconds its process
    had used by then, and its log lines of this run as (seconds from start, message)."""
    log = workdir / "backend.log"
    offset = log.stat().st_size if log.exists() else 0
    spawned = time.time()
    backend, _, synced = start_backend(kubeconfig, workdir)
    cpu = cpu_seconds(backend.pid)
    backend.terminate()
    backend.wait()
    with open(log, "rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").splitlines()
    return synced, cpu, [line for line in map(lambda s: _timed(s, spawned), lines) if line]


@contextlib.contextmanager
def code_from(tree: Path | None) -> Iterator[None]:
    """Processes started inside import the project from ``tree`` (None: this checkout): they
    start in it, and ``python -m`` puts the working directory first on the import path."""
    if tree is None:
        yield
        return
    before = Path.cwd()
    os.chdir(tree)
    try:
        yield
    finally:
        os.chdir(before)


def _timed(line: str, spawned: float) -> tuple[float, str] | None:
    """A log line ``2026-01-01 12:00:00,123 LEVEL name: message`` as (seconds, rest)."""
    try:
        at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return None
    return round(at - spawned, 3), line[24:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fleet", default="large")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--base-tree", type=Path, help="also time `opsconsole serve` from this tree, alternately"
    )
    parser.add_argument("--kubeconfig", type=Path, help="a sandbox already running (else one)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="opsconsole-sync-bench-"))
    for tree in (Path.cwd(), args.base_tree):  # each backend starts as an installed one does
        if tree is not None:
            compile_sources(tree)
    sandbox = None
    kubeconfig = args.kubeconfig
    if kubeconfig is None:
        sandbox, kubeconfig, sandbox_start = start_sandbox(args.fleet, workdir)
        print(f"sandbox ({args.fleet}) up in {sandbox_start:.1f} s")
    if args.base_tree is not None:
        print(f"base: `opsconsole serve` from {args.base_tree}")
    runs: dict[str, list[tuple[float, float]]] = {"floor": [], "backend": [], "base": []}
    loads: list[float] = []
    timeline: list[tuple[float, str]] = []
    try:
        for run in range(args.runs):
            runs["floor"].append(run_floor(kubeconfig))
            synced, cpu, timeline = run_backend(kubeconfig, workdir)
            runs["backend"].append((synced, cpu))
            if args.base_tree is not None:
                with code_from(args.base_tree):
                    runs["base"].append(run_backend(kubeconfig, workdir)[:2])
            loads.append(os.getloadavg()[0])
            line = ", ".join(
                f"{name} {done[-1][0]:.2f} s ({done[-1][1]:.2f} s CPU)"
                for name, done in runs.items()
                if done
            )
            print(f"run {run + 1}: {line}, load average {loads[-1]:.1f}")
    finally:
        if sandbox is not None:
            sandbox.terminate()
    floor = statistics.median(w for w, _ in runs["floor"])
    result: dict[str, object] = {"fleet": args.fleet, "load_averages": loads}
    for name, done in runs.items():
        if done:
            wall = statistics.median(w for w, _ in done)
            result[name] = {
                "runs_s": [round(w, 2) for w, _ in done],
                "cpu_s": [round(c, 2) for _, c in done],
                "median_s": round(wall, 2),
                "median_cpu_s": round(statistics.median(c for _, c in done), 2),
                "ratio": round(wall / floor, 2),
            }
    result["last_backend_log"] = timeline
    print()
    for name in runs:
        if name in result:
            figures = cast(dict[str, float], result[name])
            print(
                f"{name}: median {figures['median_s']:.2f} s ({figures['median_cpu_s']:.2f} s CPU),"
                f" ratio to the floor {figures['ratio']:.2f}"
            )
    print("(target: backend <= 2x the floor)")
    print("\nthe last backend run's log, seconds from process start:")
    for seconds, message in timeline:
        print(f"  {seconds:7.3f}  {message[:110]}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sync.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
