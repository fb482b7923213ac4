"""Endpoint health on screen: a workload's request rate, error rate and latency per revision with
sparklines (the detail), and the worst endpoints (the overview; Enter opens the workload).

Every name is untrusted: shown through ``literal`` as rich Text, never as markup. Each revision
takes two lines (its figures and name, then three sparklines) so that a canary's two revisions
and the whole endpoint fit an 80×24 terminal. While some model servers' metrics cannot be read,
both panels say so under their border (the banner says which).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Sparkline, Static

from backend.schemas import DataFreshness, EndpointHealth, HealthHistory, RequestStats
from opsconsole.connection import seconds_str
from opsconsole.screens.refreshing import PanelTable, refill, set_subtitle, update_static
from opsconsole.shell import shell
from opsconsole.text import literal

ERROR_RATE_WARN = 0.01  # more than 1% of requests failing is shown as a problem
SPARK_WIDTH = 14


def rate(value: float | None) -> Text:
    """Requests per second: ``12.3/s``; N/A when unmeasured."""
    if value is None:
        return Text("N/A", style="dim")
    return Text(f"{value:.1f}/s" if value < 1000 else f"{value / 1000:.1f}k/s")


def error_rate(value: float | None) -> Text:
    """``0.4%``, red above ``ERROR_RATE_WARN``."""
    if value is None:
        return Text("N/A", style="dim")
    return Text(f"{value * 100:.1f}%", style="bold red" if value > ERROR_RATE_WARN else "")


def latency(value: float | None) -> Text:
    """``850ms`` below a second, ``2.10s`` above."""
    if value is None:
        return Text("N/A", style="dim")
    return Text(f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s")


def figures(stats: RequestStats) -> Text:
    """``12.3/s  err 0.4%  p50 850ms  p95 1.20s  p99 2.10s``."""
    out = rate(stats.request_rate)
    for label, value in (
        ("  err ", error_rate(stats.error_rate)),
        ("  p50 ", latency(stats.p50_seconds)),
        ("  p95 ", latency(stats.p95_seconds)),
        ("  p99 ", latency(stats.p99_seconds)),
    ):
        out.append(label, style="dim")
        out.append_text(value)
    return out


def scrape_trouble(freshness: DataFreshness | None) -> str | None:
    """``⚠ 3 of 40 model servers failing, data 95 s old``: the panels' subtitle while some model
    servers' metrics cannot be read (their figures are missing or old); None while all are."""
    if freshness is None or not freshness.inference_errors:
        return None
    text = f"⚠ {freshness.inference_errors} of {freshness.inference_sources} model servers failing"
    if freshness.inference_age_seconds is not None:
        text += f", data {seconds_str(freshness.inference_age_seconds)} old"
    return text


def points(values: Sequence[float | None]) -> list[float]:
    """A sparkline's data: rounds without requests draw as zero. One round draws nothing yet:
    Textual draws a single value as a full bar, whatever it is, which read as busy for an
    endpoint without requests."""
    return [v or 0.0 for v in values] if len(values) > 1 else []


def freshness_of(widget: Widget) -> DataFreshness | None:
    """The backend's last word on its data (``/info``), as the console keeps it."""
    info = shell(widget.app).connection.info
    return None if info is None else info.freshness


class HealthRow(Vertical):
    """One line of figures, one of sparklines: requests, p99, errors over the history."""

    DEFAULT_CSS = """
    HealthRow { height: 2; }
    HealthRow .figures { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    HealthRow > Horizontal { height: 1; }
    HealthRow .spark-label { width: auto; color: $text-muted; }
    HealthRow Sparkline { width: 14; margin-right: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static(classes="figures")
        with Horizontal():
            yield Static(" req ", classes="spark-label")
            yield Sparkline([], id="requests")
            yield Static("p99 ", classes="spark-label")
            yield Sparkline([], id="p99")
            yield Static("err ", classes="spark-label")
            yield Sparkline([], id="errors")

    def show(self, label: Text, stats: RequestStats, history: HealthHistory) -> None:
        line = figures(stats)  # first: a narrow terminal clips the name, never the figures
        line.append("  ")
        line.append_text(label)
        update_static(self.query_one(".figures", Static), line)
        self.query_one("#requests", Sparkline).data = points(history.request_rate)
        self.query_one("#p99", Sparkline).data = points(history.p99_seconds)
        self.query_one("#errors", Sparkline).data = points(history.error_rate)


def revision_label(name: str, current: bool, percent: int | None) -> Text:
    out = literal(f"rev {name}", "bold" if current else "")
    if percent is not None:
        out.append(f" {percent}%", style="cyan")
    if current:
        out.append(" current", style="green")
    return out


class EndpointHealthPanel(Vertical):
    """The workload detail's "Requests" panel; hidden for workloads that serve no model."""

    DEFAULT_CSS = """
    EndpointHealthPanel { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="panel")
        self.border_title = "Requests"
        self.display = False
        self._rows: list[str] = []

    def show(self, endpoint: EndpointHealth | None) -> None:
        self.display = endpoint is not None
        if endpoint is None:
            return
        set_subtitle(self, scrape_trouble(freshness_of(self)))
        names = ["", *(r.revision for r in endpoint.revisions)]
        if names != self._rows:
            self._rows = names
            self.remove_children()
            self.mount_all(HealthRow() for _ in names)
            self.call_after_refresh(self._fill, endpoint)
        else:
            self._fill(endpoint)

    def _fill(self, endpoint: EndpointHealth) -> None:
        rows = list(self.query(HealthRow))
        if len(rows) != 1 + len(endpoint.revisions):
            return  # replaced meanwhile: the newer show fills its own rows
        rows[0].show(Text("all", style="bold"), endpoint, endpoint.history)
        for row, revision in zip(rows[1:], endpoint.revisions, strict=True):
            # KServe names revisions <isvc>-predictor-<N>: the number is what tells them apart.
            name = revision.revision.removeprefix(f"{endpoint.name}-predictor-")
            label = revision_label(name, revision.current, revision.traffic_percent)
            row.show(label, revision, revision.history)


class WorstEndpoints(PanelTable):
    """The overview's "Worst endpoints": Enter opens the workload."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="panel", cursor_type="row")
        self.add_columns("ENDPOINT", "REQ/S", "ERR", "P99")
        self.border_title = "Worst endpoints"
        self.display = False
        self._endpoints: list[EndpointHealth] = []

    def show(self, endpoints: list[EndpointHealth]) -> None:
        """The endpoints' rows; hidden while none has traffic (an 80×24 overview keeps its
        lines for what there is)."""
        self._endpoints = list(endpoints)
        self.display = bool(endpoints)
        set_subtitle(self, scrape_trouble(freshness_of(self)))
        rows: list[tuple[Text | str, ...]] = [
            (
                literal(f"{e.namespace}/{e.name}", "bold"),
                rate(e.request_rate),
                error_rate(e.error_rate),
                latency(e.p99_seconds),
            )
            for e in endpoints
        ]
        refill(self, rows)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.cursor_row < len(self._endpoints):
            e = self._endpoints[event.cursor_row]
            shell(self.app).action_show_workload(e.namespace, e.kind.value, e.name)
