"""Where the DCGM exporters are: found among the cluster's pods by label, in the namespaces
configured for them only, reached through the API server's pod proxy (with the kubeconfig's
credentials, TLS and proxy) or directly at their pod IPs.

The scrape collector asks for its targets before every round, so exporters that come and go are
followed without a restart.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.rest import should_bypass_proxies

from backend.k8s.selectors import LabelPredicate, parse_label_selector
from backend.telemetry.pages import TlsFiles
from backend.telemetry.scrape import ScrapeTarget
from backend.telemetry.trust import namespace_allowed

# dcgm-exporter's labels: the GPU operator's, and the upstream Helm chart's.
EXTRA_DCGM_SELECTOR = "app.kubernetes.io/name=dcgm-exporter"


def selector_predicate(selector: str) -> LabelPredicate:
    """A label selector as the API server reads it (``a=b,c in (d,e)``); an empty one matches
    nothing here, since an exporter selector that selects every pod is a mistake."""
    predicate = parse_label_selector(selector)
    return predicate or (lambda _labels: False)


def exporter_pods(
    pods: Iterable[Mapping], selectors: list[LabelPredicate], namespaces: Iterable[str]
) -> Iterator[Mapping]:
    """Running pods in the exporters' namespaces whose labels match any of the selectors."""
    allowed = frozenset(namespaces)
    for pod in pods:
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        if not namespace_allowed(pod["metadata"].get("namespace", ""), allowed):
            continue
        labels = pod["metadata"].get("labels") or {}
        if any(matches(labels) for matches in selectors):
            yield pod


def auth_headers(api_client: Any) -> dict[str, str]:
    """The API client's header credentials (refreshed tokens included), for the pod proxy."""
    cfg = api_client.configuration
    headers = {
        auth["key"]: auth["value"]
        for auth in cfg.auth_settings().values()
        if auth.get("in") == "header" and auth.get("value")
    }
    if cfg.username and cfg.password and "authorization" not in headers:
        headers["authorization"] = cfg.get_basic_auth_token()
    return headers


def api_server_proxy(api_client: Any) -> str | None:
    """The HTTP proxy the Kubernetes client takes to the API server: the kubeconfig's
    ``proxy-url``, else the environment's (``HTTPS_PROXY``...), unless ``NO_PROXY`` exempts the
    server."""
    cfg = api_client.configuration
    if not cfg.proxy or should_bypass_proxies(cfg.host, cfg.no_proxy or ""):
        return None
    proxy: str = cfg.proxy
    return proxy


def tls_files(api_client: Any) -> TlsFiles:
    """TLS settings for scraping through the API server, equal to the kubeconfig's: CA, client
    certificate, skip-verify."""
    cfg = api_client.configuration
    return TlsFiles(
        ca_file=cfg.ssl_ca_cert or None,
        verify=bool(cfg.verify_ssl),
        cert_file=cfg.cert_file or None,
        key_file=cfg.key_file or None,
    )


def tls_context(api_client: Any) -> ssl.SSLContext:
    """``tls_files`` as a context."""
    return tls_files(api_client).context()


def _node(pod: Mapping) -> str | None:
    node: str | None = (pod.get("spec") or {}).get("nodeName")
    return node


@dataclass(frozen=True)
class ExporterDiscovery:
    """The exporters among ``pods()`` (the cluster cache's pods, read at each round), in the
    ``namespaces`` allowed for them (``*``: any)."""

    pods: Callable[[], Iterable[Mapping]]
    selector: str
    port: int
    namespaces: tuple[str, ...]

    def exporters(self) -> Iterator[Mapping]:
        selectors = [selector_predicate(self.selector), selector_predicate(EXTRA_DCGM_SELECTOR)]
        return exporter_pods(self.pods(), selectors, self.namespaces)

    def proxy_targets(self, server: str, api_client: Any) -> list[ScrapeTarget]:
        """Through the API server's pod proxy, as ``kubectl get --raw`` reaches them: with the
        client's credentials and through its HTTP proxy (a kubeconfig's ``proxy-url``)."""
        base = server.rstrip("/")
        headers = auth_headers(api_client)
        proxy = api_server_proxy(api_client)
        return [
            ScrapeTarget(
                url=f"{base}/api/v1/namespaces/{p['metadata']['namespace']}/pods/"
                f"{p['metadata']['name']}:{self.port}/proxy/metrics",
                node=_node(p),
                headers=headers,
                pod=p["metadata"]["name"],
                proxy=proxy,
            )
            for p in self.exporters()
        ]

    def direct_targets(self) -> list[ScrapeTarget]:
        """Pod IPs, for a backend running inside the cluster."""
        return [
            ScrapeTarget(
                url=f"http://{p['status']['podIP']}:{self.port}/metrics",
                node=_node(p),
                pod=p["metadata"]["name"],
            )
            for p in self.exporters()
            if (p.get("status") or {}).get("podIP")
        ]


def url_targets(urls: Iterable[str]) -> list[ScrapeTarget]:
    """Fixed exporter URLs (no discovery, no pod): the operator vouches for them, and each
    sample's host label stands for its node."""
    return [ScrapeTarget(url=url, node=None) for url in urls]
