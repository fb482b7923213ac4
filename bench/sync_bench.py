"""First full sync against its floor, alternately, on one sandbox.

Starts one ``opsconsole sandbox`` (``--fleet large`` by default), then ``--runs`` times in turn:

- the floor (``bench/floor_client.py``): a bare client, its own process, that pages through the
  kinds the backend's cache watches with the cache's page size and parses each page with orjson,
  timed from process start to its exit;
- ``opsconsole serve``, timed from process start until ``/readyz`` answers 200 (the fleet model
  built from every kind's first list), then stopped.

With ``--base-tree DIR`` (a checkout of another commit), each round also times ``opsconsole
serve`` from that tree's code, so that a change to the start-up is measured before and after in
the same run. Alternating on the same sandbox means all see the same machine load. Prints each run, the
medians and their ratio, and, for the last backend run, its log lines as seconds from process
start (where the backend's time goes); writes ``bench/results/sync.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from backend.cluster.cache import KIND_SPECS, CacheOptions
from bench.backend_bench import RESULTS, start_backend, start_sandbox


def list_paths() -> list[str]:
    """The list URL path of every watched kind, at the first version the cache tries."""
    paths = []
    for spec in KIND_SPECS.values():
        prefix = f"/apis/{spec.group}" if spec.group else "/api"
        paths.append(f"{prefix}/{spec.versions[0]}/{spec.name}")
    return paths


def run_floor(kubeconfig: Path) -> float:
    """Seconds from the floor client's process start to its exit."""
    command = [sys.executable, "-m", "bench.floor_client", str(kubeconfig)]
    command += [str(CacheOptions().page_size), *list_paths()]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_backend(kubeconfig: Path, workdir: Path) -> tuple[float, list[tuple[float, str]]]:
    """Seconds from ``opsconsole serve``'s start to ``/readyz`` 200, and its log lines of this
    run as (seconds from start, message)."""
    log = workdir / "backend.log"
    offset = log.stat().st_size if log.exists() else 0
    spawned = time.time()
    backend, _, synced = start_backend(kubeconfig, workdir)
    backend.terminate()
    backend.wait()
    with open(log, "rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").splitlines()
    return synced, [line for line in map(lambda s: _timed(s, spawned), lines) if line]


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
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="opsconsole-sync-bench-"))
    sandbox, kubeconfig, sandbox_start = start_sandbox(args.fleet, workdir)
    print(f"sandbox ({args.fleet}) up in {sandbox_start:.1f} s")
    floors: list[float] = []
    syncs: list[float] = []
    bases: list[float] = []
    timeline: list[tuple[float, str]] = []
    try:
        for run in range(args.runs):
            floors.append(run_floor(kubeconfig))
            synced, timeline = run_backend(kubeconfig, workdir)
            syncs.append(synced)
            line = f"run {run + 1}: floor {floors[-1]:.2f} s, backend {synced:.2f} s"
            if args.base_tree is not None:
                with code_from(args.base_tree):
                    bases.append(run_backend(kubeconfig, workdir)[0])
                line += f", backend from {args.base_tree} {bases[-1]:.2f} s"
            print(line)
    finally:
        sandbox.terminate()
    floor, backend = statistics.median(floors), statistics.median(syncs)
    result = {
        "fleet": args.fleet,
        "floor_s": [round(s, 2) for s in floors],
        "backend_s": [round(s, 2) for s in syncs],
        "floor_median_s": round(floor, 2),
        "backend_median_s": round(backend, 2),
        "ratio": round(backend / floor, 2),
        "last_backend_log": timeline,
    }
    if bases:
        base = statistics.median(bases)
        result |= {
            "base_backend_s": [round(s, 2) for s in bases],
            "base_backend_median_s": round(base, 2),
            "base_ratio": round(base / floor, 2),
        }
        print(f"backend from {args.base_tree}: median {base:.2f} s, ratio {base / floor:.2f}")
    print(f"\nfirst full sync: floor median {floor:.2f} s, backend median {backend:.2f} s")
    print(f"ratio {backend / floor:.2f}  (target <= 2)")
    print("\nthe last backend run's log, seconds from process start:")
    for seconds, message in timeline:
        print(f"  {seconds:7.3f}  {message[:110]}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sync.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
