"""One workload: what it is, its requests, release history, canary traffic, pods and events.

The revisions table reads like ``kubectl rollout history`` (REVISION / CHANGE-CAUSE with
``<none>``), so an operator deciding on a rollback sees the same words they know; Enter on a
revision shows its diff with the current one (to every role). Enter on a pod opens its node.

Roll back and promote are offered only as far as the operator may use them: hidden in a
read-only console, shown disabled (with the reason in the header) when the backend's identity
for the operator cannot change this workload's tenant.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Static

from backend.schemas import PodSummary, Revision, RolloutProgress, WorkloadDetail, WorkloadKind
from opsconsole import format as fmt
from opsconsole.identity import change_refusal
from opsconsole.screens.audit import AuditScreen
from opsconsole.screens.refreshing import (
    Body,
    DetailScreen,
    panel_table,
    refill,
    set_count_title,
    update_static,
)
from opsconsole.screens.revision import RevisionScreen
from opsconsole.screens.rollback import ReleaseAction, RollbackScreen
from opsconsole.shell import shell
from opsconsole.text import clean, literal
from opsconsole.widgets.endpoints import EndpointHealthPanel

EVENT_LIMIT = 50
CHANGE_ACTIONS = ("rollback", "promote")


class WorkloadDetailScreen(DetailScreen[WorkloadDetail]):
    """``enter`` on a workload: is it healthy, which revision serves, what happened lately."""

    CSS_PATH = Path(__file__).with_name("detail.tcss")
    AUTO_FOCUS = "#pods"
    TITLE = "Workload"
    BINDINGS: ClassVar[list[BindingType]] = [
        *DetailScreen.BINDINGS,
        Binding("v", "focus_panel('revisions')", "Revisions"),
        Binding("o", "focus_panel('pods')", "Pods"),
        Binding("e", "focus_panel('events')", "Events"),
        Binding("u", "rollback", "Roll back"),
        Binding("P", "promote", "Promote"),
        Binding("h", "history", "History"),
    ]

    def __init__(self, namespace: str, kind: str, name: str) -> None:
        super().__init__()
        self.workload_namespace = namespace
        self.workload_kind = kind
        self.workload_name = name
        self._pods: list[PodSummary] = []

    def compose(self) -> ComposeResult:
        header = Static(Text("Loading workload…", style="dim"), id="header")
        title = f"{self.workload_kind} {self.workload_namespace}/{self.workload_name}"
        header.border_title = literal(title)  # a str title would be parsed as markup
        yield header
        with Body(id="detail-body"):
            canary = Static("", id="canary", classes="panel")
            canary.border_title = "Canary traffic"
            canary.display = False
            yield canary
            yield EndpointHealthPanel(id="endpoint")
            yield panel_table(
                "revisions",
                "Revisions",
                ["REVISION", "CHANGE-CAUSE", "AGE", "READY", "TRAFFIC", "CURRENT", "IMAGE"],
            )
            yield panel_table(
                "pods", "Pods", ["NAME", "NODE", "PHASE", "READY", "RESTARTS", "GPUS", "REV", "AGE"]
            )
            yield panel_table(
                "events",
                "Recent events",
                ["TYPE", "REASON", "AGE", "COUNT", "MESSAGE", "OBJECT"],
                enter_shows_text=True,
            )

    def on_mount(self) -> None:
        # Who the operator is may become known after the data: the header's reason follows.
        self.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def _bindings_changed(self, _screen: Screen[None]) -> None:
        if self.data is not None:
            self._show_header(self.data)

    async def fetch(self) -> WorkloadDetail:
        return await shell(self.app).client.workload(
            self.workload_namespace, self.workload_kind, self.workload_name
        )

    def show(self, data: WorkloadDetail) -> None:
        self._show_header(data)
        self.refresh_bindings()  # the tenant is known now: which changes are offered
        canary = self.query_one("#canary", Static)
        split = _canary(data, 30 if self.app.size.width >= 120 else 10)
        canary.display = split is not None
        if split is not None:
            update_static(canary, split)
        self.query_one(EndpointHealthPanel).show(data.endpoint)
        self._show_revisions(data.revisions)
        self._pods = list(data.pods)
        self._show_pods(data.pods)
        self._show_events(data)

    def _show_header(self, data: WorkloadDetail) -> None:
        header = _header(data)
        refusal = self._change_refusal()
        if refusal is not None and not shell(self.app).settings.read_only:
            header.append("\nchanges ", style="bold")
            header.append_text(literal(f"disabled: {refusal}", "yellow"))
        update_static(self.query_one("#header", Static), header)

    def _show_revisions(self, revisions: list[Revision]) -> None:
        now = self.now()
        rows = [
            (
                literal(r.revision, "bold" if r.current else ""),
                literal(r.change_cause) if r.change_cause else Text("<none>", style="dim"),
                fmt.age(r.created, now),
                fmt.ratio(r.ready_replicas, r.replicas),
                _traffic(r),
                Text("●", style="green") if r.current else Text(""),
                fmt.text(r.image),
            )
            for r in revisions
        ]
        refill(self.query_one("#revisions", DataTable), rows)

    def _show_pods(self, pods: list[PodSummary]) -> None:
        now = self.now()
        rows = [
            (
                literal(p.name),
                fmt.text(p.node),
                fmt.status(p.phase),
                fmt.flag(p.ready),
                Text(str(p.restarts), style="yellow" if p.restarts else ""),
                str(p.gpus),
                fmt.text(p.revision),
                fmt.age(p.created, now),
            )
            for p in pods
        ]
        table = self.query_one("#pods", DataTable)
        set_count_title(table, f"Pods ({len(pods)})")
        refill(table, rows)

    def _show_events(self, data: WorkloadDetail) -> None:
        now = self.now()
        events = data.events[:EVENT_LIMIT]
        rows = []
        for e in events:
            style = fmt.event_style(e.type)
            rows.append(
                (
                    literal(e.type, style),
                    literal(e.reason, style),
                    fmt.age(e.last_seen, now),
                    str(e.count),
                    literal(e.message, "yellow" if style else ""),
                    literal(e.object),
                )
            )
        table = self.query_one("#events", DataTable)
        set_count_title(table, f"Recent events ({len(data.events)})")
        refill(table, rows or [(Text("none", style="dim"), "", "", "", "", "")])

    def action_rollback(self, to_revision: int = 0) -> None:
        """Roll back to the previous revision (or ``to_revision``) after a review; for an
        InferenceService, all traffic back to the previous rolled-out revision."""
        screen = RollbackScreen(
            self.workload_namespace, self.workload_kind, self.workload_name, to_revision
        )
        self.app.push_screen(screen, self._rolled_back)

    def _is_inference_service(self) -> bool:
        return self.workload_kind.lower() == WorkloadKind.INFERENCE_SERVICE.value.lower()

    def _change_refusal(self) -> str | None:
        """Why the operator may not change this workload (``None``: it may, as far as the
        console knows). Until the workload has loaded its tenant is unknown: an operator with a
        tenant scope is refused until then."""
        tenant = self.data.tenant if self.data is not None else None
        return change_refusal(shell(self.app).connection.identity, tenant)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Promote is offered (and shown in the footer) for InferenceServices only. A
        read-only console hides both changes; one the operator's role does not allow here is
        shown disabled (``None``)."""
        if action == "promote" and not self._is_inference_service():
            return False
        if action in CHANGE_ACTIONS:
            if shell(self.app).settings.read_only:
                return False
            return True if self._change_refusal() is None else None
        return True

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """The footer's keys; a disabled change carries its reason as the tooltip."""
        bindings = super().active_bindings
        reason = self._change_refusal()
        for key, active in bindings.items():
            if reason and not active.enabled and active.binding.action in CHANGE_ACTIONS:
                bindings[key] = active._replace(tooltip=clean(reason))
        return bindings

    def action_promote(self) -> None:
        """All traffic to an InferenceService's canary, after a review."""
        screen = RollbackScreen(
            self.workload_namespace,
            self.workload_kind,
            self.workload_name,
            action=ReleaseAction.PROMOTE,
        )
        self.app.push_screen(screen, self._rolled_back)

    def _show_revision(self, revision: Revision) -> None:
        """Enter on a revision: its diff with the current one, for every role; from there a
        Deployment rolls back to it, as far as the operator may."""
        offered = (
            not self._is_inference_service()
            and revision.revision.isdigit()
            and not revision.current
        )
        rollback = self.check_action("rollback", ()) if offered else False
        refusal = self._change_refusal() if rollback is None else None
        screen = RevisionScreen(
            self.workload_namespace,
            self.workload_kind,
            self.workload_name,
            revision.revision,
            rollback,
            refusal,
        )

        def closed(roll_back: bool | None) -> None:
            if roll_back:
                self.action_rollback(int(revision.revision))

        self.app.push_screen(screen, closed)

    def _rolled_back(self, applied: bool | None) -> None:
        if applied:
            self.load(force=True)  # follow the rollout

    def action_history(self) -> None:
        """The audit log of changes to this workload."""
        target = f"{self.workload_kind.lower()}/{self.workload_namespace}/{self.workload_name}"
        self.app.push_screen(AuditScreen(f"target:{target}"))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        index = event.cursor_row
        if event.data_table.id == "revisions" and self.data is not None:
            revisions = self.data.revisions
            if index < len(revisions):
                self._show_revision(revisions[index])
            return
        if event.data_table.id == "pods" and index < len(self._pods):
            node = self._pods[index].node
            if node:
                shell(self.app).action_show_node(node)
            else:
                self.notify("pod is not scheduled on a node", severity="warning")


