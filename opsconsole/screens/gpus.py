"""The nodes and GPUs lists: telemetry per node and per GPU, and who holds each GPU."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from backend.schemas import Gpu, Node, Page
from opsconsole import format as fmt
from opsconsole.screens.listing import ListScreen
from opsconsole.shell import shell
from opsconsole.text import literal
from opsconsole.widgets.virtual_table import Column


def _optional(value: str | None) -> Text:
    return Text("-", style="dim") if value is None else literal(value)


def _node_state(node: Node) -> Text:
    if not node.ready:
        return Text("NotReady", style="bold red")
    if node.cordoned:
        return Text("Cordoned", style="yellow")
    return Text("Ready", style="green")


def _xid_gpus(node: Node) -> Text:
    return Text(str(node.xid_gpus), style="bold red") if node.xid_gpus else Text("-", style="dim")


NODE_COLUMNS = [
    Column("NODE", 14, lambda n: fmt.text(n.name, "bold"), sort="name", flex=True),
    Column("STATE", 8, _node_state, sort="ready"),
    Column("MODEL", 14, lambda n: fmt.model_name(n.gpu_model), sort="gpu_model"),
    Column(
        "GPUS",
        5,
        lambda n: fmt.ratio(n.gpus_allocated, n.gpus_capacity),
        "right",
        sort="gpus_allocated",
    ),
    Column("UTIL", 5, lambda n: fmt.percent(n.utilization), "right", sort="utilization"),
    Column(
        "MEMORY",
        15,
        lambda n: fmt.memory(n.memory_used_mib, n.memory_total_mib),
        "right",
        sort="memory_used_mib",
    ),
    Column("POWER", 7, lambda n: fmt.watts(n.power_watts), "right", sort="power_watts"),
    Column(
        "TEMP", 5, lambda n: fmt.celsius(n.max_temperature_c), "right", sort="max_temperature_c"
    ),
    Column("XID", 3, _xid_gpus, "right", sort="xid_gpus"),
    Column("PODS", 4, lambda n: fmt.number(n.pods), "right", sort="pods"),
]

GPU_COLUMNS = [
    Column("NODE", 13, lambda g: fmt.text(g.node, "bold"), sort="node"),
    Column("#", 2, lambda g: Text(str(g.index)), "right", sort="index"),
    Column("UTIL", 5, lambda g: fmt.percent(g.utilization), "right", sort="utilization"),
    Column(
        "MEMORY",
        13,
        lambda g: fmt.memory(g.memory_used_mib, g.memory_total_mib),
        "right",
        sort="memory_used_mib",
    ),
    Column("TEMP", 5, lambda g: fmt.celsius(g.temperature_c), "right", sort="temperature_c"),
    Column("POWER", 6, lambda g: fmt.watts(g.power_watts), "right", sort="power_watts"),
    Column("XID", 3, lambda g: fmt.xid(g.last_xid), "right", sort="last_xid"),
    Column("TENANT", 10, lambda g: _optional(g.tenant), sort="tenant"),
    Column("POD", 13, lambda g: _optional(g.pod), sort="pod", flex=True),
    Column("MODEL", 14, lambda g: fmt.model_name(g.model), sort="model"),
]


class NodesScreen(ListScreen):
    """GPU nodes; enter opens the node, ``g`` lists its GPUs."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("g", "node_gpus", "GPUs")]
    default_sort = "name"

    def columns(self) -> list[Column]:
        return NODE_COLUMNS

    async def fetch_page(
        self, offset: int, limit: int, q: str | None, sort: str | None
    ) -> Page[Any]:
        return await shell(self.app).client.nodes(q=q, sort=sort, offset=offset, limit=limit)

    def heading(self) -> Text:
        return Text("Nodes", style="bold")

    def open_item(self, item: Node) -> None:
        shell(self.app).action_show_node(item.name)

    def action_node_gpus(self) -> None:
        node = self.table.cursor_item
        if node is not None:
            self.app.push_screen(GpusScreen(node.name))


class GpusScreen(ListScreen):
    """Every GPU, or one node's (``:gpus node-07``); enter opens the GPU's node."""

    default_sort = "node"

    def __init__(self, node: str | None = None) -> None:
        super().__init__()
        self.node = node or None

    def columns(self) -> list[Column]:
        return GPU_COLUMNS

    async def fetch_page(
        self, offset: int, limit: int, q: str | None, sort: str | None
    ) -> Page[Any]:
        client = shell(self.app).client
        return await client.gpus(node=self.node, q=q, sort=sort, offset=offset, limit=limit)

    def heading(self) -> Text:
        title = Text("GPUs", style="bold")
        if self.node:
            title.append(" on ")
            title.append_text(literal(self.node, style="bold"))
        return title

    def open_item(self, item: Gpu) -> None:
        shell(self.app).action_show_node(item.node)
