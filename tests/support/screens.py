"""Pictures of the console's screens: the subjects, the navigation to each screen, and waiting
until a screen has settled. Shared by the snapshot tests and ``python -m bench.screenshots``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from textual.pilot import Pilot
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer

from backend.schemas import QuotaChange, QuotaReview, WorkloadKind, WorkloadStatus
from opsconsole.app import OpsConsoleApp
from opsconsole.client import BackendClient, BackendError
from opsconsole.quota_advice import Advice, suggest
from opsconsole.screens.help import HelpScreen
from opsconsole.screens.plan_dialog import PlanDialog
from opsconsole.screens.quota_edit import quota_model, row_namespace
from opsconsole.screens.quota_plan import QuotaPlanScreen
from opsconsole.screens.quotas import QuotaScreen
from opsconsole.screens.refreshing import RefreshingScreen
from opsconsole.screens.rollback import RollbackScreen
from opsconsole.settings import ConsoleSettings

FROZEN = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SIZES = ((80, 24), (160, 48))
READY_TIMEOUT = 60.0
# What the status bar shows as the backend in pictures: the real one listens on a random port.
DISPLAY_URL = "http://opsconsole-backend:8080"
DISPLAY_HOST = httpx.URL(DISPLAY_URL).host  # a backend showing in pictures must answer to it


class FixedHostTransport(httpx.AsyncBaseTransport):
    """Sends the console's requests for ``DISPLAY_URL`` to the backend's real address, so that
    pictures and snapshots do not change with the port the backend happened to get."""

    def __init__(self, real_url: str) -> None:
        self._real = httpx.URL(real_url)
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self._real.scheme, host=self._real.host, port=self._real.port
        )
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class Target:
    """Where the screenshots come from: a URL, an optional transport, the app's clock and the
    token it authenticates with."""

    url: str
    clock: Callable[[], float]
    transport: httpx.AsyncBaseTransport | None = None
    sandbox: bool = False
    token: str | None = None


@dataclass
class Subjects:
    tenant: str | None
    workload: tuple[str, str, str] | None
    inference_service: tuple[str, str, str] | None
    node: str | None
    release: tuple[str, str, str] | None = None  # a Deployment that can be rolled back
    quota_grant: QuotaChange | None = None  # the first grant the quota review advises


async def wait_ready(client: BackendClient) -> None:
    """Until the backend has listed the cluster and has a round of GPU telemetry from every
    exporter and one of the model servers' traffic (or a minute has passed: then the pictures
    show what there is, N/A included)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            info = await client.info()
            fresh = info.freshness
            rounds = fresh.telemetry_sources and fresh.inference_sources
            if fresh.synced and rounds and not fresh.telemetry_errors:
                totals = (await client.overview()).totals
                if totals.gpus and totals.utilization is not None:
                    return
        except BackendError:
            pass
        await asyncio.sleep(0.5)
    print("warning: no GPU telemetry yet; taking the screenshots anyway", file=sys.stderr)


async def pick_subjects(client: BackendClient) -> Subjects:
    """A busy tenant, the model release with the longest history, an InferenceService (one in a
    canary, if any) and the hottest node."""
    overview = await client.overview()
    tenant = overview.tenants[0].name if overview.tenants else None
    page = await client.workloads(limit=1000)
    ranked = sorted(
        page.items,
        key=lambda w: (
            w.kind != WorkloadKind.DEPLOYMENT,  # a Deployment shows a revision history
            w.model is None,  # a model release, not a gateway
            -int(w.revision or 0) if (w.revision or "").isdigit() else 0,  # the longest history
            w.namespace,
            w.name,
        ),
    )
    workload = next(((w.namespace, w.kind.value, w.name) for w in ranked), None)
    release = next(
        (
            (w.namespace, w.kind.value, w.name)
            for w in ranked
            if w.kind == WorkloadKind.DEPLOYMENT
            and w.status != WorkloadStatus.PAUSED
            and int(w.revision or 0) >= 2
        ),
        None,
    )
    isvc = next(
        (
            (w.namespace, w.kind.value, w.name)
            for w in sorted(page.items, key=lambda w: (w.canary_percent is None, w.name))
            if w.kind == WorkloadKind.INFERENCE_SERVICE
        ),
        None,
    )
    node = overview.hottest[0].node if overview.hottest else None
    if node is None:
        nodes = await client.nodes(limit=1)
        node = nodes.items[0].name if nodes.items else None
    return Subjects(tenant, workload, isvc, node, release, first_grant(await quota_review(client)))


