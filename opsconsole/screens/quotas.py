"""The quota review: every tenant × GPU model, its quota against its use, and advice; edits are
staged into one change set that is reviewed and applied as a whole.

Each row shows the nominal quota, the GPUs in use and borrowed, the 7-day average and peak of the
GPUs held (from the backend's usage history), the GPUs pending and held idle, and a suggestion
(``opsconsole.quota_advice``) with its reason. ``s`` sets a row's quota, ``t`` transfers some of
it to another tenant, ``a`` accepts the row's suggestion: each adds a change to the staged set
below the list, and nothing is written until the set is reviewed (``c``, or enter on it) and
applied with a reason. ``x`` drops the staged set. Opened to reclaim a tenant's idle GPUs, the
screen opens the edit of that quota prefilled with the quota less the idle GPUs.

The review is a few hundred rows on the largest fleet: the screen fetches it whole, refreshes it
in the background and filters it here (``/``: a substring of the tenant or the model; a filter
that is exactly a tenant's name shows that tenant only).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Static

from backend.schemas import IdleGpus, QuotaChange, QuotaMode, QuotaReview, QuotaRow, UsageWindow
from opsconsole import format as fmt
from opsconsole.cost_view import idle_for, money_str
from opsconsole.quota_advice import Advice, suggest
from opsconsole.screens.listing import FilterInput
from opsconsole.screens.quota_edit import QuotaEditScreen, per_namespace, quota_model, row_namespace
from opsconsole.screens.quota_plan import QuotaPlanScreen
from opsconsole.screens.refreshing import PanelTable, RefreshingScreen, refill
from opsconsole.shell import shell
from opsconsole.text import clean, literal

MAX_ROWS = 5000  # far above the largest fleet's review (200 tenants × a few models)
COLUMNS = [
    "TENANT",
    "MODEL",
    "SYSTEM",
    "NOMINAL",
    "IN USE",
    "BORROWED",
    "7D AVG",
    "7D PEAK",
    "PENDING",
    "IDLE",
    "SUGGESTION",
]
SYSTEMS = {QuotaMode.KUEUE: "kueue", QuotaMode.RESOURCE_QUOTA: "rq", QuotaMode.NONE: "-"}
ADVICE_STYLES = {Advice.GRANT: "yellow", Advice.RECLAIM: "cyan"}


def model_label(row: QuotaRow) -> Text:
    return Text("any", style="dim") if row.gpu_model == "*" else fmt.model_name(row.gpu_model)


def suggestion_text(row: QuotaRow) -> Text:
    advice = suggest(row)
    if advice is None:
        return Text("-", style="dim")
    return Text(str(advice), style=ADVICE_STYLES[advice.advice])


def _count(value: int, style: str = "") -> Text:
    return Text(str(value), style=style if value else "dim")


def _window(window: UsageWindow) -> tuple[Text, Text]:
    if not window.samples or window.allocated_avg is None:
        return Text("-", style="dim"), Text("-", style="dim")
    return fmt.number(window.allocated_avg, 1), fmt.number(window.allocated_peak)


def row_cells(row: QuotaRow) -> tuple[Text, ...]:
    average, peak = _window(row.usage_7d)
    return (
        literal(row.tenant, "bold"),
        model_label(row),
        Text(SYSTEMS.get(row.system, row.system.value), style="dim"),
        fmt.number(row.nominal),
        fmt.number(row.used),
        _count(row.borrowed, "yellow"),
        average,
        peak,
        _count(row.pending, "yellow"),
        _count(row.idle),
        suggestion_text(row),
    )


def matches(rows: list[QuotaRow], query: str) -> list[QuotaRow]:
    """The rows the filter keeps: a tenant's own when it names one exactly, else every row whose
    tenant, model or flavor contains it (case-insensitive)."""
    if not query:
        return rows
    exact = [row for row in rows if row.tenant == query]
    if exact:
        return exact
    needle = query.lower()
    return [
        row
        for row in rows
        if any(needle in (field or "").lower() for field in (row.tenant, row.gpu_model, row.flavor))
    ]


def describe(change: QuotaChange) -> Text:
    """One staged change in a line: ``set team-a h100 → 8`` or ``transfer 2 h100 a → b``."""
    model = f" {clean(change.model)}" if change.model else ""
    if change.op == "set":
        ns = f" ns {clean(change.namespace)}" if change.namespace else ""
        return literal(f"set {clean(change.tenant)}{model}{ns} → {clean(change.gpus)} GPUs")
    return literal(
        f"transfer {clean(change.gpus)}{model} GPUs {clean(change.from_tenant)} → "
        f"{clean(change.to_tenant)}"
    )


class QuotaScreen(RefreshingScreen[QuotaReview]):
    """Every tenant's quota per GPU model; ``query`` is an initial filter (a tenant's name);
    ``reclaim``: idle GPUs whose quota edit opens, prefilled, once the review is loaded."""

    CSS_PATH = Path(__file__).with_name("quotas.tcss")
    AUTO_FOCUS = "#quotas"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh_now", "Refresh", show=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_or_back", "Back"),
        Binding("s", "edit('set')", "Set"),
        Binding("t", "edit('transfer')", "Transfer"),
        Binding("a", "accept", "Accept"),
        Binding("c", "review", "Review"),
        Binding("x", "drop", "Drop"),
    ]

    def __init__(self, query: str = "", reclaim: IdleGpus | None = None) -> None:
        super().__init__()
        self.query_text = query.strip()
        self.reclaim = reclaim
        self.rows: list[QuotaRow] = []  # the rows on screen, in order
        self.staged: list[QuotaChange] = []

    def compose(self) -> ComposeResult:
        yield Static(id="quota-title")
        yield FilterInput(value=self.query_text, placeholder="tenant or model", id="filter")
        table = PanelTable(id="quotas", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        yield Static(id="row-hint")
        staged = PanelTable(id="staged", cursor_type="row")
        staged.add_columns("CHANGE")
        staged.display = False
        yield staged

    def on_mount(self) -> None:
        super().on_mount()
        self._update_title()

    # -- data --------------------------------------------------------------------------------

    async def fetch(self) -> QuotaReview:
        return await shell(self.app).client.quotas()

    def show(self, data: QuotaReview) -> None:
        self._show_rows()
        if self.reclaim is not None:
            idle, self.reclaim = self.reclaim, None
            self._edit_reclaim(data, idle)

    def _edit_reclaim(self, data: QuotaReview, idle: IdleGpus) -> None:
        """Open the edit of the quota the idle GPUs count against, lowered by them."""
        row = next(
            (r for r in data.items if r.tenant == idle.tenant and r.gpu_model == idle.quota_model),
            None,
        )
        if row is None or per_namespace(row):
            why = "no single quota" if row is None else "a quota per namespace: set one with s"
            self.notify(f"cannot prefill the reclaim: {why}", markup=False)
            return
        if row in self.rows:
            self.query_one("#quotas", PanelTable).move_cursor(row=self.rows.index(row))
        note = (
            f"reclaim {idle.gpus} idle GPUs (idle {idle_for(idle)}, "
            f"{money_str(idle.cost_per_day)}/day)"
        )
        after = max(0, row.nominal - idle.gpus)
        self.app.push_screen(QuotaEditScreen(row, "set", gpus=after, note=note), self._stage)

    def _show_rows(self) -> None:
        self.rows = matches(self.data.items, self.query_text) if self.data else []
        refill(self.query_one("#quotas", PanelTable), [row_cells(r) for r in self.rows], MAX_ROWS)
        self._update_title()
        self._update_hint()

    def _update_title(self) -> None:
        title = Text("Quota review", style="bold")
        if self.data is not None:
            title.append(f"  {len(self.rows)} of {len(self.data.items)} rows", style="dim")
            if self.data.history_updated is None:
                title.append("  no usage history yet", style="yellow")
        if self.query_text:
            title.append("  filter ", style="dim")
            title.append_text(literal(self.query_text, style="bold"))
        self.query_one("#quota-title", Static).update(title)

    def current_row(self) -> QuotaRow | None:
        index = self.query_one("#quotas", PanelTable).cursor_row
        return self.rows[index] if 0 <= index < len(self.rows) else None

    def _update_hint(self) -> None:
        row = self.current_row()
        hint = Text()
        if row is not None:
            hint.append_text(literal(f"{clean(row.tenant)} {clean(row.flavor or row.gpu_model)}: "))
            hint.append_text(suggestion_text(row))
        hint.append("   s set · t transfer · a accept", style="dim")
        self.query_one("#row-hint", Static).update(hint)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "quotas":
            self._update_hint()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.data_table.id == "staged":
            self.action_review()

    # -- the filter --------------------------------------------------------------------------

    def action_filter(self) -> None:
        self.query_one(FilterInput).open()

    def clear_filter(self) -> None:
        self.query_one(FilterInput).close()
        self._set_query("")
        self.query_one("#quotas", PanelTable).focus()

    def action_clear_or_back(self) -> None:
        if not self.query_text:
            raise SkipAction
        self.clear_filter()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            event.stop()
            self._set_query(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "filter":
            return
        event.stop()
        self._set_query(event.value)
        if not event.value:
            event.input.remove_class("-open")
        self.query_one("#quotas", PanelTable).focus()

    def _set_query(self, value: str) -> None:
        if value.strip() != self.query_text:
            self.query_text = value.strip()
            self._show_rows()

    # -- staging -----------------------------------------------------------------------------

    def action_edit(self, op: str) -> None:
        row = self.current_row()
        if row is not None:
            self.app.push_screen(QuotaEditScreen(row, op), self._stage)

    def action_accept(self) -> None:
        row = self.current_row()
        advice = suggest(row) if row is not None else None
        if row is None or advice is None:
            self.notify("no suggestion for this row", markup=False)
            return
        if per_namespace(row):
            self.notify("this quota is per namespace: set one with s", markup=False)
            return
        self._stage(
            QuotaChange(
                op="set",
                tenant=row.tenant,
                model=quota_model(row),
                gpus=advice.nominal_after(row),
                namespace=row_namespace(row),
            )
        )

    def _stage(self, change: QuotaChange | None) -> None:
        if change is not None:
            self.staged.append(change)
            self._show_staged()

    def action_drop(self) -> None:
        if self.staged:
            self.staged.clear()
            self._show_staged()
            self.notify("staged changes dropped", markup=False)

    def _show_staged(self) -> None:
        staged = self.query_one("#staged", PanelTable)
        count = len(self.staged)
        staged.display = bool(count)
        staged.border_title = (
            f"{count} change{'s' if count != 1 else ''} staged  (c review · x drop)"
        )
        refill(staged, [(describe(change),) for change in self.staged])
        if not count:
            self.query_one("#quotas", PanelTable).focus()

    def action_review(self) -> None:
        if not self.staged:
            self.notify("nothing staged: s set, t transfer, a accept a suggestion", markup=False)
            return
        self.app.push_screen(QuotaPlanScreen(self.staged), self._reviewed)

    def _reviewed(self, applied: bool | None) -> None:
        if applied:
            self.staged.clear()
            self._show_staged()
            self.load(force=True)
