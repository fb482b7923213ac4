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
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

TelemetryMode = Literal["proxy", "direct", "urls", "prometheus", "nvml", "off"]


class AlertRule(BaseModel):
    """One alert rule: it fires once its condition (the observed value against ``threshold``)
    has held for ``for_seconds`` (Prometheus's ``for:``); pending until then."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(
        description="What the observed value is compared with; null (gpu_hot): hot_temperature_c."
    )
    for_seconds: float = Field(ge=0, description="How long the condition holds before it fires.")
    severity: Literal["critical", "warning", "info"] = "warning"
    enabled: bool = True


DEFAULT_ALERT_RULES: dict[str, AlertRule] = {
    "gpu_saturated": AlertRule(threshold=95.0, for_seconds=600),
    "gpu_idle": AlertRule(threshold=5.0, for_seconds=1800),
    "gpu_xid": AlertRule(threshold=0.0, for_seconds=0, severity="critical"),
    "gpu_hot": AlertRule(threshold=None, for_seconds=300),
    "rollout_stuck": AlertRule(threshold=0.0, for_seconds=0),
    "endpoint_errors": AlertRule(threshold=1.0, for_seconds=300),
    "endpoint_slow": AlertRule(threshold=1.0, for_seconds=300),
    "tenant_starving": AlertRule(threshold=0.0, for_seconds=600),
    "telemetry_missing": AlertRule(threshold=1.0, for_seconds=300),
}


def data_dir() -> Path:
    """``$XDG_DATA_HOME/opsconsole`` (``~/.local/share/opsconsole`` by default)."""
    return Path(platformdirs.user_data_dir("opsconsole", appauthor=False))


def default_database_url() -> str:
    """A SQLite file in the data directory; the directory is created when the engine is."""
    return f"sqlite:///{data_dir() / 'opsconsole.db'}"


class Settings(BaseSettings):
    """Everything ``opsconsole serve`` can be told; see the field descriptions."""

    model_config = SettingsConfigDict(
        env_prefix="OPSCONSOLE_", env_nested_delimiter="__", extra="ignore"
    )

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
    dcgm_namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["gpu-operator"],
        description="Namespaces whose pods may be DCGM exporters (comma-separated; * = any): the "
        "GPU operator's. A matching pod elsewhere, e.g. a tenant's, is not scraped.",
    )
    dcgm_port: int = 9400
    scrape_interval: float = Field(15.0, gt=0)
    gc_freeze: bool = Field(
        True,
        description="After each fleet model, freeze the objects alive out of the cyclic garbage "
        "collector's later collections (see backend/garbage.py): a large fleet's full "
        "collections otherwise stall every request for about a second, several times a minute.",
    )
    scrape_in_worker: bool = Field(
        True,
        description="Fetch and parse the exporters' and model servers' pages in a worker "
        "process per collector, so that a large fleet's scrapes do not slow the API down; "
        "false reads them in the backend's own event loop.",
    )
    inference_metrics: bool = Field(
        True,
        description="Read the model servers' request metrics (endpoint health) from the "
        "telemetry source: scraped in the proxy and direct modes, queried in prometheus mode.",
    )
    inference_window: float = Field(
        60.0,
        gt=0,
        description="Seconds of model server traffic behind each endpoint's request rate, "
        "error rate and latency quantiles: the range of increase() in telemetry_mode="
        "prometheus, the scrapes within it in the scrape modes.",
    )
    inference_interval: float = Field(
        30.0,
        gt=0,
        description="Seconds between two readings of the model servers' metrics: scraping "
        "thousands of pods costs the backend and the API server more than the exporters do.",
    )
    history_length: int = Field(60, ge=1)
    model_debounce: float = Field(0.1, ge=0)
    model_pause_budget: float = Field(
        0.25,
        ge=0,
        description="Seconds a fleet model update may pause in all for requests in flight "
        "(0: never): how much later the model may be under a steady load of reads.",
    )
    audit_namespace: str = Field(
        "opsconsole",
        description="The backend's own namespace: the audit head's ConfigMap is kept there.",
    )
    idle_utilization_percent: float = 5.0
    hot_temperature_c: float = 85.0
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names the API answers to besides loopback and the listen address "
        "(comma-separated; * = any): the Service's DNS name in a cluster.",
    )
    tls_cert: Path | None = Field(None, description="Serve HTTPS with this certificate (PEM).")
    tls_key: Path | None = Field(None, description="The certificate's private key (PEM).")
    auth_failure_limit: int = Field(
        20, ge=1, description="Unknown tokens per client address within the window (then 429)."
    )
    auth_failure_window: float = Field(60.0, gt=0, description="Seconds.")
    token_cache_seconds: float = Field(
        5.0, ge=0, description="How long a token lookup is reused (revocations wait this long)."
    )
    quota_oversubscription: float = Field(
        1.0,
        gt=0,
        description="A GPU model's total nominal quota may reach its GPUs times this ratio.",
    )
    quota_usage_interval: float = Field(
        300.0, gt=0, description="Seconds between two recordings of the quota usage history."
    )
    quota_usage_days: float = Field(90.0, gt=0, description="Days of quota usage history kept.")
    gpu_prices: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict,
        description="Hourly price of one GPU per model (product or Kueue flavor's product; '*' "
        "for ResourceQuota tenants' any-model quota): 'NVIDIA-H100-80GB-HBM3=4.5,*=2' or a JSON "
        "object. A model without a price shows GPU-hours with its cost unknown.",
    )
    alert_rules: dict[str, AlertRule] = Field(
        default_factory=lambda: dict(DEFAULT_ALERT_RULES),
        description="Per rule, what differs from its default (JSON, or "
        "OPSCONSOLE_ALERT_RULES__GPU_IDLE__FOR_SECONDS=3600).",
    )
    alert_interval: float = Field(
        15.0, gt=0, description="Seconds between evaluations while the fleet does not change."
    )
    alert_history_days: float = Field(30.0, gt=0, description="Days of alert history kept.")

    @field_validator("dcgm_urls", "dcgm_namespaces", "allowed_hosts", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        """Accept ``a,b`` (the natural form in an environment variable), a JSON list, a list."""
        if isinstance(value, str) and value.lstrip().startswith("["):
            return json.loads(value)
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("gpu_prices", mode="before")
    @classmethod
    def _split_prices(cls, value: object) -> object:
        """Accept ``model=price,model=price`` or a JSON object."""
        if isinstance(value, str) and value.lstrip().startswith("{"):
            return json.loads(value)
        if isinstance(value, str):
            pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
            if any(len(pair) != 2 for pair in pairs):
                raise ValueError("gpu_prices: expected model=price,model=price")
            return {model.strip(): price.strip() for model, price in pairs}
        return value

    @field_validator("gpu_prices")
    @classmethod
    def _prices_not_negative(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(model for model, price in value.items() if price < 0)
        if bad:
            raise ValueError(f"gpu_prices: negative price for {', '.join(bad)}")
        return value

    @field_validator("alert_rules", mode="before")
    @classmethod
    def _merge_alert_rules(cls, value: object) -> object:
        """Each rule given is its default with the fields given replaced; unknown rules fail."""
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, dict):
            return value
        unknown = sorted(set(value) - set(DEFAULT_ALERT_RULES))
        if unknown:
            raise ValueError(
                f"unknown alert rule {unknown[0]!r}; one of {sorted(DEFAULT_ALERT_RULES)}"
            )
        merged: dict[str, object] = {}
        for name, rule in DEFAULT_ALERT_RULES.items():
            given = value.get(name, {})
            if isinstance(given, AlertRule):
                given = given.model_dump()
            merged[name] = {**rule.model_dump(), **given} if isinstance(given, dict) else given
        return merged

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self
