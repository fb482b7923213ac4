"""One node: its facts, then a row per GPU with a utilization sparkline and who holds it.

Enter on a GPU opens the workload that holds it (``namespace`` + ``kind/name``), so an operator can
go from a hot or faulty GPU to the release running on it in one key.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from backend.schemas import Gpu, Node, Page
from opsconsole import format as fmt
from opsconsole.screens.refreshing import (
    Body,
    DetailScreen,
    panel_table,
    refill,
    set_count_title,
    update_static,
)
from opsconsole.shell import shell
from opsconsole.text import clean, literal

GPU_LIMIT = 256  # more than any real node; MIG instances included


@dataclass(slots=True)
class NodeView:
    node: Node
    gpus: Page[Gpu]


class NodeDetailScreen(DetailScreen[NodeView]):
    """``enter`` on a node or GPU: the node's health and each GPU's recent history."""

    CSS_PATH = Path(__file__).with_name("detail.tcss")
    AUTO_FOCUS = "#gpus"
    TITLE = "Node"

    def __init__(self, name: str) -> None:
        super().__init__()
        self.node_name = name
        self._gpus: list[Gpu] = []

    def compose(self) -> ComposeResult:
        header = Static(Text("Loading node…", style="dim"), id="header")
        header.border_title = literal(f"Node {clean(self.node_name)}")
        yield header
        with Body(id="detail-body"):
            yield panel_table(
                "gpus",
                "GPUs",
                ["GPU", "UTIL", "HISTORY", "MEMORY", "TEMP", "POWER", "XID", "TENANT", "POD"],
            )

    async def fetch(self) -> NodeView:
        client = shell(self.app).client
        node, gpus = await asyncio.gather(
            client.node(self.node_name), client.gpus(node=self.node_name, limit=GPU_LIMIT)
        )
        return NodeView(node, gpus)

    def show(self, data: NodeView) -> None:
        update_static(self.query_one("#header", Static), _facts(data.node))
        self._gpus = sorted(data.gpus.items, key=lambda g: (g.index, clean(g.mig_profile)))
        width = 30 if self.app.size.width >= 120 else 12
        rows = [
            (
                _gpu_name(g),
                fmt.percent(g.utilization),
                fmt.sparkline(g.history, width),
                fmt.memory(g.memory_used_mib, g.memory_total_mib),
                fmt.celsius(g.temperature_c),
                fmt.watts(g.power_watts),
                fmt.xid(g.last_xid),
                fmt.text(g.tenant),
                _pod(g),
            )
            for g in self._gpus
        ]
        table = self.query_one("#gpus", DataTable)
        set_count_title(table, f"GPUs ({len(self._gpus)})")
        refill(table, rows)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        index = event.cursor_row
        if event.data_table.id != "gpus" or index >= len(self._gpus):
            return
        gpu = self._gpus[index]
        kind, _, name = (gpu.workload or "").partition("/")
        if gpu.namespace and kind and name:
            shell(self.app).action_show_workload(gpu.namespace, kind, name)
        else:
            self.notify("no workload holds this GPU", severity="information")


def _facts(n: Node) -> Text:
    out = Text()
    out.append_text(literal(n.gpu_model or "unknown GPU model", "bold"))
    out.append("  ")
    out.append_text(fmt.status("Ready" if n.ready else "NotReady"))
    if n.cordoned:
        out.append("  cordoned", style="bold yellow")
    out.append("\nGPUs ", style="bold")
    out.append(f"{n.gpus_allocated} allocated of {n.gpus_allocatable} allocatable")
    out.append(f" ({n.gpus_capacity} capacity)", style="dim")
    out.append("  pods ", style="bold")
    out.append(str(n.pods))
    out.append("  XID GPUs ", style="bold")
    out.append(str(n.xid_gpus), style="bold red" if n.xid_gpus else "")
    out.append("\nutil ", style="bold")
    out.append_text(fmt.percent(n.utilization))
    out.append("  memory ", style="bold")
    out.append_text(fmt.memory(n.memory_used_mib, n.memory_total_mib))
    out.append("  power ", style="bold")
    out.append_text(fmt.watts(n.power_watts))
    out.append("  max temp ", style="bold")
    out.append_text(fmt.celsius(n.max_temperature_c))
    return out


def _gpu_name(g: Gpu) -> Text:
    out = Text(f"gpu{g.index}", style="bold")
    if g.mig_profile:
        out.append(" ")
        out.append_text(literal(g.mig_profile, "dim"))
    if g.allocated and g.idle:
        out.append(" idle", style="yellow")
    return out


def _pod(g: Gpu) -> Text:
    if not g.pod:
        return Text("free", style="dim") if not g.allocated else fmt.na()
    return literal(g.pod)
