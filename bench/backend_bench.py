"""Backend benchmark on the ``large`` sandbox fleet: sync time, memory, read latency.

Starts ``opsconsole sandbox --fleet large`` and ``opsconsole serve`` as separate processes (as in
production: the backend talks to the cluster over HTTP), then measures

- time to first full sync: backend process start → ``/readyz`` answers 200 (median of runs),
- backend RSS after the sync and after telemetry rounds,
- p50/p99 latency of every read endpoint under 50 concurrent clients,
- the share of the backend's CPU that alert evaluations and cost answers take, over a steady
  window without clients (``--cpu-window`` seconds) and over the load of the read endpoints,

then runs the console's benchmark (``bench/tui_bench.py``) against that backend.

The load generator runs in this process on the same 2-core machine as the backend and the
sandbox, so the figures are pessimistic. Results: a table on stdout and ``bench/results/backend.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).parent / "results"


def _spawn(*args: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "opsconsole", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _free_port() -> int:
    from opsconsole.launch import free_port

    return free_port()


def rss_mib(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_sandbox(fleet: str, workdir: Path) -> tuple[subprocess.Popen[bytes], Path, float]:
    kubeconfig = workdir / "kubeconfig"
    started = time.perf_counter()
    proc = _spawn(
        "sandbox",
        "--fleet",
        fleet,
        "--port",
        "0",
        "--kubeconfig-out",
        str(kubeconfig),
        log=workdir / "sandbox.log",
    )
    while not kubeconfig.exists():
        if proc.poll() is not None:
            raise SystemExit(f"sandbox exited; see {workdir / 'sandbox.log'}")
        time.sleep(0.05)
    return proc, kubeconfig, time.perf_counter() - started


def issue_token() -> None:
    """An admin token in the backend's database (``OPSCONSOLE_DATABASE_URL``), made by the
    command line and left in ``OPSCONSOLE_TOKEN`` for every client here and the console's
    benchmark."""
    create = ["token", "create", "--operator", "bench", "--role", "admin", "--output", "json"]
    made = subprocess.run(
        [sys.executable, "-m", "opsconsole", *create],
        check=True,
        capture_output=True,
        text=True,
    )
    os.environ["OPSCONSOLE_TOKEN"] = json.loads(made.stdout)["token"]


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {os.environ['OPSCONSOLE_TOKEN']}"}


def compile_sources(tree: Path) -> None:
    """Write the bytecode of ``tree``'s packages, as installing them does.

    An installed backend imports its own modules from the bytecode written at install. A checkout
    has none until a process writes it, and none ever does where ``PYTHONDONTWRITEBYTECODE`` is
    set (as on the machine these figures come from): every start then compiled the backend's
    sources again, 0.2–0.3 s of CPU that a deployed backend does not spend.
    """
    for package in ("backend", "opsconsole"):
        compileall.compile_dir(tree / package, quiet=1)


# Seconds between two /readyz polls: the moment of readiness is known to about half of it.
READY_POLL = 0.02


def start_backend(kubeconfig: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    """Start a backend; return it, its URL and the seconds until /readyz said 200."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env_db = f"sqlite:///{workdir / 'bench.db'}"
    if os.environ.get("OPSCONSOLE_DATABASE_URL") != env_db or "OPSCONSOLE_TOKEN" not in os.environ:
        os.environ["OPSCONSOLE_DATABASE_URL"] = env_db
        issue_token()  # each bench's own database (``make bench`` runs several in one process)
    started = time.perf_counter()
    proc = _spawn(
        "serve", "--kubeconfig", str(kubeconfig), "--port", str(port), log=workdir / "backend.log"
    )
    with httpx.Client(timeout=2.0) as client:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"backend exited; see {workdir / 'backend.log'}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{url}/readyz").status_code == 200:
                    return proc, url, time.perf_counter() - started
            time.sleep(READY_POLL)


