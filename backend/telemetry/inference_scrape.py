"""Inference traffic scraped from the model server pods themselves (telemetry modes proxy and
direct), the way the DCGM exporters are scraped.

Model server pods are the running pods of model releases (label ``opsconsole.io/model``) and of
InferenceService predictors (label ``serving.kserve.io/inferenceservice``). vLLM serves
``/metrics`` on its API port: a Deployment's first container port; KServe's model container
listens on 8080, and Knative's queue-proxy serves its per-revision request metrics on 9091. A
pod's targets are scraped together; a round's traffic is the difference between this scrape and
the pod's previous one, and an endpoint's figures cover the scrapes of the last ``window`` seconds.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from backend.conventions import ISVC_LABEL, MODEL_LABEL
from backend.telemetry.discovery import api_server_proxy, auth_headers
from backend.telemetry.inference import (
    Counters,
    InferenceCollector,
    PodKey,
    PodTraffic,
    RoundRead,
    increase,
    pod_page_counters,
)
from backend.telemetry.pages import FetchOptions, PageGroup, PageResult, Verify, page_reader

KSERVE_PORT = 8080
QUEUE_PROXY_METRICS_PORT = 9091
DEFAULT_PORT = 8000  # vLLM's


def model_server_ports(pod: Mapping[str, Any]) -> list[int]:
    """The ports a model server pod serves metrics on; [] for any other pod."""
    labels = pod["metadata"].get("labels") or {}
    if labels.get(ISVC_LABEL):
        return [KSERVE_PORT, QUEUE_PROXY_METRICS_PORT]
    if MODEL_LABEL not in labels:
        return []
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            if port.get("containerPort"):
                return [int(port["containerPort"])]
    return [DEFAULT_PORT]


def model_server_pods(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [
        pod
        for pod in pods
        if (pod.get("status") or {}).get("phase") == "Running" and model_server_ports(pod)
    ]


def proxy_urls(pod: Mapping[str, Any], server: str) -> list[str]:
    """Through the API server's pod proxy."""
    meta = pod["metadata"]
    base = f"{server.rstrip('/')}/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
    return [f"{base}:{port}/proxy/metrics" for port in model_server_ports(pod)]


def direct_urls(pod: Mapping[str, Any]) -> list[str]:
    """At the pod's IP, for a backend inside the cluster."""
    ip = (pod.get("status") or {}).get("podIP")
    return [f"http://{ip}:{port}/metrics" for port in model_server_ports(pod)] if ip else []


class ScrapedInference(InferenceCollector):
    """Scrapes every model server pod each round; see the module docstring."""

    def __init__(
        self,
        pods: Callable[[], Iterable[Mapping[str, Any]]],
        urls: Callable[[Mapping[str, Any]], list[str]],
        *,
        api_client: Any = None,
        verify: Verify = True,
        interval: float = 15.0,
        history_length: int = 60,
        window: float = 60.0,
        concurrency: int = 64,
        timeout: float = 5.0,
        in_worker: bool = False,
    ) -> None:
        summary = max(1, math.ceil(window / interval - 1e-9))
        super().__init__(interval=interval, history_length=history_length, summary_rounds=summary)
        self.pods = pods
        self.urls = urls
        self.api_client = api_client
        self.pages = page_reader(FetchOptions(verify, concurrency, timeout), in_worker)
        self._last: dict[PodKey, tuple[float, Counters]] = {}

    async def stop(self) -> None:
        await super().stop()
        await self.pages.close()

    async def read_round(self) -> RoundRead:
        # In threads: finding the model servers looks at every pod of the fleet, and the
        # traffic is computed for each of them: 0.1-0.2 s of CPU for the large fleet's 4,000.
        pods, groups = await asyncio.to_thread(self._current_groups)
        read = await self.pages.read(groups)
        return await asyncio.to_thread(self._traffic, pods, read)

    def _current_groups(self) -> tuple[list[Mapping[str, Any]], list[PageGroup]]:
        """The model server pods now, and the pages of each."""
        pods = model_server_pods(self.pods())
        headers, proxy = {}, None
        if self.api_client is not None:  # through the API server, as the client reaches it
            headers, proxy = auth_headers(self.api_client), api_server_proxy(self.api_client)
        groups = [
            PageGroup(tuple(self.urls(p)), pod_page_counters, (), headers, proxy) for p in pods
        ]
        return pods, groups

    def _traffic(self, pods: list[Mapping[str, Any]], read: list[PageResult]) -> RoundRead:
        """Each pod's traffic since its previous scrape; the pods read become the previous."""
        now = time.monotonic()
        traffic: dict[PodKey, PodTraffic] = {}
        last: dict[PodKey, tuple[float, Counters]] = {}
        failures: dict[str, str] = {}
        compared = False
        for pod, (counters, error) in zip(pods, read, strict=True):
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            if error is not None:
                failures[f"{key[0]}/{key[1]}"] = error
            if counters is None:
                continue
            last[key] = (now, counters)
            previous = self._last.get(key)
            if previous is not None:
                compared = True
                traffic[key] = increase(previous[1], counters, now - previous[0])
        self._last = last
        # No round without a comparison, unless there was nothing to read: every pod failing
        # is no round of zero traffic.
        measured = compared or not (last or failures)
        return RoundRead(traffic if measured else None, len(pods), failures)
