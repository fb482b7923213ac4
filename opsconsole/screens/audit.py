"""The audit log: every change, who made it, when, why, and whether it worked — newest first.

The list follows the log live (it is fetched again on the app's interval) and keeps the chain's
state in its title at all times: ``chain ✓ 1,204 records`` or ``chain ✗ broken at #812``, as the
backend last checked it (``V`` checks the whole chain now). ``/`` takes the filter language of
``opsconsole audit list``: ``actor:alice action:quota.* outcome:failed since:1h`` plus free text.
Enter opens a record with its before/after diff. From a tenant or workload, ``h`` opens this
screen filtered to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Static

from backend.schemas import AuditPage, AuditRecord, AuditRecordDetail, ChainVerification
from opsconsole import format as fmt
from opsconsole.audit_query import QueryError, parse_query
from opsconsole.client import BackendError
from opsconsole.screens.listing import FilterInput
from opsconsole.screens.refreshing import (
    Body,
    DetailScreen,
    PanelTable,
    RefreshingScreen,
    panel_table,
    refill,
    update_static,
)
from opsconsole.shell import shell
from opsconsole.text import clean, literal

PAGE = 100
MAX_ROWS = 1000
OUTCOME_STYLES = {
    "succeeded": "green",
    "failed": "bold red",
    "reverted": "yellow",
    "denied": "bold magenta",
    "invalid": "magenta",
}


@dataclass
class AuditView:
    page: AuditPage
    chain: ChainVerification | None  # None: not checked yet


def outcome_cell(record: AuditRecord) -> Text:
    """``succeeded``/``failed``/... for an outcome; an intent shows as ``intent``, dim."""
    if record.outcome is None:
        return Text("intent", style="dim")
    return Text(record.outcome.value, style=OUTCOME_STYLES.get(record.outcome.value, ""))


def chain_text(chain: ChainVerification | None) -> Text:
    """The chain's state in a few words, coloured so that a broken chain cannot be missed."""
    if chain is None:
        return Text("chain: checking…", style="dim")
    if not chain.ok:
        text = Text(f"chain ✗ broken at #{chain.broken_at}", style="bold red")
        if chain.problem:
            text.append(": ")
            text.append_text(literal(chain.problem, style="red"))
        return text
    text = Text(f"chain ✓ {chain.records:,} records", style="green")
    if chain.external_head_error:
        text.append("  head outside the database not checked", style="yellow")
    return text


def _row(record: AuditRecord) -> tuple[Text, ...]:
    return (
        Text(str(record.seq), style="dim"),
        Text(record.at[5:19].replace("T", " ")),
        literal(record.actor, style="bold"),
        literal(record.action),
        outcome_cell(record),
        literal(record.target),
        literal(record.error or record.reason, style="dim" if not record.error else "red"),
    )