def _header(w: WorkloadDetail) -> Text:
    out = Text()
    out.append("status ", style="bold")
    out.append_text(fmt.status(w.status.value))
    if w.paused:
        out.append(" (paused)", style="magenta")
    if w.message:
        out.append("  ")
        out.append_text(literal(w.message, fmt.status_style(w.status.value) or "dim"))
    out.append("\ntenant ", style="bold")
    out.append_text(fmt.text(w.tenant))
    out.append("  model ", style="bold")
    out.append_text(fmt.text(w.model))
    out.append("  stage ", style="bold")
    out.append_text(fmt.text(w.stage))
    out.append("  queue ", style="bold")
    out.append_text(fmt.text(w.queue))
    out.append("\nreplicas ", style="bold")
    out.append_text(fmt.ratio(w.ready_replicas, w.replicas))
    out.append("  GPUs ", style="bold")
    out.append_text(fmt.ratio(w.gpus, w.gpus_requested))
    out.append(" ")
    out.append_text(fmt.text(w.gpu_model, "dim"))
    out.append("  revision ", style="bold")
    out.append_text(fmt.text(w.revision))
    if w.rollout is not None:
        out.append("\nrollout ", style="bold")
        out.append_text(_rollout(w.rollout))
    if w.images:
        out.append("\nimage ", style="bold")
        out.append_text(literal(", ".join(clean(i) for i in w.images)))
    return out


