"""The fleet at a glance: problems first, GPUs by model, tenants against quota, hot and idle GPUs.

Every panel is a small table fed from one ``GET /overview``. Panels stack and scroll on an 80×24
terminal and sit in two columns from 120 columns up. Enter on a tenant, problem or GPU drills down.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from backend.schemas import Gpu, Overview, Problem, WorkloadStatus
from opsconsole import format as fmt
from opsconsole.client import BackendError
from opsconsole.cost_view import cost_summary
from opsconsole.screens.refreshing import (
    Body,
    RefreshingScreen,
    panel_table,
    refill,
    set_count_title,
    update_static,
)
from opsconsole.shell import shell
from opsconsole.text import clean, literal
from opsconsole.widgets.endpoints import WorstEndpoints

PROBLEM_LIMIT = 200  # the backend orders problems by severity: the first ones matter most
WORKLOAD_PROBLEMS = frozenset(
    {
        "pending",
        "degraded",
        "failed",
        "rollout",
        "canary",
        "paused",
        "endpoint-errors",  # alerts on a model endpoint: its Deployment or InferenceService
        "endpoint-slow",
    }
)
TENANT_PROBLEMS = frozenset({"tenant-starving"})


def problem_target(problem: Problem) -> tuple[str, str, str] | None:
    """Where a problem leads: ``("node", name, "")``, ``("workload", namespace, name)`` or
    ``("tenant", name, "")``.

    Workload problems name ``namespace/name``; tenant problems the tenant; GPU and node problems
    name ``node/gpuN`` or ``node``. Returns None when the subject does not say.
    """
    subject = clean(problem.subject).strip()
    if not subject:
        return None
    kind = clean(problem.kind).lower()
    if kind in TENANT_PROBLEMS:
        return ("tenant", subject, "")
    first, _, rest = subject.partition("/")
    if kind in WORKLOAD_PROBLEMS:
        return ("workload", first, rest) if rest else None
    return ("node", first, "")


class OverviewScreen(RefreshingScreen[Overview]):
    """``:overview`` (key 1): the screen an operator looks at first during an incident."""

    CSS_PATH = Path(__file__).with_name("overview.tcss")
    # No ClassVar: Textual declares it on Screen as an instance variable.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        *RefreshingScreen.BINDINGS,
        Binding("p", "focus_panel('problems')", "Problems"),
        Binding("t", "focus_panel('tenants')", "Tenants"),
    ]
    AUTO_FOCUS = "#problems"
    TITLE = "Overview"

    def __init__(self) -> None:
        super().__init__()
        self._problems: list[Problem] = []
        self._tenants: list[str] = []
        self._hottest: list[Gpu] = []
        self._idlest: list[Gpu] = []
        self._cost_line: Text | None = None  # the GPU models' subtitle

    def compose(self) -> ComposeResult:
        yield Static(Text("Loading the fleet overview…", style="dim"), id="totals")
        with Body(id="overview-body"), Horizontal(id="columns"):
            with Vertical(id="left"):
                yield panel_table("problems", "Problems", ["SEV", "KIND", "SUBJECT", "MESSAGE"])
                yield WorstEndpoints(id="endpoints")
                yield panel_table(
                    "models",
                    "GPUs by model",
                    ["MODEL", "NODES", "GPUS", "ALLOC", "IN USE", "IDLE", "FREE", "USE"],
                    cursor=False,
                )
                status = Static("", id="statuses", classes="panel")
                status.border_title = "Workloads by status"
                yield status
            with Vertical(id="right"):
                yield panel_table(
                    "tenants",
                    "Tenants",
                    ["TENANT", "GPUS USED / QUOTA", "PENDING", "UTIL", "WORKLOADS"],
                )
                gpu_columns = ["GPU", "MODEL", "TEMP", "UTIL", "POWER", "TENANT", "POD"]
                yield panel_table("hottest", "Hottest GPUs", gpu_columns)
                yield panel_table("idlest", "Idlest allocated GPUs", gpu_columns)

    async def fetch(self) -> Overview:
        return await shell(self.app).client.overview()

    def show(self, data: Overview) -> None:
        update_static(self.query_one("#totals", Static), _totals(data, wide=self._wide()))
        self._show_problems(data.problems)
        self.query_one(WorstEndpoints).show(data.worst_endpoints)
        self._show_models(data)
        update_static(self.query_one("#statuses", Static), _statuses(data.workloads_by_status))
        self._show_tenants(data)
        self._show_cost()
        self._hottest = list(data.hottest)
        self._idlest = list(data.idlest)
        self._show_gpus("hottest", self._hottest)
        self._show_gpus("idlest", self._idlest)

    def _wide(self) -> bool:
        return self.app.size.width >= 120

    def _show_problems(self, problems: list[Problem]) -> None:
        table = self.query_one("#problems", DataTable)
        shown = f", first {PROBLEM_LIMIT}" if len(problems) > PROBLEM_LIMIT else ""
        set_count_title(table, f"Problems ({len(problems)}{shown})")
        self._problems = list(problems[:PROBLEM_LIMIT])
        rows: list[tuple[Text | str, ...]] = [
            (
                fmt.severity(p.severity.value),
                literal(p.kind),
                literal(p.subject, "bold"),
                literal(p.message),
            )
            for p in self._problems
        ]
        if not rows:
            rows = [(Text("ok", style="green"), Text("no active problems", style="dim"), "", "")]
        refill(table, rows)

    def _show_models(self, data: Overview) -> None:
        width = 16 if self._wide() else 8
        rows = [
            (
                literal(m.model, "bold"),
                str(m.nodes),
                str(m.total),
                str(m.allocated),
                Text(str(m.in_use), style="green"),
                Text(str(m.idle), style="yellow" if m.idle else ""),
                str(m.free),
                fmt.stacked_bar(
                    [
                        (m.in_use, fmt.BAR_USED, "green"),
                        (m.idle, fmt.BAR_BORROWED, "yellow"),
                        (m.free, fmt.BAR_FREE, "dim"),
                    ],
                    width,
                ),
            )
            for m in data.gpu_models
        ]
        refill(self.query_one("#models", DataTable), rows)

    def _show_tenants(self, data: Overview) -> None:
        width = 16 if self._wide() else 10
        self._tenants = [t.name for t in data.tenants]
        rows = [
            (
                literal(t.name, "bold"),
                fmt.usage_bar(t.gpu_used, t.gpu_quota, width, borrowed=t.gpu_borrowed),
                Text(str(t.gpu_pending), style="yellow" if t.gpu_pending else "dim"),
                fmt.percent(t.utilization),
                _workload_count(t.workloads, t.workloads_pending),
            )
            for t in data.tenants
        ]
        refill(self.query_one("#tenants", DataTable), rows)

    @work(exclusive=True, exit_on_error=False, group="cost")
    async def _show_cost(self) -> None:
        """The fleet's cost over 24 h and its idle GPUs, under the GPU models (left out by a
        backend without cost showback)."""
        try:
            report = await shell(self.app).client.cost("24h")
        except BackendError:
            return
        line = cost_summary(report)
        if line != self._cost_line:  # setting a subtitle repaints the whole table
            self._cost_line = line
            self.query_one("#models", DataTable).border_subtitle = line

    def _show_gpus(self, table_id: str, gpus: list[Gpu]) -> None:
        rows = [
            (
                literal(f"{clean(g.node)}/gpu{g.index}"),
                fmt.model_name(g.model),
                fmt.celsius(g.temperature_c),
                fmt.percent(g.utilization),
                fmt.watts(g.power_watts),
                fmt.text(g.tenant),
                fmt.text(g.pod),
            )
            for g in gpus
        ]
        refill(self.query_one(f"#{table_id}", DataTable), rows)

    # -- drill-down -----------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        index = event.cursor_row
        table_id = event.data_table.id
        if table_id == "tenants" and index < len(self._tenants):
            shell(self.app).action_show_tenant(self._tenants[index])
        elif table_id == "problems" and index < len(self._problems):
            self._open_problem(self._problems[index])
        elif table_id in ("hottest", "idlest"):
            gpus = self._hottest if table_id == "hottest" else self._idlest
            if index < len(gpus):
                shell(self.app).action_show_node(gpus[index].node)

    def _open_problem(self, problem: Problem) -> None:
        target = problem_target(problem)
        if target is None:
            return
        if target[0] == "node":
            shell(self.app).action_show_node(target[1])
        elif target[0] == "tenant":
            shell(self.app).action_show_tenant(target[1])
        else:
            self.run_worker(
                self._open_workload(target[1], target[2]), group="drill", exit_on_error=False
            )

    async def _open_workload(self, namespace: str, name: str) -> None:
        """Problems name ``namespace/name`` only: ask the backend for the workload's kind."""
        try:
            page = await shell(self.app).client.workloads(q=name, limit=50)
        except BackendError as err:  # the banner says it; nothing to open
            shell(self.app).report_backend_error(err)
            return
        for w in page.items:
            if w.name == name and namespace in (w.namespace, w.tenant):
                shell(self.app).action_show_workload(w.namespace, w.kind.value, w.name)
                return
        message = f"workload {clean(namespace)}/{clean(name)} not found"
        self.notify(message, severity="warning", markup=False)  # names are untrusted


