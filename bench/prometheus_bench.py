"""Benchmark: a telemetry round read from a real Prometheus for the whole large fleet (not a test).

Starts ``opsconsole sandbox --fleet large`` (1,000 nodes, 8,000 GPUs) and Debian's Prometheus
scraping its 1,000 DCGM exporters through the API server's pod proxy every 15 s, as a
Prometheus outside the cluster would. Once every exporter has been scraped, times the backend's
``PrometheusCollector`` rounds (its instant queries of dcgm-exporter's series, the screening of
each GPU's origin, the snapshot; the first round also reads the utilization history with
``query_range``): the median and the maximum of the rounds, wall time and CPU. Target: < 2 s.

With ``--inference``, Prometheus scrapes the fleet's model servers instead (4,041 pods, through
the same proxy) and the bench times ``PrometheusInference``'s rounds: the first one also reads
the endpoints' history through ``query_range``, bounded by ``HISTORY_POINTS``.

    .venv/bin/python bench/prometheus_bench.py [--rounds 5] [--inference]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.telemetry.inference_prometheus import PrometheusInference
from backend.telemetry.inference_scrape import model_server_pods, model_server_ports
from backend.telemetry.prometheus_api import PrometheusCollector
from bench.backend_bench import RESULTS, start_sandbox
from tests.prom_fixture import (
    EXPORTER_SELECTOR,
    PromServer,
    exporter_scrape_config,
    pod_scrape_config,
    running_prometheus,
)

SCRAPE = {"scrape_interval": "15s", "scrape_timeout": "10s"}  # Prometheus's usual, not the tests'


def exporter_job(kubeconfig: Path) -> tuple[dict[str, Any], int]:
    """A scrape job for every exporter pod of the sandbox, with the kubeconfig's credentials."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    pods = k8s.CoreV1Api(api).list_pod_for_all_namespaces(label_selector=EXPORTER_SELECTOR)
    cfg = api.configuration
    token = (cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken") or "").split()[-1]
    items = [api.sanitize_for_serialization(pod) for pod in pods.items]
    job = exporter_scrape_config(cfg.host, token or None, items, ca_file=cfg.ssl_ca_cert)
    return {**job, **SCRAPE}, len(items)


async def time_rounds(url: str, rounds: int) -> list[tuple[float, float, int]]:
    """(wall seconds, CPU seconds, GPUs) of each round, 15 s apart as the backend reads them."""
    collector = PrometheusCollector(url, interval=15.0, timeout=30.0)
    out = []
    try:
        for n in range(rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            await collector.scrape_once()
            out.append(
                (
                    time.perf_counter() - wall,
                    time.process_time() - cpu,
                    len(collector.snapshot().samples),
                )
            )
            if n < rounds - 1:
                await asyncio.sleep(15.0)
    finally:
        await collector.stop()
    return out


def model_server_job(kubeconfig: Path) -> tuple[dict[str, Any], int]:
    """A scrape job for every model server of the sandbox, labelled as service discovery does."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    pods = k8s.CoreV1Api(api).list_pod_for_all_namespaces()
    items = [api.sanitize_for_serialization(pod) for pod in pods.items]
    targets = [
        (pod["metadata"]["namespace"], pod["metadata"]["name"], port)
        for pod in model_server_pods(items)
        for port in model_server_ports(pod)
    ]
    cfg = api.configuration
    token = (cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken") or "").split()[-1]
    job = pod_scrape_config(cfg.host, token or None, targets, "model-servers", cfg.ssl_ca_cert)
    return {**job, **SCRAPE}, len(targets)


async def time_inference_rounds(url: str, rounds: int) -> list[tuple[float, float, int]]:
    """(wall seconds, CPU seconds, rounds kept) after each inference round, 15 s apart; the
    first reads the history too."""
    api = PrometheusCollector(url, timeout=60.0)
    inference = PrometheusInference(
        api.query, api.query_range, url, window=30.0, interval=15.0, history_length=60
    )
    out = []
    try:
        for n in range(rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            await inference.collect_once()
            kept = len(inference.snapshot().rounds)
            out.append((time.perf_counter() - wall, time.process_time() - cpu, kept))
            if n < rounds - 1:
                await asyncio.sleep(15.0)
    finally:
        await api.stop()
    return out


def wait_scraped(prom: PromServer, targets: int, what: str) -> None:
    started = time.perf_counter()
    prom.wait_for("up == 1", targets, timeout=300.0)
    print(f"Prometheus scraped all {targets} {what} in {time.perf_counter() - started:.1f} s")


def gpu_rounds(kubeconfig: Path, rounds: int) -> dict[str, Any]:
    job, exporters = exporter_job(kubeconfig)
    with running_prometheus([job]) as prom:
        wait_scraped(prom, exporters, "exporters")
        timings = asyncio.run(time_rounds(prom.url, rounds))
    walls = [wall for wall, _, _ in timings]
    return {
        "exporters": exporters,
        "gpus": timings[-1][2],
        "first_round_s": round(walls[0], 2),  # with the history's query_range
        "round_median_s": round(statistics.median(walls[1:] or walls), 2),
        "round_max_s": round(max(walls), 2),
        "round_cpu_median_s": round(statistics.median(cpu for _, cpu, _ in timings), 2),
        "rounds": [round(w, 2) for w in walls],
    }


def inference_rounds(kubeconfig: Path, rounds: int) -> dict[str, Any]:
    job, targets = model_server_job(kubeconfig)
    with running_prometheus([job]) as prom:
        wait_scraped(prom, targets, "model servers")
        time.sleep(105.0)  # the window (30 s) and 5 rounds (15 s) of history
        timings = asyncio.run(time_inference_rounds(prom.url, rounds))
    walls = [wall for wall, _, _ in timings]
    return {
        "model_servers": targets,
        "first_round_s": round(walls[0], 2),  # with the history's query_range
        "first_round_cpu_s": round(timings[0][1], 2),
        "rounds_after_the_first": timings[0][2],
        "round_median_s": round(statistics.median(walls[1:] or walls), 2),
        "round_cpu_median_s": round(statistics.median(cpu for _, cpu, _ in timings[1:]), 2),
        "rounds": [round(w, 2) for w in walls],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--inference", action="store_true", help="the model servers' rounds")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="opsconsole-prom-bench-"))
    sandbox, kubeconfig, _ = start_sandbox("large", workdir)
    try:
        if args.inference:
            result, name = inference_rounds(kubeconfig, args.rounds), "prometheus_inference.json"
        else:
            result, name = gpu_rounds(kubeconfig, args.rounds), "prometheus.json"
    finally:
        sandbox.terminate()
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
