"""GPU telemetry: DCGM exporter scraping (scrape.py), dcgm-exporter's series read from Prometheus
(prometheus_api.py) or local NVML (nvml.py), parsed into GpuSample (dcgm.py), with a short
utilization history per GPU (history.py); model servers' request traffic per pod (inference.py),
scraped (inference_scrape.py) or read from Prometheus (inference_prometheus.py). Scraped pages
are fetched and parsed in a worker process or the event loop (pages.py).

The NVML and Prometheus collectors are imported by the modes that use them only: the backend's
start pays for every import while it lists the cluster."""

from backend.telemetry.base import TelemetrySnapshot, TelemetryUnavailable
from backend.telemetry.dcgm import GpuSample, parse_dcgm
from backend.telemetry.prometheus import PromParseError
from backend.telemetry.scrape import ScrapeTarget, TelemetryCollector

__all__ = [
    "GpuSample",
    "PromParseError",
    "ScrapeTarget",
    "TelemetryCollector",
    "TelemetrySnapshot",
    "TelemetryUnavailable",
    "parse_dcgm",
]
