"""``python -m bench.screenshots``: SVGs of every console screen at 80×24 and 160×48.

Without ``--backend`` it starts a ``demo`` sandbox (seed 7, frozen clock) and a backend on it in
this process, so the pictures are reproducible; ``--fake`` uses the tests' fixed fake fleet
instead (no sandbox needed). Files are named ``<screen>-<W>x<H>.svg`` in ``--out``
(``screenshots/`` by default). The subjects of the detail screens (a tenant, a workload, an
InferenceService, a node) are picked from the backend's own overview, so any fleet works.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from textual.pilot import Pilot
from textual.widgets import DataTable, Footer

from backend.schemas import WorkloadKind
from opsconsole.app import OpsConsoleApp
from opsconsole.client import BackendClient, BackendError
from opsconsole.screens.help import HelpScreen
from opsconsole.screens.refreshing import RefreshingScreen
from opsconsole.settings import ConsoleSettings

FROZEN = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SIZES = ((80, 24), (160, 48))
READY_TIMEOUT = 60.0
# What the status bar shows as the backend in pictures: the real one listens on a random port.
DISPLAY_URL = "http://opsconsole-backend:8080"


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
    """Where the screenshots come from: a URL, an optional transport, and the app's clock."""

    url: str
    clock: Callable[[], float]
    transport: httpx.AsyncBaseTransport | None = None
    sandbox: bool = False


@dataclass
class Subjects:
    tenant: str | None
    workload: tuple[str, str, str] | None
    inference_service: tuple[str, str, str] | None
    node: str | None


# -- where the data comes from -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sandbox_target(fleet: str, seed: int) -> AsyncIterator[Target]:
    """A demo sandbox and a backend on it, in this process, with a frozen clock."""
    from backend.main import RunningBackend
    from backend.sandbox.server import Sandbox
    from backend.settings import Settings

    with tempfile.TemporaryDirectory(prefix="opsconsole-shots-") as tmp:
        tmp_path = Path(tmp)
        async with Sandbox(fleet=fleet, seed=seed, frozen_time=FROZEN, settle_seconds=0) as sb:
            settings = Settings(
                kubeconfig=sb.write_kubeconfig(tmp_path / "kubeconfig"),
                port=0,
                scrape_interval=1.0,
                database_url=f"sqlite:///{tmp_path / 'opsconsole.db'}",
            )
            async with RunningBackend(settings) as url:
                yield Target(
                    url=DISPLAY_URL,
                    clock=FROZEN.timestamp,
                    transport=FixedHostTransport(url),
                    sandbox=True,
                )


@contextlib.asynccontextmanager
async def fake_target() -> AsyncIterator[Target]:
    from tests.tui_fleet import NOW, FleetFake  # the tests' fixed fleet

    yield Target(
        url="http://fake-backend:8080", clock=lambda: NOW, transport=FleetFake().transport()
    )


@contextlib.asynccontextmanager
async def url_target(url: str) -> AsyncIterator[Target]:
    yield Target(url=url, clock=time.time)


async def wait_ready(client: BackendClient) -> None:
    """Until the backend has listed the cluster and has a round of GPU telemetry from every
    exporter (or a minute has passed: then the pictures show what there is, N/A included)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            info = await client.info()
            fresh = info.freshness
            if fresh.synced and fresh.telemetry_sources and not fresh.telemetry_errors:
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
    return Subjects(tenant, workload, isvc, node)


# -- taking the pictures ---------------------------------------------------------------------------


def screens(subjects: Subjects) -> dict[str, Callable[[OpsConsoleApp], None]]:
    out: dict[str, Callable[[OpsConsoleApp], None]] = {"overview": lambda app: None}
    out["tenants"] = lambda app: app.action_goto("tenants")
    out["workloads"] = lambda app: app.action_goto("workloads")
    out["nodes"] = lambda app: app.action_goto("nodes")
    out["gpus"] = lambda app: app.action_goto("gpus")
    if subjects.tenant:
        tenant = subjects.tenant
        out["tenant"] = lambda app: app.action_show_tenant(tenant)
    if subjects.workload:
        workload = subjects.workload
        out["workload"] = lambda app: app.action_show_workload(*workload)
    if subjects.inference_service:
        isvc = subjects.inference_service
        out["inferenceservice"] = lambda app: app.action_show_workload(*isvc)
    if subjects.node:
        node = subjects.node
        out["node"] = lambda app: app.action_show_node(node)
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
        footers = top.query(Footer)
        has_data = not isinstance(top, RefreshingScreen) or top.data is not None
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
        backend=target.url, operator="operator", theme=theme, refresh_interval=3600
    )
    return OpsConsoleApp(
        settings,
        backend_url=target.url,
        sandbox=target.sandbox,
        clock=target.clock,
        transport=target.transport,
    )


async def shoot(
    target: Target,
    name: str,
    navigate: Callable[[OpsConsoleApp], None],
    size: tuple[int, int],
    out: Path,
    theme: str,
) -> Path:
    app = make_app(target, theme)
    path = out / f"{name}-{size[0]}x{size[1]}.svg"
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        navigate(app)
        await settle(pilot)
        path.write_text(app.export_screenshot(title=f"opsconsole — {name}"))
    return path


async def run(args: argparse.Namespace) -> int:
    if args.backend:
        source = url_target(args.backend)
    elif args.fake:
        source = fake_target()
    else:
        source = sandbox_target(args.fleet, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    async with source as target:
        client = BackendClient(target.url, transport=target.transport, timeout=10.0)
        try:
            await wait_ready(client)
            subjects = await pick_subjects(client)
        finally:
            await client.aclose()
        for name, navigate in screens(subjects).items():
            for size in SIZES:
                path = await shoot(target, name, navigate, size, out, args.theme)
                print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.screenshots", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--backend", help="URL of a running backend (default: embedded sandbox)")
    source.add_argument("--fake", action="store_true", help="use the tests' fixed fake fleet")
    parser.add_argument("--fleet", default="demo", choices=["demo", "large"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--theme", default="opsconsole-dark")
    parser.add_argument("--out", default="screenshots")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
