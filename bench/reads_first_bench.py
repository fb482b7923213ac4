"""Reads under load while the fleet model changes: a model that gives way to requests in flight
(``OPSCONSOLE_MODEL_PAUSE_BUDGET``, ``backend.reads_first``) against one that never pauses.

On one ``large`` sandbox whose clock runs (its controllers and exporters change the fleet, so the
backend updates its model several times a second and brings each telemetry round in by steps),
backends are started alternately with the default budget and with 0 (never pause). Once each has
had its first telemetry round and ``--settle`` seconds more, ``--runs`` loads of ``--requests``
GETs from 50 keep-alive clients are sent to each path, and the latencies of each setting's runs
are pooled: p50, p99 and p99.9 per path, beside the model updates made meanwhile and the seconds
the model paused. Alternating on one sandbox, in the same minutes, is what makes the two
comparable on a machine whose speed moves.

Results: a table on stdout and ``bench/results/reads_first.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import httpx

from bench.backend_bench import (
    RESULTS,
    _load,
    _percentile,
    auth,
    start_backend,
    start_sandbox,
    wait_for_telemetry,
)

PATHS = ("/api/v1/alerts", "/api/v1/cost?since=7d")
SETTINGS = {"gives way": None, "never pauses": "0"}  # OPSCONSOLE_MODEL_PAUSE_BUDGET
BUDGET = "OPSCONSOLE_MODEL_PAUSE_BUDGET"


def model_counters(url: str) -> dict[str, float]:
    """Model updates made and seconds paused, from ``/metrics``."""
    text = httpx.get(f"{url}/metrics", headers=auth(), timeout=10.0).text
    wanted = {
        "opsconsole_model_builds_total": "builds",
        "opsconsole_model_paused_seconds_total": "paused_s",
    }
    counters = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            counters[wanted[name]] = float(value)
    return counters


def one_backend(
    kubeconfig: Path, workdir: Path, budget: str | None, args: argparse.Namespace
) -> dict:
    """Start a backend with ``budget``, let it settle, load each path; its latencies."""
    if budget is None:
        os.environ.pop(BUDGET, None)
    else:
        os.environ[BUDGET] = budget
    backend, url, _ = start_backend(kubeconfig, workdir)
    try:
        wait_for_telemetry(url)
        time.sleep(args.settle)
        before = model_counters(url)
        latencies: dict[str, list[float]] = {}
        for path in PATHS:
            asyncio.run(_load(url, path, args.clients, args.clients * 2))  # warm up
            latencies[path] = [
                ms
                for _ in range(args.runs)
                for ms in asyncio.run(_load(url, path, args.clients, args.requests))
            ]
        after = model_counters(url)
    finally:
        backend.terminate()
        backend.wait()
    return {
        "latencies": latencies,
        **{k: after.get(k, 0.0) - before.get(k, 0.0) for k in ("builds", "paused_s")},
    }


def summary(rounds: list[dict]) -> dict:
    """Pooled percentiles per path, and the model's updates and pauses, over ``rounds``."""
    out: dict[str, object] = {
        "model_updates": sum(r["builds"] for r in rounds),
        "model_paused_s": round(sum(r["paused_s"] for r in rounds), 2),
    }
    for path in PATHS:
        pooled = [ms for r in rounds for ms in r["latencies"][path]]
        out[path] = {
            "requests": len(pooled),
            "p50_ms": round(_percentile(pooled, 50), 1),
            "p99_ms": round(_percentile(pooled, 99), 1),
            "p99_9_ms": round(_percentile(pooled, 99.9), 1),
            "p99_per_backend_ms": [round(_percentile(r["latencies"][path], 99), 1) for r in rounds],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fleet", default="large")
    parser.add_argument("--pairs", type=int, default=3, help="backends started per setting")
    parser.add_argument("--runs", type=int, default=10, help="loads per path and backend")
    parser.add_argument("--requests", type=int, default=1000, help="per load")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--settle", type=float, default=30.0, help="seconds after telemetry")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="opsconsole-bench-"))
    sandbox, kubeconfig, _ = start_sandbox(args.fleet, workdir)
    rounds: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    try:
        for pair in range(args.pairs):
            for name, budget in SETTINGS.items():
                rounds[name].append(one_backend(kubeconfig, workdir, budget, args))
                print(f"pair {pair + 1}, {name}: done", flush=True)
    finally:
        sandbox.terminate()
    result = {
        "fleet": args.fleet,
        "clients": args.clients,
        **{name: summary(r) for name, r in rounds.items()},
    }
    for name in SETTINGS:
        row = result[name]
        print(f"{name}: {row['model_updates']:.0f} model updates, paused {row['model_paused_s']} s")
        for path in PATHS:
            p = row[path]
            print(
                f"  {path}: p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms, p99.9 {p['p99_9_ms']} ms "
                f"({p['requests']} requests)"
            )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reads_first.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
