"""Snapshot tests: every screen of the console at 80×24 and 160×48, against the real sandbox.

The console talks over HTTP to a backend on the demo sandbox (seed 7, clock frozen at
2026-11-29 12:00 UTC, telemetry history full), with its own clock frozen at the same instant, so
the pictures are reproducible. ``pytest --snapshot-update`` regenerates them under
``tests/__snapshots__``; ``make screenshots`` takes the same pictures for the README.

The Audit screen with records is pictured on the in-process backend over a fixed audit log
(``tests.support.audit``): records made by the sandbox's backend carry the time they were made.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.pilot import Pilot

from opsconsole.app import OpsConsoleApp
from opsconsole.client import BackendClient
from opsconsole.screens.audit import AuditRecordScreen
from tests.conftest import LiveCluster
from tests.support import console
from tests.support.audit import QUOTA_DIFF_SEQ, sample_audit_log, tamper
from tests.support.backend import FleetBackend
from tests.support.fleets import SAMPLED_AT
from tests.support.hostile import WORKLOAD, hostile_backend
from tests.support.screens import (
    DISPLAY_URL,
    FROZEN,
    SIZES,
    FixedHostTransport,
    Subjects,
    Target,
    make_app,
    pick_subjects,
    screens,
    settle,
)

SCREEN_NAMES = [
    "overview",
    "tenants",
    "workloads",
    "nodes",
    "gpus",
    "tenant",
    "workload",
    "inferenceservice",
    "node",
    "help",
    "audit",
    "rollback",
    "quota",
    "quota-plan",
    "alerts",
    "endpoints",
]


@pytest.fixture(scope="module")
def subjects(live_cluster: LiveCluster) -> Subjects:
    async def pick() -> Subjects:
        client = BackendClient(live_cluster.backend_url, token=live_cluster.token)
        try:
            return await pick_subjects(client)
        finally:
            await client.aclose()

    return asyncio.run(pick())


def target(cluster: LiveCluster) -> Target:
    return Target(
        url=DISPLAY_URL,
        clock=FROZEN.timestamp,
        transport=FixedHostTransport(cluster.backend_url),
        sandbox=True,
        token=cluster.token,
    )


def run_before(navigate):
    async def go(pilot: Pilot[None]) -> None:
        await settle(pilot)
        navigate(pilot.app)
        await settle(pilot)

    return go


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", SCREEN_NAMES)
def test_screen_snapshot(
    snap_compare, live_cluster: LiveCluster, subjects: Subjects, screen: str, size: tuple[int, int]
) -> None:
    navigate = screens(subjects)[screen]
    assert snap_compare(
        make_app(target(live_cluster)), terminal_size=size, run_before=run_before(navigate)
    )


def test_light_theme_snapshot(snap_compare, live_cluster: LiveCluster) -> None:
    assert snap_compare(
        make_app(target(live_cluster), "opsconsole-light"),
        terminal_size=(80, 24),
        run_before=run_before(lambda app: None),
    )


def audit_backend(directory: Path, tampered: int | None = None) -> FleetBackend:
    """The in-process backend with the fixed audit log, its chain checked (after record
    ``tampered`` was edited behind the log's back, if given)."""
    fake = FleetBackend()
    log = sample_audit_log(directory)
    if tampered is not None:
        tamper(log, tampered, "nothing to see here")
    asyncio.run(log.verify())
    fake.source.audit = log
    return fake


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_audit_records_snapshot(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(
        console.make_app(audit_backend(tmp_path)),
        terminal_size=size,
        run_before=run_before(lambda app: app.action_goto("audit")),
    )


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_audit_record_diff_snapshot(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    def open_record(app) -> None:
        app.action_goto("audit")
        app.push_screen(AuditRecordScreen(QUOTA_DIFF_SEQ))

    assert snap_compare(
        console.make_app(audit_backend(tmp_path)),
        terminal_size=size,
        run_before=run_before(open_record),
    )


def test_audit_broken_chain_snapshot(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(
        console.make_app(audit_backend(tmp_path, tampered=3)),
        terminal_size=SIZES[0],
        run_before=run_before(lambda app: app.action_goto("audit")),
    )


@pytest.mark.parametrize("screen", ["workloads", "workload", "event"])
def test_hostile_text_snapshot(snap_compare, tmp_path: Path, screen: str) -> None:
    """The screens hostile text hurt most, at 80×24 over ``tests.support.hostile``'s fleet (an
    in-memory backend and a fixed clock): a list, a workload's detail, an event's whole text."""
    fake, alerting = asyncio.run(hostile_backend(tmp_path))

    async def go(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, OpsConsoleApp)
        await settle(pilot)
        if screen == "workloads":
            app.action_goto("workloads")
        else:
            app.action_show_workload("team-a", "deployment", WORKLOAD)
        await settle(pilot)
        if screen == "event":
            await pilot.press("e", "enter", "end")  # the end of the reason and the other fields
            await settle(pilot)

    app = console.make_app(fake, clock=console.FakeClock(SAMPLED_AT + 60))
    try:
        assert snap_compare(app, terminal_size=(80, 24), run_before=go)
    finally:
        alerting.close()