def wait_for_telemetry(url: str, timeout: float = 120.0) -> float | None:
    """Seconds until the backend reports a complete telemetry round, or None."""
    started = time.perf_counter()
    with httpx.Client(timeout=5.0, headers=auth()) as client:
        while time.perf_counter() - started < timeout:
            with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                info = client.get(f"{url}/api/v1/info").json()
                if info["freshness"]["telemetry_age_seconds"] is not None:
                    return time.perf_counter() - started
            time.sleep(0.2)
    return None


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One keep-alive GET on an open connection; returns the status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def _load(url: str, path: str, clients: int, requests: int) -> list[float]:
    """``requests`` GETs of ``path`` spread over ``clients`` concurrent keep-alive connections.

    A minimal HTTP/1.1 client on asyncio streams: a full-featured client costs more CPU per
    request than the backend's answer, and it would share the machine's two cores with it.
    """
    target = httpx.URL(url)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
        f"Authorization: {auth()['Authorization']}\r\n"
        "Accept: application/json\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    errors = 0

    async def one_client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(target.host, target.port)
        try:
            for _ in range(max(1, requests // clients)):
                t0 = time.perf_counter()
                try:
                    status = await _get(reader, writer, request)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    errors += 1
                    print(f"  {path}: {type(exc).__name__} {exc}", file=sys.stderr)
                    reader, writer = await asyncio.open_connection(target.host, target.port)
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(one_client() for _ in range(clients)))
    if errors:
        print(f"  {path}: {errors} failed or non-200 answers", file=sys.stderr)
    return latencies


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


# -- the CPU that alerts and cost take ----------------------------------------------------------
ACCOUNTED_WORK = ("alerts", "cost")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its descendants (the backend's scrape workers), live or
    reaped."""
    total, pending = 0.0, [pid]
    while pending:
        process = Path(f"/proc/{pending.pop()}")
        with contextlib.suppress(OSError, ValueError):
            fields = (process / "stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
            for task in (process / "task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
    return total


def cpu_counters(url: str, pid: int) -> dict[str, float]:
    """CPU seconds of the backend's process tree, its own process and each accounted work (the
    last two from ``/metrics``)."""
    text = httpx.get(f"{url}/metrics", headers=auth(), timeout=10.0).text
    counters = {"tree": tree_cpu_seconds(pid)}
    for line in text.splitlines():
        if line.startswith("process_cpu_seconds_total "):
            counters["process"] = float(line.split()[1])
        elif line.startswith("opsconsole_work_cpu_seconds_total{"):
            work = line.split('work="', 1)[1].split('"', 1)[0]
            counters[work] = float(line.rsplit(" ", 1)[1])
    return counters


def cpu_share(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    """CPU seconds between two readings of ``cpu_counters``, and the accounted work's share of
    the backend's: of its process tree (the target, < 10 %) and of its own process."""
    keys = ("tree", "process", *ACCOUNTED_WORK)
    spent = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in keys}
    work = sum(spent[k] for k in ACCOUNTED_WORK)
    shares = {
        f"share_of_{k}_pct": round(100 * work / spent[k], 1) if spent[k] > 0 else None
        for k in ("tree", "process")
    }
    return {**{f"{k}_cpu_s": round(v, 2) for k, v in spent.items()}, **shares}


def steady_cpu_share(url: str, pid: int, seconds: float) -> dict[str, float | None]:
    """``cpu_share`` over ``seconds`` of a backend that nobody reads."""
    before = cpu_counters(url, pid)
    time.sleep(seconds)
    return {"window_s": seconds, **cpu_share(before, cpu_counters(url, pid))}


def print_cpu_share(result: dict) -> None:
    for label, key in (("no clients", "cpu_share_steady"), ("under load", "cpu_share_load")):
        row = result.get(key)
        if row:
            print(
                f"alerts + cost CPU, {label}: {row['share_of_tree_pct']} % of the backend's "
                f"{row['tree_cpu_s']} s with its scrape workers, {row['share_of_process_pct']} % "
                f"of its process's {row['process_cpu_s']} s (alerts {row['alerts_cpu_s']} s, "
                f"cost {row['cost_cpu_s']} s)  (target < 10 %)"
            )


SETTLE_SECONDS = 10.0  # after the first telemetry round, before changes are timed