def _rollout(progress: RolloutProgress) -> Text:
    """Where the latest rollout stands: done, under way (with its counts), or stuck."""
    if progress.stuck:
        out = Text("STUCK ", style="bold red")
        out.append_text(literal(progress.message, "red"))
        return out
    if progress.done:
        return literal(progress.message, "green")
    out = Text("in progress ", style="bold yellow")
    if progress.target_traffic_percent is None:
        out.append(
            f"{progress.updated}/{progress.desired} updated, {progress.ready} ready, "
            f"{progress.available} available  "
        )
    out.append_text(literal(progress.message, "dim"))
    return out


def _traffic(r: Revision) -> Text:
    if r.traffic_percent is None:
        return Text("-", style="dim")
    out = Text(f"{r.traffic_percent}%")
    if r.tag:
        out.append(" ")
        out.append_text(literal(r.tag, "dim"))
    return out


def _canary(w: WorkloadDetail, width: int) -> Text | None:
    """Two lines, latest and previous revision, each with its traffic share as a bar."""
    split = w.traffic
    if split is None or not split.revisions:
        return None
    latest = next((r for r in split.revisions if r.latest), None)
    previous = next((r for r in split.revisions if not r.latest), None)
    latest_share = latest.percent if latest else 100 - (previous.percent if previous else 0)
    prev_share = previous.percent if previous else 100 - latest_share
    rows = [
        ("latest", latest.revision if latest else None, latest_share, "bold cyan"),
        ("prev", previous.revision if previous else None, prev_share, ""),
    ]
    names = [clean(name) if name else "?" for _, name, _, _ in rows]
    name_width = max(len(n) for n in names)
    out = Text()
    for (label, _, share, style), name in zip(rows, names, strict=True):
        if out:
            out.append("\n")
        out.append(f"{label:<7}", style="bold")
        out.append_text(literal(name.ljust(name_width)))
        out.append(" ")
        out.append_text(
            fmt.stacked_bar([(share, "█", style or "green"), (100 - share, "░", "dim")], width)
        )
        out.append(f" {share:>3}%", style=style)
    return out
