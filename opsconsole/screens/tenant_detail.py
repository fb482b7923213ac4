"""One tenant: quota per GPU model against used / borrowed / pending, its queue, workloads and
GPUs, then its cost and the GPUs it holds idle (``c`` goes there).

A few small calls per refresh (the tenant, its workloads, its GPUs, its cost over 24 h, 7 d and
30 d), made concurrently. Enter on a workload opens it; enter on a GPU opens its node. ``R``
proposes to reclaim the GPUs it holds idle: the quota review opens with the edit prefilled (the
quota lowered by the idle GPUs), to be staged, reviewed and applied like any quota change.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from backend.schemas import CostReport, Gpu, Page, Tenant, Workload
from opsconsole import format as fmt
from opsconsole.client import BackendClient, BackendError
from opsconsole.cost_view import idle_for, money, reclaim_target
from opsconsole.screens.audit import AuditScreen
from opsconsole.screens.quotas import QuotaScreen
from opsconsole.screens.refreshing import (
    Body,
    DetailScreen,
    panel_table,
    refill,
    update_static,
)
from opsconsole.shell import shell
from opsconsole.text import clean, literal

ROW_LIMIT = 200  # a tenant with more shows the first 200 and says so; the lists have the rest
COST_WINDOWS = ("24h", "7d", "30d")


@dataclass(slots=True)
class TenantView:
    tenant: Tenant
    workloads: Page[Workload]
    gpus: Page[Gpu]
    costs: list[CostReport] | BackendError  # per window; the error when the backend has none


class TenantDetailScreen(DetailScreen[TenantView]):
    """``enter`` on a tenant: where its quota goes, and what runs on it."""

    CSS_PATH = Path(__file__).with_name("detail.tcss")
    AUTO_FOCUS = "#workloads"
    TITLE = "Tenant"
    BINDINGS: ClassVar[list[BindingType]] = [
        *DetailScreen.BINDINGS,
        Binding("w", "focus_panel('workloads')", "Workloads"),
        Binding("g", "focus_panel('gpus')", "GPUs"),
        Binding("c", "focus_panel('cost')", "Cost"),
        Binding("h", "history", "History"),
        Binding("Q", "quota", "Quota"),
        Binding("R", "reclaim", "Reclaim idle"),
    ]

    def action_history(self) -> None:
        """The audit log of changes that affected this tenant."""
        self.app.push_screen(AuditScreen(f"tenant:{self.tenant_name}"))

    def action_quota(self) -> None:
        """The quota review of this tenant, where its quota can be changed."""
        self.app.push_screen(QuotaScreen(self.tenant_name))

    def action_reclaim(self) -> None:
        """The quota editor, prefilled to give back the GPUs this tenant holds idle."""
        costs = self.data.costs if self.data is not None else None
        target = reclaim_target(costs[0], self.tenant_name) if isinstance(costs, list) else None
        if target is None:
            self.notify("no idle GPUs held against a quota", markup=False)
            return
        self.app.push_screen(QuotaScreen(self.tenant_name, reclaim=target))

    def __init__(self, name: str) -> None:
        super().__init__()
        self.tenant_name = name
        self._workloads: list[Workload] = []
        self._gpus: list[Gpu] = []

    def compose(self) -> ComposeResult:
        header = Static(Text("Loading tenant…", style="dim"), id="header", classes="panel")
        header.border_title = literal(f"Tenant {clean(self.tenant_name)}")
        yield header
        with Body(id="detail-body"):
            yield panel_table(
                "quotas",
                "Quota per GPU model",
                ["MODEL", "FLAVOR", "USED / NOMINAL", "BORROWED", "PENDING", "BORROW≤", "LEND≤"],
            )
            yield panel_table(
                "workloads",
                "Workloads",
                ["KIND", "NAMESPACE", "NAME", "STATUS", "READY", "GPUS", "MODEL", "STAGE"],
            )
            yield panel_table(
                "gpus",
                "GPUs",
                ["GPU", "MODEL", "UTIL", "MEMORY", "TEMP", "POD", "WORKLOAD"],
            )
            yield panel_table(
                "cost",
                "Cost",
                ["WINDOW", "MODEL", "GPU-HOURS", "EFFICIENCY", "PRICE/H", "COST"],
                enter_shows_text=True,
            )
            idle = Static("", id="idle", classes="panel")
            idle.border_title = "Idle GPUs now  (R reclaim)"
            yield idle

    async def fetch(self) -> TenantView:
        client = shell(self.app).client
        tenant, workloads, gpus, costs = await asyncio.gather(
            client.tenant(self.tenant_name),
            client.workloads(tenant=self.tenant_name, limit=ROW_LIMIT),
            client.gpus(tenant=self.tenant_name, limit=ROW_LIMIT),
            _costs(client),
        )
        return TenantView(tenant, workloads, gpus, costs)

    def show(self, data: TenantView) -> None:
        update_static(self.query_one("#header", Static), _header(data.tenant))
        self._show_quotas(data.tenant)
        self._show_cost(data.costs)
        self._workloads = list(data.workloads.items)
        self._gpus = list(data.gpus.items)
        self._show_workloads(data.workloads)
        self._show_gpus(data.gpus)

    def _show_quotas(self, tenant: Tenant) -> None:
        width = 24 if self.app.size.width >= 120 else 10
        rows = [
            (
                literal(q.gpu_model, "bold"),
                fmt.text(q.flavor),
                fmt.usage_bar(q.used, q.nominal, width, borrowed=q.borrowed, pending=q.pending),
                Text(str(q.borrowed), style="yellow" if q.borrowed else "dim"),
                Text(str(q.pending), style="yellow" if q.pending else "dim"),
                _limit(q.borrowing_limit),
                _limit(q.lending_limit),
            )
            for q in tenant.quotas
        ]
        table = self.query_one("#quotas", DataTable)
        refill(table, rows or [(Text("no GPU quota", style="dim"), "", "", "", "", "", "")])

    def _show_cost(self, costs: list[CostReport] | BackendError) -> None:
        table = self.query_one("#cost", DataTable)
        idle = self.query_one("#idle", Static)
        if isinstance(costs, BackendError):
            refill(table, [(Text("cost unavailable", style="dim"), literal(costs.message))])
            update_static(idle, Text("unknown", style="dim"))
            return
        rows = [
            (
                Text(report.since, style="bold"),
                fmt.model_name(row.gpu_model) if row.gpu_model != "*" else Text("any"),
                fmt.number(row.gpu_hours, 1),
                fmt.percent(row.efficiency),
                money(row.price_per_hour),
                money(row.cost),
            )
            for report in costs
            for row in report.items
            if row.tenant == self.tenant_name
        ]
        refill(table, rows or [(Text("no usage history yet", style="dim"), "", "", "", "", "")])
        update_static(idle, _idle(costs[0], self.tenant_name))

    def _show_workloads(self, page: Page[Workload]) -> None:
        table = self.query_one("#workloads", DataTable)
        table.border_title = _count_title("Workloads", len(page.items), page.total)
        rows = [
            (
                literal(w.kind.value),
                literal(w.namespace),
                literal(w.name, "bold"),
                fmt.status(w.status.value),
                fmt.ratio(w.ready_replicas, w.replicas),
                _gpus(w.gpus, w.gpus_requested),
                fmt.text(w.model),
                fmt.text(w.stage),
            )
            for w in page.items
        ]
        refill(table, rows)

    def _show_gpus(self, page: Page[Gpu]) -> None:
        table = self.query_one("#gpus", DataTable)
        table.border_title = _count_title("GPUs", len(page.items), page.total)
        rows = [
            (
                literal(f"{clean(g.node)}/gpu{g.index}"),
                fmt.model_name(g.model),
                fmt.percent(g.utilization),
                fmt.memory(g.memory_used_mib, g.memory_total_mib),
                fmt.celsius(g.temperature_c),
                fmt.text(g.pod),
                fmt.text(g.workload),
            )
            for g in page.items
        ]
        refill(table, rows)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        index = event.cursor_row
        if event.data_table.id == "workloads" and index < len(self._workloads):
            w = self._workloads[index]
            shell(self.app).action_show_workload(w.namespace, w.kind.value, w.name)
        elif event.data_table.id == "gpus" and index < len(self._gpus):
            shell(self.app).action_show_node(self._gpus[index].node)


def _header(t: Tenant) -> Text:
    out = Text()
    out.append("quota ", style="bold")
    out.append_text(fmt.usage_bar(t.gpu_used, t.gpu_quota, 16, borrowed=t.gpu_borrowed))
    if t.gpu_pending:
        out.append(f"  {t.gpu_pending} pending", style="yellow")
    out.append("  util ", style="bold")
    out.append_text(fmt.percent(t.utilization))
    out.append("\nmode ", style="bold")
    out.append(t.quota_mode.value)
    out.append("  queue ", style="bold")
    out.append_text(fmt.text(t.cluster_queue))
    out.append("  cohort ", style="bold")
    out.append_text(fmt.text(t.cohort))
    out.append("  workloads ", style="bold")
    out.append(str(t.workloads))
    if t.workloads_pending:
        out.append(f" ({t.workloads_pending} pending)", style="yellow")
    out.append("\nnamespaces ", style="bold")
    out.append_text(literal(", ".join(clean(ns) for ns in t.namespaces) or "-"))
    return out


async def _costs(client: BackendClient) -> list[CostReport] | BackendError:
    """The cost over each window; a backend without cost showback leaves the rest of the view
    intact."""
    try:
        return list(await asyncio.gather(*(client.cost(w) for w in COST_WINDOWS)))
    except BackendError as exc:
        return exc


def _idle(report: CostReport, tenant: str) -> Text:
    groups = [g for g in report.idle if g.tenant == tenant]
    if not groups:
        return Text("none", style="dim")
    out = Text()
    for group in groups:
        if out:
            out.append("\n")
        out.append(f"{group.gpus} ", style="bold yellow")
        out.append_text(fmt.model_name(group.gpu_model))
        out.append(f" idle for {idle_for(group)}, ")
        out.append_text(money(group.cost_per_day))
        out.append("/day")
    return out


def _limit(value: int | None) -> Text:
    return Text("∞", style="dim") if value is None else Text(str(value))


def _gpus(held: int, requested: int) -> Text:
    if requested and held < requested:
        return Text(f"{held}/{requested}", style="yellow")
    return Text(str(held))


def _count_title(what: str, shown: int, total: int) -> str:
    return f"{what} ({total})" if shown >= total else f"{what} (first {shown} of {total})"
