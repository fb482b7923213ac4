"""``python -m bench.screenshots``: SVGs of every console screen at 80×24 and 160×48.

Without ``--backend`` it starts a ``demo`` sandbox (seed 7, frozen clock) and a backend on it in
this process, so the pictures are reproducible; ``--fake`` serves the tests' detail fleet through
the real backend app instead (no sandbox, no sockets). Files are named ``<screen>-<W>x<H>.svg`` in ``--out``
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
from pathlib import Path

from opsconsole.app import OpsConsoleApp
from opsconsole.client import BackendClient
from opsconsole.launch import DEMO_GPU_PRICES
from opsconsole.settings import ConsoleSettings
from tests.support.backend import FleetBackend
from tests.support.detail_fleet import NOW, detail_fleet
from tests.support.screens import (
    DISPLAY_HOST,
    DISPLAY_URL,
    FROZEN,
    SIZES,
    FixedHostTransport,
    Target,
    make_app,
    pick_subjects,
    screens,
    settle,
    wait_ready,
)
from tests.support.tokens import issue_token

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
                allowed_hosts=[DISPLAY_HOST],
                gpu_prices=DEMO_GPU_PRICES,
            )
            async with RunningBackend(settings) as url:
                yield Target(
                    url=DISPLAY_URL,
                    clock=FROZEN.timestamp,
                    transport=FixedHostTransport(url),
                    sandbox=True,
                    token=issue_token(settings.database_url, "alice", "admin"),
                )


@contextlib.asynccontextmanager
async def fake_target() -> AsyncIterator[Target]:
    """The real backend app over the tests' detail fleet, in this process, with its clock."""
    fake = FleetBackend(detail_fleet())
    yield Target(
        url="http://fake-backend:8080",
        clock=lambda: NOW,
        transport=fake.transport(),
        token=fake.token,
    )


@contextlib.asynccontextmanager
async def url_target(url: str) -> AsyncIterator[Target]:
    yield Target(url=url, clock=time.time, token=ConsoleSettings().token)


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
        client = BackendClient(
            target.url, transport=target.transport, timeout=10.0, token=target.token
        )
        try:
            await wait_ready(client)
            subjects = await pick_subjects(client)
        finally:
            await client.aclose()
        pictures = screens(subjects)
        audit = pictures.pop("audit")
        for name, navigate in pictures.items():
            for size in SIZES:
                print(await shoot(target, name, navigate, size, out, args.theme))
        if target.sandbox and subjects.release:  # our own sandbox: something to audit
            await roll_back(target, subjects.release)
        for size in SIZES:
            print(await shoot(target, "audit", audit, size, out, args.theme))
    return 0


async def roll_back(target: Target, release: tuple[str, str, str]) -> None:
    """One rollback through the backend, so that the audit log has a change to show."""
    client = BackendClient(
        target.url, transport=target.transport, timeout=30.0, operator="alice", token=target.token
    )
    try:
        plan = await client.rollback_plan(*release)
        await client.rollback_apply(*release, plan, "p99 latency doubled after the rollout")
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.screenshots", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--backend", help="URL of a running backend (default: embedded sandbox)")
    source.add_argument("--fake", action="store_true", help="use the tests' detail fleet")
    parser.add_argument("--fleet", default="demo", choices=["demo", "large"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--theme", default="opsconsole-dark")
    parser.add_argument("--out", default="screenshots")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
