"""The tenants list: quota, usage, borrowing and waiting GPUs per team, with its cost over the
last 7 days and the GPUs it holds idle; enter opens a tenant, ``Q`` its quota review.

The cost columns come from ``GET /cost`` (one call beside each page); they are not sortable, and
show N/A where the backend has no cost showback.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from backend.schemas import Page, Tenant, TenantCost
from opsconsole import format as fmt
from opsconsole.client import BackendError
from opsconsole.cost_view import money
from opsconsole.screens.listing import ListScreen
from opsconsole.screens.quotas import QuotaScreen
from opsconsole.shell import shell
from opsconsole.widgets.virtual_table import Column


def _borrowed(tenant: Tenant) -> Text:
    return fmt.number(tenant.gpu_borrowed) if tenant.gpu_borrowed else Text("-", style="dim")


def _pending(tenant: Tenant) -> Text:
    if not tenant.gpu_pending:
        return Text("-", style="dim")
    return Text(str(tenant.gpu_pending), style="yellow")


COLUMNS = [
    Column("TENANT", 20, lambda t: fmt.text(t.name, "bold"), sort="name", flex=True),
    Column("QUOTA", 6, lambda t: fmt.number(t.gpu_quota), "right", sort="gpu_quota"),
    Column("USED", 6, lambda t: fmt.number(t.gpu_used), "right", sort="gpu_used"),
    Column("BORROW", 6, _borrowed, "right", sort="gpu_borrowed"),
    Column("PENDING", 7, _pending, "right", sort="gpu_pending"),
    Column("UTIL", 5, lambda t: fmt.percent(t.utilization), "right", sort="utilization"),
    Column("WORKLOADS", 9, lambda t: fmt.number(t.workloads), "right", sort="workloads"),
]


class TenantsScreen(ListScreen):
    """Every tenant; sorted by name unless the operator cycles the sort (``s``)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *ListScreen.BINDINGS,
        Binding("Q", "quota", "Quota"),
    ]
    default_sort = "name"
    COST_WINDOW = "7d"

    def __init__(self) -> None:
        super().__init__()
        self._costs: dict[str, TenantCost] | None = None  # None: the backend has no cost

    def columns(self) -> list[Column]:
        return [
            *COLUMNS,
            Column(f"COST {self.COST_WINDOW.upper()}", 10, self._cost, "right"),
            Column("IDLE", 4, self._idle, "right"),
        ]

    def _cost(self, tenant: Tenant) -> Text:
        if self._costs is None:
            return fmt.na()
        found = self._costs.get(tenant.name)
        return money(found.cost) if found is not None else Text("-", style="dim")

    def _idle(self, tenant: Tenant) -> Text:
        found = self._costs.get(tenant.name) if self._costs is not None else None
        if found is None or not found.idle_gpus:
            return Text("-", style="dim")
        return Text(str(found.idle_gpus), style="yellow")

    async def fetch_page(
        self, offset: int, limit: int, q: str | None, sort: str | None
    ) -> Page[Any]:
        client = shell(self.app).client
        page, _ = await asyncio.gather(
            client.tenants(q=q, sort=sort, offset=offset, limit=limit), self._fetch_costs()
        )
        return page

    async def _fetch_costs(self) -> None:
        try:
            report = await shell(self.app).client.cost(self.COST_WINDOW)
        except BackendError:  # an older backend: the columns say N/A, the list still works
            self._costs = None
            return
        self._costs = {t.tenant: t for t in report.tenants}

    def heading(self) -> Text:
        return Text("Tenants", style="bold")

    def open_item(self, item: Tenant) -> None:
        shell(self.app).action_show_tenant(item.name)

    def action_quota(self) -> None:
        """The quota review of the highlighted tenant."""
        tenant = self.table.cursor_item
        if isinstance(tenant, Tenant):
            self.app.push_screen(QuotaScreen(tenant.name))
