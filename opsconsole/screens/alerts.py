"""``:alerts`` (key 7): firing alerts, then pending ones, then those resolved in the last hour.

One ``GET /alerts?state=all`` per refresh. Each row says the state, severity, rule, subject, the
observed value and since when; the highlighted alert's whole message is shown under the table.
Enter opens the subject: a GPU's or node's detail, a workload's, a tenant's. Every text from the
backend (names, messages) is shown literally.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from backend.schemas import Alert, AlertList, AlertState, AlertSubject, AlertSubjectKind
from opsconsole import format as fmt
from opsconsole.screens.refreshing import (
    RefreshingScreen,
    panel_table,
    refill,
    set_count_title,
    update_static,
)
from opsconsole.shell import ConsoleShell, shell
from opsconsole.text import literal

ROW_LIMIT = 500
STATE_STYLES = {
    AlertState.FIRING: "bold red",
    AlertState.PENDING: "yellow",
    AlertState.RESOLVED: "green",
}


def open_subject(console: ConsoleShell, subject: AlertSubject) -> bool:
    """Open the detail of what an alert is about; False when the subject does not say enough."""
    if subject.kind in (AlertSubjectKind.GPU, AlertSubjectKind.NODE) and subject.node:
        console.action_show_node(subject.node)
    elif subject.kind is AlertSubjectKind.WORKLOAD and (
        subject.namespace and subject.workload_kind and subject.workload
    ):
        console.action_show_workload(subject.namespace, subject.workload_kind, subject.workload)
    elif subject.kind is AlertSubjectKind.TENANT and subject.tenant:
        console.action_show_tenant(subject.tenant)
    else:
        return False
    return True


def value_text(alert: Alert) -> Text:
    """The observed value with its unit (``97%``, ``89 °C``)."""
    if alert.value is None:
        return fmt.na()
    unit = alert.unit if alert.unit in ("", "%") else f" {alert.unit}"
    return literal(f"{alert.value:.0f}{unit}")


class AlertsScreen(RefreshingScreen[AlertList]):
    """Every current alert the operator may see, the most urgent first."""

    DEFAULT_CSS = """
    AlertsScreen #summary {
        height: auto;
        padding: 0 1;
    }
    AlertsScreen #alerts {
        height: 1fr;
        border: round $primary;
        border-title-color: $text-primary;
        border-title-style: bold;
    }
    AlertsScreen #message {
        height: auto;
        max-height: 3;
        padding: 0 1;
    }
    """
    AUTO_FOCUS = "#alerts"
    TITLE = "Alerts"

    def __init__(self) -> None:
        super().__init__()
        self._shown: list[Alert] = []

    def compose(self) -> ComposeResult:
        yield Static(Text("Loading the alerts…", style="dim"), id="summary")
        yield panel_table(
            "alerts", "Alerts", ["STATE", "SEV", "RULE", "SUBJECT", "VALUE", "SINCE", "MESSAGE"]
        )
        yield Static("", id="message")

    async def fetch(self) -> AlertList:
        return await shell(self.app).client.alerts(state="all", limit=ROW_LIMIT)

    def show(self, data: AlertList) -> None:
        update_static(self.query_one("#summary", Static), self._summary(data))
        table = self.query_one("#alerts", DataTable)
        set_count_title(table, f"Alerts ({len(data.items)})")
        self._shown = list(data.items)
        now = self.now()
        rows: list[tuple[Text | str, ...]] = [
            (
                Text(a.state.value, style=STATE_STYLES.get(a.state, "")),
                fmt.severity(a.severity.value),
                literal(a.rule),
                literal(a.subject.name, "bold"),
                value_text(a),
                fmt.age(a.since, now),
                literal(a.message),
            )
            for a in self._shown
        ]
        if not rows:
            rows = [(Text("ok", style="green"), "", Text("no alerts", style="dim"), "", "", "", "")]
        refill(table, rows, limit=ROW_LIMIT)
        self._show_message(table.cursor_row)

    def _show_message(self, index: int) -> None:
        """The highlighted alert's whole message (its column is clipped on a small terminal)."""
        message = Text()
        if 0 <= index < len(self._shown):
            alert = self._shown[index]
            message = literal(f"{alert.subject.name}: {alert.message}")
        update_static(self.query_one("#message", Static), message)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_message(event.cursor_row)

    def _summary(self, data: AlertList) -> Text:
        out = Text()
        out.append(f"{data.firing} firing", style="bold red" if data.firing else "green")
        out.append(" · ")
        out.append(f"{data.pending} pending", style="yellow" if data.pending else "dim")
        if data.evaluated_at is None:
            out.append(" · not evaluated yet", style="dim")
        else:
            out.append(
                f" · evaluated {fmt.age_str(data.evaluated_at, self.now())} ago", style="dim"
            )
        return out

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        index = event.cursor_row
        if 0 <= index < len(self._shown):
            subject = self._shown[index].subject
            if not open_subject(shell(self.app), subject):
                self.notify("this alert names nothing to open", severity="warning")