async def quota_review(client: BackendClient) -> QuotaReview:
    """The quota review once the usage history has its first recording (the 7-day columns), or
    after ``READY_TIMEOUT`` without it."""
    deadline = time.monotonic() + READY_TIMEOUT
    review = await client.quotas()
    while review.history_updated is None and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        review = await client.quotas()
    return review


def first_grant(review: QuotaReview) -> QuotaChange | None:
    """The change that accepts the review's first advice to grant quota."""
    for row in review.items:
        advice = suggest(row)
        if advice is not None and advice.advice == Advice.GRANT:
            return QuotaChange(
                op="set",
                tenant=row.tenant,
                model=quota_model(row),
                gpus=advice.nominal_after(row),
                namespace=row_namespace(row),
            )
    return None


def screens(subjects: Subjects) -> dict[str, Callable[[OpsConsoleApp], None]]:
    out: dict[str, Callable[[OpsConsoleApp], None]] = {"overview": lambda app: None}
    out["tenants"] = lambda app: app.action_goto("tenants")
    out["workloads"] = lambda app: app.action_goto("workloads")
    out["nodes"] = lambda app: app.action_goto("nodes")
    out["gpus"] = lambda app: app.action_goto("gpus")
    if subjects.tenant:
        tenant = subjects.tenant
        out["tenant"] = lambda app: app.action_show_tenant(tenant)
    out["audit"] = lambda app: app.action_goto("audit")
    if subjects.workload:
        workload = subjects.workload
        out["workload"] = lambda app: app.action_show_workload(*workload)
    if subjects.release:
        release = subjects.release

        def rollback(app: OpsConsoleApp) -> None:
            app.action_show_workload(*release)
            app.push_screen(RollbackScreen(*release))

        out["rollback"] = rollback
    if subjects.inference_service:
        isvc = subjects.inference_service
        out["inferenceservice"] = lambda app: app.action_show_workload(*isvc)
    if subjects.node:
        node = subjects.node
        out["node"] = lambda app: app.action_show_node(node)
    out["quota"] = lambda app: app.action_goto("quota")
    out["alerts"] = lambda app: app.action_goto("alerts")
    out["endpoints"] = lambda app: app.action_goto("endpoints")
    if subjects.quota_grant:
        grant = subjects.quota_grant

        def quota_plan(app: OpsConsoleApp) -> None:
            review = QuotaScreen()
            app.push_screen(review)
            review.staged.append(grant)
            app.push_screen(QuotaPlanScreen(review.staged))

        out["quota-plan"] = quota_plan
    out["help"] = lambda app: app.action_help()
    return out


async def settle(pilot: Pilot[None], timeout: float = 10.0) -> None:
    """Until the screen shows data, its tables are measured, the footer shows its keys and two
    pictures in a row are the same (lists load in workers; scrollbars and widths settle)."""
    app = pilot.app
    assert isinstance(app, OpsConsoleApp)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        top = app.screen_stack[-2] if isinstance(app.screen, HelpScreen) else app.screen
        # A dialog has no footer of its own: the screen under it shows the keys.
        chrome = app.screen_stack[-2] if isinstance(top, ModalScreen) else top
        footers = chrome.query(Footer)
        has_data = (not isinstance(top, RefreshingScreen) or top.data is not None) and (
            not isinstance(top, PlanDialog) or top.plan is not None
        )
        tables = top.query(DataTable)
        measured = all(t.virtual_size.height >= t.row_count + int(t.show_header) for t in tables)
        if has_data and measured and app.connection.info is not None and footers.first().children:
            break
    previous = ""
    for _ in range(50):
        for table in app.screen.query(DataTable):
            repaint(table)
        await pilot.pause(0.05)
        await pilot.wait_for_scheduled_animations()
        current = app.export_screenshot()
        if current == previous:
            return
        previous = current


def repaint(table: DataTable[object]) -> None:
    """Drop a DataTable's line caches: a header line drawn in the moment between ``add_row``
    and the idle-time column measuring is cached with the old widths (Textual 8.2)."""
    table._clear_caches()
    table.refresh()


def make_app(target: Target, theme: str = "opsconsole-dark") -> OpsConsoleApp:
    """The console as an operator would see it, pointed at ``target``."""
    settings = ConsoleSettings(
        backend=target.url,
        operator="operator",
        token=target.token,
        theme=theme,
        refresh_interval=3600,
    )
    return OpsConsoleApp(
        settings,
        backend_url=target.url,
        sandbox=target.sandbox,
        clock=target.clock,
        transport=target.transport,
    )
