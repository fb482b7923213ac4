"""The endpoints list: every model Deployment and InferenceService with its request health, the
worst first (highest error rate, then p99), of one tenant or all.

The overview shows the five worst; this is the whole list, filtered and sorted on the server
like the other lists, for an incident in which more than a few releases suffer. Enter opens the
workload's detail, with its revisions and sparklines. While some model servers' metrics cannot be
read, the title says so: their figures are missing or old.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from backend.schemas import EndpointHealth, Page
from opsconsole import format as fmt
from opsconsole.screens.listing import TenantListScreen
from opsconsole.screens.workloads import KIND_SHORT
from opsconsole.shell import shell
from opsconsole.text import literal
from opsconsole.widgets.endpoints import error_rate, freshness_of, latency, rate, scrape_trouble
from opsconsole.widgets.virtual_table import Column


def _tenant(endpoint: EndpointHealth) -> Text:
    return Text("-", style="dim") if endpoint.tenant is None else literal(endpoint.tenant)


def _slo(endpoint: EndpointHealth) -> Text:
    """The p99 objective, bold red when the p99 is over it."""
    if endpoint.slo_p99_seconds is None:
        return Text("-", style="dim")
    out = latency(endpoint.slo_p99_seconds)
    p99 = endpoint.p99_seconds
    if p99 is not None and p99 > endpoint.slo_p99_seconds:
        out.stylize("bold red")
    return out


def _split(endpoint: EndpointHealth) -> Text:
    """The newest revision's share of a KServe split, or how many revisions serve."""
    if not endpoint.revisions:
        return Text("-", style="dim")
    newest = endpoint.revisions[0]
    if newest.traffic_percent is not None and newest.traffic_percent < 100:
        return Text(f"{newest.traffic_percent}%", style="cyan")
    if len(endpoint.revisions) > 1:
        return Text(f"{len(endpoint.revisions)} revs", style="yellow")
    return Text("-", style="dim")


COLUMNS = [
    Column(
        "ENDPOINT",
        22,
        lambda e: fmt.text(f"{e.namespace}/{e.name}", "bold"),
        sort="name",
        flex=True,
    ),
    Column("KIND", 6, lambda e: Text(KIND_SHORT.get(e.kind, str(e.kind))), sort="kind"),
    Column("REQ/S", 8, lambda e: rate(e.request_rate), "right", sort="request_rate"),
    Column("ERR", 6, lambda e: error_rate(e.error_rate), "right", sort="error_rate"),
    Column("P50", 6, lambda e: latency(e.p50_seconds), "right", sort="p50_seconds"),
    Column("P99", 6, lambda e: latency(e.p99_seconds), "right", sort="p99_seconds"),
    Column("SLO", 6, _slo, "right", sort="slo_p99_seconds"),
    Column("SPLIT", 6, _split, "right"),
    Column("TENANT", 10, _tenant, sort="tenant"),  # mostly the namespace's: last
]


class EndpointsScreen(TenantListScreen):
    """All endpoints, or one tenant's (``:endpoints team-a``); the worst first."""

    list_name = "Endpoints"

    def columns(self) -> list[Column]:
        return COLUMNS

    async def fetch_page(
        self, offset: int, limit: int, q: str | None, sort: str | None
    ) -> Page[Any]:
        client = shell(self.app).client
        return await client.endpoints(
            tenant=self.tenant, q=q, sort=sort, offset=offset, limit=limit
        )

    def heading(self) -> Text:
        heading = super().heading()
        trouble = scrape_trouble(freshness_of(self))
        if trouble:
            heading.append(f"  {trouble}", style="yellow")
        return heading