def change_visibility(url: str, kubeconfig: Path, runs: int = 20) -> list[float]:
    """Seconds from scaling a Deployment through the Kubernetes API until ``/api/v1`` shows it,
    ``runs`` times, 1 s apart, while the sandbox's clock runs (its controllers and exporters
    change pods and telemetry meanwhile), so some changes meet a telemetry round."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    apps = k8s.AppsV1Api(k8s_config.new_client_from_config(config_file=str(kubeconfig)))
    with httpx.Client(base_url=url, timeout=10.0, headers=auth()) as http:
        row = http.get("/api/v1/workloads", params={"kind": "Deployment", "limit": 1}).json()
        namespace, name = row["items"][0]["namespace"], row["items"][0]["name"]
        path = f"/api/v1/workloads/{namespace}/deployment/{name}"
        replicas = http.get(path).json()["replicas"]
        # The client's first call opens its connection and loads its models: not the backend's.
        apps.read_namespaced_deployment_scale(name, namespace)
        seconds = []
        for run in range(runs):
            wanted = replicas + 1 + run % 2  # alternate, so that every run is a change
            started = time.perf_counter()
            _scale(apps, name, namespace, wanted)
            while http.get(path).json()["replicas"] != wanted:
                time.sleep(0.01)
            seconds.append(time.perf_counter() - started)
            time.sleep(1.0)
        _scale(apps, name, namespace, replicas)
    return seconds


def _scale(apps: Any, name: str, namespace: str, replicas: int) -> None:
    """Scale a Deployment, once more if the sandbox closed the pooled connection meanwhile (it
    closes idle keep-alive connections; the patch sets an absolute count, so a retry is safe)."""
    from urllib3.exceptions import ProtocolError

    body = {"spec": {"replicas": replicas}}
    try:
        apps.patch_namespaced_deployment_scale(name, namespace, body)
    except ProtocolError:
        apps.patch_namespaced_deployment_scale(name, namespace, body)


def endpoints(url: str) -> list[str]:
    """The read endpoints, with real names taken from the fleet."""
    with httpx.Client(base_url=url, timeout=10.0, headers=auth()) as client:
        tenant = client.get("/api/v1/tenants", params={"limit": 1}).json()["items"][0]["name"]
        workload = client.get("/api/v1/workloads", params={"limit": 1}).json()["items"][0]
        node = client.get("/api/v1/nodes", params={"limit": 1}).json()["items"][0]["name"]
    kind = workload["kind"].lower()
    return [
        "/api/v1/overview",
        "/api/v1/tenants",
        f"/api/v1/tenants/{tenant}",
        "/api/v1/workloads",
        f"/api/v1/workloads?tenant={tenant}",
        "/api/v1/workloads?q=llama&sort=-gpus",
        f"/api/v1/workloads/{workload['namespace']}/{kind}/{workload['name']}",
        "/api/v1/nodes",
        "/api/v1/gpus",
        f"/api/v1/gpus?node={node}",
        "/api/v1/gpus?idle=true&sort=utilization",
        "/api/v1/endpoints",
        "/api/v1/alerts",
        "/api/v1/alerts?state=all",
        "/api/v1/cost?since=7d",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fleet", default="large")
    parser.add_argument("--sync-runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1000, help="per endpoint")
    parser.add_argument(
        "--change-runs", type=int, default=20, help="changes timed until visible in /api/v1"
    )
    parser.add_argument(
        "--no-load", action="store_true", help="skip the read endpoints' latency under load"
    )
    parser.add_argument("--keep", action="store_true", help="leave the backend running for more")
    parser.add_argument(
        "--cpu-window",
        type=float,
        default=60.0,
        help="seconds without clients over which the alerts' and cost's CPU share is measured",
    )
    parser.add_argument(
        "--no-tui", action="store_true", help="skip the console benchmark (bench/tui_bench.py)"
    )
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="opsconsole-bench-"))
    compile_sources(Path.cwd())  # the backend's start is timed as an installed one starts
    sandbox, kubeconfig, sandbox_start = start_sandbox(args.fleet, workdir)
    print(f"sandbox ({args.fleet}) up in {sandbox_start:.1f} s")
    backend = None
    result: dict[str, object] = {"fleet": args.fleet, "sandbox_start_s": round(sandbox_start, 2)}
    try:
        syncs = []
        for run in range(args.sync_runs):
            backend, url, synced = start_backend(kubeconfig, workdir)
            syncs.append(synced)
            print(f"sync run {run + 1}: {synced:.2f} s, RSS {rss_mib(backend.pid):.0f} MiB")
            if run < args.sync_runs - 1:
                backend.terminate()
                backend.wait()
        result["sync_s"] = [round(s, 2) for s in syncs]
        result["sync_median_s"] = round(statistics.median(syncs), 2)
        assert backend is not None, "--sync-runs starts the backend at least once"
        result["rss_after_sync_mib"] = round(rss_mib(backend.pid), 1)
        telemetry = wait_for_telemetry(url)
        result["first_telemetry_round_s"] = None if telemetry is None else round(telemetry, 2)
        # Steady state: the first telemetry round enters the model in steps, the scrape workers
        # start, the first traffic round arrives. A change in those first seconds took up to
        # 2.4 s on this machine (bench/README.md).
        time.sleep(SETTLE_SECONDS)
        visible = change_visibility(url, kubeconfig, args.change_runs)
        result["change_visible_s"] = [round(v, 2) for v in visible]
        result["change_visible_median_s"] = round(statistics.median(visible), 2)
        result["change_visible_max_s"] = round(max(visible), 2)
        time.sleep(5)  # let a few model rebuilds and scrapes happen
        result["rss_steady_mib"] = round(rss_mib(backend.pid), 1)
        if args.cpu_window > 0:
            result["cpu_share_steady"] = steady_cpu_share(url, backend.pid, args.cpu_window)
        before_load = cpu_counters(url, backend.pid)
        rows = {}
        for path in [] if args.no_load else endpoints(url):
            asyncio.run(_load(url, path, args.clients, args.clients * 2))  # warm up
            lat = asyncio.run(_load(url, path, args.clients, args.requests))
            print(f"  {path}: p50 {_percentile(lat, 50):.1f} ms, p99 {_percentile(lat, 99):.1f} ms")
            rows[path] = {
                "p50_ms": round(_percentile(lat, 50), 2),
                "p99_ms": round(_percentile(lat, 99), 2),
                "requests": len(lat),
            }
        result["endpoints"] = rows
        if rows:
            result["cpu_share_load"] = cpu_share(before_load, cpu_counters(url, backend.pid))
        result["clients"] = args.clients
        result["rss_after_load_mib"] = round(rss_mib(backend.pid), 1)
        print_table(result)
        print_cpu_share(result)
        if not args.no_tui:
            from bench import tui_bench

            print("\nconsole benchmark on the same backend (bench/tui_bench.py):")
            tui_bench.main(["--backend", url])
            from bench import terminal_bench

            print("\nidle console's terminal output (bench/terminal_bench.py):")
            terminal_bench.main(["--backend", url])
    finally:
        if backend is not None and not args.keep:
            backend.terminate()
        if not args.keep:
            sandbox.terminate()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "backend.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.keep and backend is not None:
        print(f"backend still running at {url} (pid {backend.pid}), sandbox pid {sandbox.pid}")
    return 0


def print_table(result: dict) -> None:
    print()
    print(f"fleet={result['fleet']}  sandbox start {result['sandbox_start_s']} s")
    print(
        f"first full sync: median {result['sync_median_s']} s over runs {result['sync_s']}"
        "  (target < 10 s)"
    )
    print(f"first telemetry round after ready: {result.get('first_telemetry_round_s')} s")
    print(
        f"a change through the Kubernetes API visible in /api/v1 after: median "
        f"{result.get('change_visible_median_s')} s, max {result.get('change_visible_max_s')} s, "
        f"runs {result.get('change_visible_s')}"
    )
    print(
        f"backend RSS: after sync {result['rss_after_sync_mib']} MiB, steady "
        f"{result['rss_steady_mib']} MiB, after load {result.get('rss_after_load_mib')} MiB"
        "  (target < 600 MB)"
    )
    print(
        f"\n{'endpoint':<62} {'p50 ms':>8} {'p99 ms':>8}   ({result.get('clients')} clients;"
        " target p99 < 50 ms)"
    )
    for path, row in result.get("endpoints", {}).items():
        print(f"{path:<62} {row['p50_ms']:>8} {row['p99_ms']:>8}")


if __name__ == "__main__":
    sys.exit(main())
