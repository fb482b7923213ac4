"""The workloads list: deployments, inference services and jobs, of one tenant or all."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from backend.schemas import Page, Workload, WorkloadKind
from opsconsole import format as fmt
from opsconsole.screens.listing import TenantListScreen
from opsconsole.shell import shell
from opsconsole.text import literal
from opsconsole.widgets.virtual_table import Column

KIND_SHORT = {
    WorkloadKind.DEPLOYMENT: "Deploy",
    WorkloadKind.INFERENCE_SERVICE: "ISvc",
    WorkloadKind.JOB: "Job",
}


def _kind(workload: Workload) -> Text:
    return Text(KIND_SHORT.get(workload.kind, str(workload.kind)))


def _stage(workload: Workload) -> Text:
    if workload.stage is None:
        return Text("-", style="dim")
    return fmt.text(workload.stage, "bold" if workload.stage == "production" else "")


def _replicas(workload: Workload) -> Text:
    return fmt.ratio(workload.ready_replicas, workload.replicas)


def _canary(workload: Workload) -> Text:
    if workload.canary_percent is None:
        return Text("-", style="dim")
    return Text(f"{workload.canary_percent}%", style="cyan")


def _optional(value: str | None) -> Text:
    return Text("-", style="dim") if value is None else literal(value)


COLUMNS = [
    Column("NAME", 22, lambda w: fmt.text(w.name, "bold"), sort="name", flex=True),
    Column("TENANT", 10, lambda w: _optional(w.tenant), sort="tenant"),
    Column("KIND", 6, _kind, sort="kind"),
    Column("STATUS", 11, lambda w: fmt.status(w.status), sort="status"),
    Column("READY", 5, _replicas, "right", sort="ready_replicas"),
    Column("GPUS", 4, lambda w: fmt.number(w.gpus), "right", sort="gpus"),
    Column("MODEL", 14, lambda w: _optional(w.model), sort="model"),
    Column("STAGE", 10, _stage, sort="stage"),
    Column("REV", 4, lambda w: _optional(w.revision), "right", sort="revision"),
    Column("CANARY", 6, _canary, "right", sort="canary_percent"),
]


class WorkloadsScreen(TenantListScreen):
    """All workloads, or one tenant's (``:workloads team-a``)."""

    list_name = "Workloads"
    default_sort = "name"

    def columns(self) -> list[Column]:
        return COLUMNS

    async def fetch_page(
        self, offset: int, limit: int, q: str | None, sort: str | None
    ) -> Page[Any]:
        client = shell(self.app).client
        return await client.workloads(
            tenant=self.tenant, q=q, sort=sort, offset=offset, limit=limit
        )