class AuditScreen(RefreshingScreen[AuditView]):
    """The audit log, newest first; ``query`` is an initial filter."""

    CSS_PATH = Path(__file__).with_name("audit.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        *RefreshingScreen.BINDINGS,
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_or_back", "Back"),
        Binding("m", "more", "Older"),
        Binding("V", "verify", "Verify chain"),
    ]

    def __init__(self, query: str = "") -> None:
        super().__init__()
        self.query_text = query.strip()
        self.limit = PAGE
        self.records: list[AuditRecord] = []
        self.query_error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="audit-title")
        yield FilterInput(
            value=self.query_text,
            placeholder="actor:alice action:quota.* outcome:failed since:1h text",
            id="filter",
        )
        table: DataTable[Any] = DataTable(id="records", cursor_type="row", zebra_stripes=True)
        table.add_columns("#", "TIME (UTC)", "ACTOR", "ACTION", "RESULT", "TARGET", "REASON")
        yield table

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#records", DataTable).focus()
        self._update_title()

    # -- data --------------------------------------------------------------------------------
    async def fetch(self) -> AuditView:
        client = shell(self.app).client
        try:
            where = parse_query(self.query_text)
        except QueryError as exc:
            self.query_error = str(exc)
            where = None
        else:
            self.query_error = None
        page = await client.audit(where, limit=self.limit) if where else AuditPage(items=[])
        try:
            chain: ChainVerification | None = await client.audit_chain()
        except BackendError as err:
            if err.status != 503:
                raise
            chain = None  # the backend's first check of the chain is still running
        return AuditView(page=page, chain=chain)

    def show(self, data: AuditView) -> None:
        self.records = data.page.items
        refill(self.query_one("#records", DataTable), [_row(r) for r in self.records], MAX_ROWS)
        self._update_title()

    def _update_title(self) -> None:
        title = Text("Audit log", style="bold")
        if self.data is not None:
            shown = len(self.records)
            more = "+" if self.data.page.next else ""
            title.append(f"  {shown}{more} records", style="dim")
        if self.query_text:
            title.append("  filter ", style="dim")
            title.append_text(literal(self.query_text, style="bold"))
        if self.query_error:
            title.append("  ")
            title.append_text(literal(self.query_error, style="bold red"))
        title.append("  ")
        title.append_text(chain_text(self.data.chain if self.data else None))
        update_static(self.query_one("#audit-title", Static), title)

    # -- keys --------------------------------------------------------------------------------
    def action_filter(self) -> None:
        self.query_one(FilterInput).open()

    def clear_filter(self) -> None:
        self.query_one(FilterInput).close()
        self._set_query("")

    def action_clear_or_back(self) -> None:
        if not self.query_text:
            raise SkipAction
        self.clear_filter()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._set_query(event.value)
        if not event.value:
            event.input.remove_class("-open")

    def _set_query(self, value: str) -> None:
        self.query_text = value.strip()
        self.limit = PAGE
        self.query_one("#records", DataTable).focus()
        self.load(force=True)

    def action_more(self) -> None:
        """Older records: a longer page of the same filter (up to ``MAX_ROWS``)."""
        if self.data is not None and self.data.page.next and self.limit < MAX_ROWS:
            self.limit = min(MAX_ROWS, self.limit + PAGE)
            self.load(force=True)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row == len(self.records) - 1:
            self.action_more()  # reaching the end asks for older records

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if 0 <= event.cursor_row < len(self.records):
            self.app.push_screen(AuditRecordScreen(self.records[event.cursor_row].seq))

    def action_verify(self) -> None:
        self.notify("verifying the whole chain…", markup=False)
        self.run_worker(self._verify(), group="verify", exclusive=True, exit_on_error=False)

    async def _verify(self) -> None:
        try:
            chain = await shell(self.app).client.audit_verify()
        except BackendError as err:
            shell(self.app).report_backend_error(err)
            return
        if self.data is not None:
            self.data.chain = chain
        self._update_title()
        if chain.ok:
            self.notify(chain_text(chain).plain, markup=False)
        else:
            self.notify(chain_text(chain).plain, severity="error", markup=False)


class AuditRecordScreen(DetailScreen[AuditRecordDetail]):
    """One record: who, from where, what, why, the outcome, and the change field by field."""

    CSS_PATH = Path(__file__).with_name("detail.tcss")
    AUTO_FOCUS = "#diff"
    BINDINGS: ClassVar[list[BindingType]] = [
        *DetailScreen.BINDINGS,
        Binding("c", "show_change", "Whole change"),
    ]

    def __init__(self, seq: int) -> None:
        super().__init__()
        self.seq = seq

    def compose(self) -> ComposeResult:
        header = Static(Text("Loading record…", style="dim"), id="header")
        header.border_title = f"Audit record #{self.seq}"
        yield header
        with Body(id="detail-body"):
            yield panel_table("diff", "Change", ["FIELD", "BEFORE", "AFTER"])
            yield panel_table("versions", "Resource versions", ["OBJECT", "VERSION"], cursor=False)

    async def fetch(self) -> AuditRecordDetail:
        return await shell(self.app).client.audit_record(self.seq)

    def show(self, data: AuditRecordDetail) -> None:
        update_static(self.query_one("#header", Static), _record_header(data))
        diff = self.query_one("#diff", PanelTable)
        refill(
            diff,
            [
                (literal(d.path), fmt.json_value(d.before), fmt.json_value(d.after))
                for d in data.diff
            ],
        )
        versions = self.query_one("#versions", PanelTable)
        refill(versions, [(literal(k), literal(v)) for k, v in data.resource_versions.items()])

    def action_show_change(self) -> None:
        if self.data is not None:
            self.app.push_screen(AuditScreen(f"change:{self.data.change_id}"))


def _record_header(r: AuditRecordDetail) -> Text:
    text = Text()
    text.append(f"#{r.seq} ", style="bold")
    text.append_text(outcome_cell(r))
    text.append("  ")
    text.append_text(literal(r.action, style="bold"))
    text.append(" ")
    text.append_text(literal(r.target))
    text.append(f"\n{r.at}  by ", style="dim")
    text.append_text(literal(r.actor, style="bold"))
    text.append(f" ({clean(r.role)})", style="dim")
    where = ", ".join(
        clean(w) for w in (r.source_address, r.ssh_client and f"ssh {r.ssh_client}") if w
    )
    if where:
        text.append(f" from {where}", style="dim")
    if r.tenants:
        text.append("\ntenants ", style="dim")
        text.append_text(literal(", ".join(r.tenants)))
    text.append("\nreason ", style="dim")
    text.append_text(literal(r.reason or "—"))
    if r.error:
        text.append("\nerror ", style="dim")
        text.append_text(literal(r.error, style="red"))
    text.append(f"\nchange {r.change_id}  hash {r.hash[:16]}…", style="dim")
    return text
