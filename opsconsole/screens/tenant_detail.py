"""One tenant: quota per GPU model against used / borrowed / pending, its queue, workloads and GPUs.

Three small calls per refresh (the tenant, its workloads, its GPUs), made concurrently. Enter on a
workload opens it; enter on a GPU opens its node.
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

from backend.schemas import Gpu, Page, Tenant, Workload
from opsconsole import format as fmt
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


@dataclass(slots=True)
class TenantView:
    tenant: Tenant
    workloads: Page[Workload]
    gpus: Page[Gpu]


class TenantDetailScreen(DetailScreen[TenantView]):
    """``enter`` on a tenant: where its quota goes, and what runs on it."""

    CSS_PATH = Path(__file__).with_name("detail.tcss")
    AUTO_FOCUS = "#workloads"
    TITLE = "Tenant"
    BINDINGS: ClassVar[list[BindingType]] = [
        *DetailScreen.BINDINGS,
        Binding("w", "focus_panel('workloads')", "Workloads"),
        Binding("g", "focus_panel('gpus')", "GPUs"),
        Binding("h", "history", "History"),
        Binding("Q", "quota", "Quota"),
    ]

    def action_history(self) -> None:
        """The audit log of changes that affected this tenant."""
        self.app.push_screen(AuditScreen(f"tenant:{self.tenant_name}"))

    def action_quota(self) -> None:
        """The quota review of this tenant, where its quota can be changed."""
        self.app.push_screen(QuotaScreen(self.tenant_name))

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

    async def fetch(self) -> TenantView:
        client = shell(self.app).client
        tenant, workloads, gpus = await asyncio.gather(
            client.tenant(self.tenant_name),
            client.workloads(tenant=self.tenant_name, limit=ROW_LIMIT),
            client.gpus(tenant=self.tenant_name, limit=ROW_LIMIT),
        )
        return TenantView(tenant, workloads, gpus)

    def show(self, data: TenantView) -> None:
        update_static(self.query_one("#header", Static), _header(data.tenant))
        self._show_quotas(data.tenant)
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


def _limit(value: int | None) -> Text:
    return Text("∞", style="dim") if value is None else Text(str(value))


def _gpus(held: int, requested: int) -> Text:
    if requested and held < requested:
        return Text(f"{held}/{requested}", style="yellow")
    return Text(str(held))


def _count_title(what: str, shown: int, total: int) -> str:
    return f"{what} ({total})" if shown >= total else f"{what} (first {shown} of {total})"
