"""The tenants list: quota, usage, borrowing and waiting GPUs per team; enter opens a tenant, ``Q``
its quota review."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from backend.schemas import Page, Tenant
from opsconsole import format as fmt
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

    def columns(self) -> list[Column]:
        return COLUMNS

    async def fetch_page(
        self, offset: int, limit: int, q: str | None, sort: str | None
    ) -> Page[Any]:
        return await shell(self.app).client.tenants(q=q, sort=sort, offset=offset, limit=limit)

    def heading(self) -> Text:
        return Text("Tenants", style="bold")

    def open_item(self, item: Tenant) -> None:
        shell(self.app).action_show_tenant(item.name)

    def action_quota(self) -> None:
        """The quota review of the highlighted tenant."""
        tenant = self.table.cursor_item
        if isinstance(tenant, Tenant):
            self.app.push_screen(QuotaScreen(tenant.name))
