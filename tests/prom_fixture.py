"""A throwaway Prometheus server for tests: a temp config and storage dir, 127.0.0.1, a free port.

It scrapes the sandbox's DCGM exporters as a Prometheus outside the cluster would: through the
API server's pod proxy (``/api/v1/namespaces/<ns>/pods/<pod>:9400/proxy/metrics``), one static
target per exporter pod (its path in ``__metrics_path__``, its pod name as ``instance``), with the
kubeconfig's bearer token, every second. ``prometheus_server`` (Debian's ``prometheus`` package)
is searched in PATH; without it the tests are skipped with the reason, unless ``CI`` is set: CI
must run them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

EXPORTER_SELECTOR = "app=nvidia-dcgm-exporter"
EXPORTER_PORT = 9400


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def exporter_scrape_config(
    api_server: str,
    token: str | None,
    pods: Iterable[Mapping[str, Any]],
    job: str = "dcgm",
    ca_file: str | None = None,
) -> dict[str, Any]:
    """A scrape job reaching each exporter pod through the API server's pod proxy (over HTTPS
    verified with ``ca_file`` when given)."""
    parts = urlsplit(api_server)
    groups = [
        {
            "targets": [parts.netloc],
            "labels": {
                "__metrics_path__": f"{parts.path.rstrip('/')}/api/v1/namespaces/"
                f"{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}:"
                f"{EXPORTER_PORT}/proxy/metrics",
                "instance": pod["metadata"]["name"],
            },
        }
        for pod in pods
    ]
    job_config: dict[str, Any] = {
        "job_name": job,
        "scheme": parts.scheme,
        "static_configs": groups,
    }
    if token:
        job_config["authorization"] = {"type": "Bearer", "credentials": token}
    if ca_file:
        job_config["tls_config"] = {"ca_file": ca_file}
    return job_config


def pod_scrape_config(
    api_server: str,
    token: str | None,
    targets: Iterable[tuple[str, str, int]],
    job: str,
    ca_file: str | None = None,
) -> dict[str, Any]:
    """A scrape job reaching ``(namespace, pod, port)`` targets through the API server's pod
    proxy, labelled ``namespace`` and ``pod`` as Prometheus's Kubernetes service discovery
    labels a pod's series."""
    parts = urlsplit(api_server)
    groups = [
        {
            "targets": [parts.netloc],
            "labels": {
                "__metrics_path__": f"{parts.path.rstrip('/')}/api/v1/namespaces/{namespace}/"
                f"pods/{pod}:{port}/proxy/metrics",
                "instance": f"{pod}:{port}",
                "namespace": namespace,
                "pod": pod,
            },
        }
        for namespace, pod, port in targets
    ]
    job_config: dict[str, Any] = {"job_name": job, "scheme": parts.scheme, "static_configs": groups}
    if token:
        job_config["authorization"] = {"type": "Bearer", "credentials": token}
    if ca_file:
        job_config["tls_config"] = {"ca_file": ca_file}
    return job_config


@dataclass
class PromServer:
    """A Prometheus server in a temp dir on 127.0.0.1; tests may stop and start it again."""

    binary: str
    root: Path
    scrape_configs: list[dict[str, Any]]
    flags: list[str] = field(default_factory=list)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (again, on the same port and storage) and wait until it is ready."""
        if not self.port:
            self.port = _free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": self.scrape_configs,
        }
        config_file = self.root / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        command = [
            self.binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            *self.flags,
        ]
        with open(self.root / "log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                log = (self.root / "log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"prometheus exited ({self.process.returncode}): {log}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"prometheus at {self.url} not ready within {timeout} s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result (the tests' own reading of what Prometheus holds)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5.0)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def wait_for(self, promql: str, count: int, timeout: float = 30.0) -> None:
        """Until ``promql`` returns at least ``count`` series (e.g. the first scrape landed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.query(promql)) >= count:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{promql!r}: fewer than {count} series after {timeout} s")


def find_prometheus() -> str | None:
    return shutil.which("prometheus")


@contextlib.contextmanager
def running_prometheus(
    scrape_configs: list[dict[str, Any]], flags: Iterable[str] = ()
) -> Iterator[PromServer]:
    """A started server for as long as the block runs; skipped (failed in CI) without one."""
    binary = find_prometheus()
    if binary is None:
        message = "prometheus not found in PATH"
        if os.environ.get("CI"):
            pytest.fail(message + " — CI must install prometheus")
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="opsconsole-prom-"))
    server = PromServer(binary, root, scrape_configs, list(flags))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