def _totals(data: Overview, *, wide: bool) -> Text:
    """The fleet in two lines (one when wide): nodes and GPUs, then utilization and counts."""
    t = data.totals
    out = Text()
    out.append("Nodes ", style="bold")
    out.append_text(fmt.ratio(t.nodes_ready, t.nodes))
    out.append(" ready  ")
    out.append("GPUs ", style="bold")
    out.append(f"{t.gpus} · {t.gpus_allocated} allocated · {t.gpus_in_use} in use · ")
    out.append(f"{t.gpus_idle} idle", style="yellow" if t.gpus_idle else "")
    out.append("  " if wide else "\n")
    out.append("Util ", style="bold")
    out.append_text(fmt.percent(t.utilization))
    out.append("  Power ", style="bold")
    out.append_text(fmt.watts(t.power_watts))
    out.append("  ")
    out.append(f"{t.tenants} tenants · {t.workloads} workloads · {t.pods} pods", style="dim")
    return out


def _statuses(counts: dict[str, int]) -> Text:
    """``Running 30  Pending 2 …``: non-zero counts, the contract's statuses first."""
    order = [s.value for s in WorkloadStatus]
    names = [s for s in order if s in counts] + sorted(k for k in counts if k not in order)
    out = Text()
    for name in names:
        count = counts[name]
        if not count:
            continue
        if out:
            out.append("  ")
        out.append_text(literal(name, fmt.status_style(name)))
        out.append(f" {count}", style="bold")
    return out or Text("no workloads", style="dim")


def _workload_count(total: int, pending: int) -> Text:
    out = Text(str(total))
    if pending:
        out.append(f" ({pending} pending)", style="yellow")
    return out
