"""The backend's settings: environment (``OPSCONSOLE_*``), then command-line flags on top.

pydantic-settings reads the environment; ``opsconsole serve`` flags override single fields with
``Settings.model_copy(update=...)``. Defaults suit a laptop: loopback, a SQLite file under the XDG
data directory, telemetry scraped through the API server's pod proxy (works from outside the
cluster, with the kubeconfig's credentials).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

TelemetryMode = Literal["proxy", "direct", "urls", "prometheus", "nvml", "off"]


def data_dir() -> Path:
    """``$XDG_DATA_HOME/opsconsole`` (``~/.local/share/opsconsole`` by default)."""
    return Path(platformdirs.user_data_dir("opsconsole", appauthor=False))


def default_database_url() -> str:
    """A SQLite file in the data directory; the directory is created when the engine is."""
    return f"sqlite:///{data_dir() / 'opsconsole.db'}"


class Settings(BaseSettings):
    """Everything ``opsconsole serve`` can be told; see the field descriptions."""

    model_config = SettingsConfigDict(env_prefix="OPSCONSOLE_", extra="ignore")

    kubeconfig: Path | None = Field(
        None, description="kubeconfig file; default as kubectl finds it ($KUBECONFIG, ~/.kube)."
    )
    context: str | None = Field(None, description="kubeconfig context; default current-context.")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    database_url: str = Field(default_factory=default_database_url)
    telemetry_mode: TelemetryMode = Field(
        "proxy",
        description="proxy: exporter pods through the API server's pod proxy; direct: "
        "podIP:9400 (in-cluster); urls: dcgm_urls; prometheus: dcgm-exporter's series from "
        "prometheus_url; nvml: local GPUs; off: none.",
    )
    dcgm_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Exporter URLs for telemetry_mode=urls (comma-separated)."
    )
    prometheus_url: str = Field(
        "http://127.0.0.1:9090",
        description="Prometheus server (or a proxy in front of it) for telemetry_mode=prometheus.",
    )
    prometheus_token: str | None = Field(
        None, description="Bearer token sent to Prometheus; none by default."
    )
    prometheus_token_file: Path | None = Field(
        None, description="File holding the bearer token, read again each round (rotated tokens)."
    )
    prometheus_ca_file: Path | None = Field(
        None, description="CA bundle (file or folder) to verify Prometheus's TLS certificate."
    )
    dcgm_selector: str = "app=nvidia-dcgm-exporter"
    dcgm_port: int = 9400
    scrape_interval: float = Field(15.0, gt=0)
    history_length: int = Field(60, ge=1)
    model_debounce: float = Field(0.5, ge=0)
    audit_namespace: str = Field(
        "opsconsole",
        description="The backend's own namespace: the audit head's ConfigMap is kept there.",
    )
    idle_utilization_percent: float = 5.0
    hot_temperature_c: float = 85.0

    @field_validator("dcgm_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        """Accept ``a,b`` (the natural form in an environment variable), a JSON list, a list."""
        if isinstance(value, str) and value.lstrip().startswith("["):
            return json.loads(value)
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
