"""The console acting on a cluster: a rollback from the workload detail (plan, Cancel focused,
reason required, apply), then its history in the Audit screen and one record's diff — through the
real backend on a sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input

from backend.schemas import WorkloadKind
from opsconsole.app import OpsConsoleApp
from opsconsole.screens.audit import AuditRecordScreen, AuditScreen
from opsconsole.screens.rollback import RollbackScreen
from opsconsole.screens.workload_detail import WorkloadDetailScreen
from opsconsole.settings import ConsoleSettings
from tests.conftest import LiveCluster
from tests.support.console import screen_text, wait_for


@pytest.fixture(scope="module")
def release(mutable_cluster: LiveCluster) -> Iterator[tuple[str, str, str, str]]:
    """(namespace, kind, name, revision) of a Deployment with a history."""
    with httpx.Client(base_url=mutable_cluster.backend_url, timeout=10) as http:
        rows = http.get("/api/v1/workloads", params={"kind": "Deployment", "limit": 500}).json()
        for row in rows["items"]:
            detail = http.get(f"/api/v1/workloads/{row['namespace']}/Deployment/{row['name']}")
            if len(detail.json()["revisions"]) >= 2:
                yield row["namespace"], WorkloadKind.DEPLOYMENT.value, row["name"], row["revision"]
                return
    raise AssertionError("no Deployment with a history in the demo fleet")


def console(cluster: LiveCluster) -> OpsConsoleApp:
    settings = ConsoleSettings(
        backend=cluster.backend_url, operator="carol", refresh_interval=0.5, request_timeout=30
    )
    return OpsConsoleApp(settings, backend_url=cluster.backend_url)


async def open_rollback(pilot: Pilot[None], app: OpsConsoleApp) -> RollbackScreen:
    """Press ``u`` and wait for the dialog's plan."""
    await pilot.press("u")
    await wait_for(pilot, lambda: isinstance(app.screen, RollbackScreen))
    modal = app.screen
    assert isinstance(modal, RollbackScreen)
    await wait_for(pilot, lambda: modal.plan is not None, "the plan")
    return modal


async def test_rollback_from_the_workload_detail_and_its_history(
    mutable_cluster: LiveCluster, release: tuple[str, str, str, str]
) -> None:
    namespace, kind, name, revision = release
    app = console(mutable_cluster)
    async with app.run_test(size=(120, 40)) as pilot:
        app.action_show_workload(namespace, kind, name)
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadDetailScreen))
        detail = app.screen
        assert isinstance(detail, WorkloadDetailScreen)
        await wait_for(pilot, lambda: detail.data is not None, "the workload")

        # u: the plan, with Cancel focused; Cancel leaves everything as it was.
        modal = await open_rollback(pilot, app)
        assert app.focused is modal.query_one("#cancel", Button)
        text = screen_text(app)
        assert f"revision {revision} → revision" in text
        assert "containers[" in text
        await pilot.press("enter")  # on Cancel
        await wait_for(pilot, lambda: app.screen is detail, "back on the detail")

        # Again: no reason, no rollback; with one, the rollback is applied.
        modal = await open_rollback(pilot, app)
        await pilot.click("#apply")
        await wait_for(pilot, lambda: "A reason is required." in screen_text(app))
        assert app.focused is modal.query_one("#reason", Input)
        await pilot.press(*"canary regressed")
        await pilot.click("#apply")
        await wait_for(pilot, lambda: app.screen is detail, "the modal closes once applied")
        new_revision = str(int(revision) + 1)
        await wait_for(
            pilot,
            lambda: detail.data is not None and detail.data.revision == new_revision,
            "the new revision shows",
        )

        # h: the workload's history — intent and outcome, by carol, with the reason.
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen))
        audit = app.screen
        assert isinstance(audit, AuditScreen)
        await wait_for(pilot, lambda: len(audit.records) == 2, "two records")
        assert [r.stage.value for r in audit.records] == ["outcome", "intent"]
        assert {r.actor for r in audit.records} == {"carol"}
        text = screen_text(app)
        assert "chain ✓" in text and "succeeded" in text and "canary regressed" in text

        # enter: the record, field by field.
        audit.query_one("#records", DataTable).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditRecordScreen))
        record = app.screen
        assert isinstance(record, AuditRecordScreen)
        await wait_for(pilot, lambda: record.data is not None)
        assert record.data is not None and record.data.diff
        assert "canary regressed" in screen_text(app)


async def test_audit_screen_filters_and_keeps_the_chain_in_view(
    mutable_cluster: LiveCluster,
) -> None:
    app = console(mutable_cluster)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen))
        audit = app.screen
        assert isinstance(audit, AuditScreen)
        await wait_for(pilot, lambda: audit.data is not None and audit.records, "records")
        everything = len(audit.records)

        await pilot.press("slash", *"outcome:failed", "enter")
        await wait_for(pilot, lambda: audit.query_text == "outcome:failed")
        await wait_for(pilot, lambda: audit.records == [] or audit.data is None)
        assert "chain ✓" in screen_text(app)

        await pilot.press("slash")
        audit.query_one(Input).value = "since:soon"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "is not a time" in screen_text(app), "the query error")

        await pilot.press("slash")
        audit.query_one(Input).value = ""
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(audit.records) == everything, "all records again")
