"""Benchmark of the fleet model at fleet scale (not a test).

Builds, in memory, the slim objects of a large synthetic fleet (1,000 nodes, 8,000 GPUs, 200
tenants, ~4,000 workloads, ~20,000 pods, telemetry for every GPU with 60 samples of history) and
times ``build_fleet_model``, ``update_fleet_model`` for typical changes and typical page queries.
Run:

    .venv/bin/python bench/model_bench.py [--nodes 1000] [--repeat 3] [--json bench/model_bench.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.fleet import FleetModel, TelemetryLike, build_fleet_model
from backend.fleet.model import update_fleet_model
from backend.fleet.stepping import step_towards
from tests.support.synthetic_fleet import FleetBuilder, Snapshot

T = TypeVar("T")


def _time(fn: Callable[[], T], repeat: int) -> tuple[float, float, T]:
    """Median wall and CPU seconds of ``fn`` (CPU time is what a shared machine cannot inflate);
    ``repeat`` is at least 1."""
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls), statistics.median(cpus), result


async def _http_pages(model, path: str, requests: int) -> float:
    """Mean seconds per request of ``path`` through the real router (ASGI, no sockets)."""
    import httpx

    from backend.api.app import create_app
    from backend.schemas import API_PREFIX
    from tests.support.backend import InMemorySource

    source = InMemorySource({}, None)
    source.model = model
    token, _ = source.tokens.create("bench", "viewer")
    app = create_app(source, allowed_hosts=["bench"])
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", headers=headers
    ) as client:
        await client.get(API_PREFIX + path)
        start = time.perf_counter()
        for _ in range(requests):
            response = await client.get(API_PREFIX + path)
            response.raise_for_status()
        return (time.perf_counter() - start) / requests


def _update_figures(
    model: FleetModel, cluster: dict, telemetry: Snapshot, builder: FleetBuilder, repeat: int
) -> dict[str, float]:
    """CPU seconds of ``update_fleet_model`` for one changed Deployment, one changed pod, a
    telemetry round that changes every GPU at once, and one step of such a round."""
    deployment = sorted(cluster["deployments"])[10]
    pod = sorted(cluster["pods"])[100]

    def changed(kind: str, key: tuple[str, str], path: tuple[str, str], value: object) -> dict:
        obj = dict(cluster[kind][key])
        obj[path[0]] = {**obj.get(path[0], {}), path[1]: value}
        return {**cluster, kind: {**cluster[kind], key: obj}}

    scaled = changed("deployments", deployment, ("spec", "replicas"), 9)
    failed = changed("pods", pod, ("status", "phase"), "Failed")
    round_ = builder.telemetry(60)
    step = step_towards(telemetry, round_, 500)
    updates: dict[str, tuple[dict, set, TelemetryLike]] = {
        "update_deployment_cpu_s": (scaled, {("deployments", deployment)}, telemetry),
        "update_pod_cpu_s": (failed, {("pods", pod)}, telemetry),
        "update_round_all_gpus_cpu_s": (cluster, set(), round_),
        "update_round_step_500_gpus_cpu_s": (cluster, set(), step),
    }
    figures: dict[str, float] = {}
    for name, (objects, keys, snapshot) in updates.items():

        def update(
            objects: dict = objects, keys: set = keys, snapshot: TelemetryLike = snapshot
        ) -> None:
            update_fleet_model(model, objects, keys, snapshot)

        figures[name] = _time(update, repeat)[1]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    builder = FleetBuilder(args.nodes, seed=1)
    cluster = builder.build(args.tenants)
    telemetry = builder.telemetry(60)
    setup = time.perf_counter() - start
    sizes = {kind: len(objs) for kind, objs in cluster.items()}

    build_s, build_cpu_s, model = _time(lambda: build_fleet_model(cluster, telemetry), args.repeat)
    figures = {
        "setup_s": setup,
        "objects": sizes,
        "gpus": len(model.gpus),
        "workloads": len(model.workloads),
        "build_wall_s": build_s,
        "build_cpu_s": build_cpu_s,
        **_update_figures(model, cluster, telemetry, builder, args.repeat),
    }
    queries = {
        "gpus_page_cold": lambda: model.gpus.page_json(limit=100),
        "gpus_page_warm": lambda: model.gpus.page_json(limit=100),
        "gpus_sorted_first": lambda: model.gpus.page_json(sort="-temperature_c", limit=100),
        "gpus_sorted_again": lambda: model.gpus.page_json(sort="-temperature_c", offset=100),
        "gpus_tenant_filter": lambda: model.gpus.page_json(filters={"tenant": "team-007"}),
        "gpus_q": lambda: model.gpus.page_json(q="node-0123"),
        "workloads_status_sorted": lambda: model.workloads.page_json(
            filters={"status": "running"}, sort="-gpus"
        ),
        "tenants_page": lambda: model.tenants.page_json(sort="-gpu_used"),
        "overview": lambda: model.overview_json(_freshness()),
        "workload_detail": lambda: model.workload("team-001", "deployment", "model-01"),
    }
    for name, fn in queries.items():
        figures[f"{name}_ms"] = _time(fn, 1)[0] * 1000
    for name, path in (
        ("http_gpus_100", "/gpus?limit=100"),
        ("http_gpus_100_sorted", "/gpus?limit=100&sort=-utilization&offset=4000"),
        ("http_workloads_filtered", "/workloads?tenant=team-042&sort=-gpus"),
        ("http_overview", "/overview"),
    ):
        figures[f"{name}_ms"] = asyncio.run(_http_pages(model, path, 200)) * 1000
    print(f"{'figure':32} value")
    for key, value in figures.items():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        print(f"{key:32} {shown}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _freshness():
    from backend.schemas import DataFreshness

    return DataFreshness(synced=True, cluster_age_seconds=0.5, telemetry_age_seconds=3.0)


if __name__ == "__main__":
    raise SystemExit(main())
