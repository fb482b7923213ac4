"""Every view of the console, in one table.

The app's number keys, the ``:`` commands with their Tab completion, the command palette and the
help screen are all built from ``VIEWS``, so a new screen is added here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.screen import Screen

from opsconsole.screens.alerts import AlertsScreen
from opsconsole.screens.audit import AuditScreen
from opsconsole.screens.endpoints import EndpointsScreen
from opsconsole.screens.gpus import GpusScreen, NodesScreen
from opsconsole.screens.listing import ListScreen
from opsconsole.screens.node_detail import NodeDetailScreen
from opsconsole.screens.overview import OverviewScreen
from opsconsole.screens.quotas import QuotaScreen
from opsconsole.screens.tenant_detail import TenantDetailScreen
from opsconsole.screens.tenants import TenantsScreen
from opsconsole.screens.workload_detail import WorkloadDetailScreen
from opsconsole.screens.workloads import WorkloadsScreen

ScreenClass = type[Screen[Any]]


@dataclass(frozen=True)
class View:
    """A screen and the ways to reach it."""

    name: str
    """Its ``:`` command (and ``action_goto``'s target)."""
    title: str
    """Its key's description in the footer and the title of its group in the help."""
    screen: ScreenClass
    """Its class: the help lists the keys it declares."""
    open: Callable[[str], Screen[Any]] | None
    """Builds it from the command's argument ("" when none); None: reached by drilling down only,
    so it has no ``:`` command."""
    help: str = ""
    """What ``:name`` shows, in the help's command list and the palette."""
    key: str | None = None
    """The key that opens it from anywhere."""
    arg: str | None = None
    """What its argument is ("tenant" or "node", which Tab completes; "filter": free text)."""
    drill_down: bool = False
    """Its argument is required, and it opens on top of the current screen instead of replacing
    the view on top of the overview."""
    aliases: tuple[str, ...] = ()
    keys_group: tuple[str, ScreenClass] | None = None
    """The help group that lists its keys when they are shared with other views (title, class
    declaring them); None: its own group, titled ``title``."""


LIST_KEYS = ("Lists", ListScreen)  # what every list (tenants, workloads, nodes, GPUs) shares

VIEWS: tuple[View, ...] = (
    View(
        "overview",
        "Overview",
        OverviewScreen,
        lambda _: OverviewScreen(),
        help="the fleet at a glance",
        key="1",
        aliases=("home",),
    ),
    View(
        "tenants",
        "Tenants",
        TenantsScreen,
        lambda _: TenantsScreen(),
        help="every tenant with quota and usage",
        key="2",
        keys_group=LIST_KEYS,
    ),
    View(
        "workloads",
        "Workloads",
        WorkloadsScreen,
        WorkloadsScreen,
        help="workloads, of one tenant if given",
        key="3",
        arg="tenant",
        keys_group=LIST_KEYS,
    ),
    View("nodes", "Nodes", NodesScreen, lambda _: NodesScreen(), help="GPU nodes"),
    View(
        "gpus",
        "GPUs",
        GpusScreen,
        GpusScreen,
        help="GPUs, of one node if given",
        key="4",
        arg="node",
    ),
    View(
        "audit",
        "Audit log",
        AuditScreen,
        AuditScreen,
        help="who changed what, when and why; a filter if given",
        key="5",
        arg="filter",
    ),
    View(
        "quota",
        "Quota review",
        QuotaScreen,
        QuotaScreen,
        help="every tenant's quota against its use, with advice; stage, review, apply",
        key="6",
        arg="tenant",
        aliases=("quotas",),
    ),
    View(
        "alerts",
        "Alerts",
        AlertsScreen,
        lambda _: AlertsScreen(),
        help="firing, pending and recently resolved alerts",
        key="7",
    ),
    View(
        "endpoints",
        "Endpoints",
        EndpointsScreen,
        EndpointsScreen,
        help="model endpoints, the worst first: requests, errors, latency; of one tenant if given",
        key="8",
        arg="tenant",
        keys_group=LIST_KEYS,
    ),
    View(
        "tenant",
        "Tenant detail",
        TenantDetailScreen,
        TenantDetailScreen,
        help="one tenant's detail",
        arg="tenant",
        drill_down=True,
    ),
    View("workload", "Workload detail", WorkloadDetailScreen, None),  # namespace, kind and name
    View(
        "node",
        "Node detail",
        NodeDetailScreen,
        NodeDetailScreen,
        help="one node's detail",
        arg="node",
        drill_down=True,
    ),
)

ROOT = VIEWS[0]
"""The bottom of the screen stack: the other views open on top of it, esc never leaves it."""


def view_named(name: str) -> View | None:
    return next((view for view in VIEWS if view.name == name), None)
