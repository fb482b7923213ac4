"""Hostile Unicode, markup and terminal escapes in every field of every screen, at 80×24: nothing
reaches the terminal that can move the layout (format characters, controls, newlines, tabs), no
row is wider than the screen, markup is shown as the characters it is, and long values are
clipped with an ellipsis, their whole text one key away.

Zero-width joiners and bidi overrides are measured as zero cells by Rich but drawn by terminals
(an 80-column row became 83 cells); a newline inside a cell breaks its row; a 5 KB event reason
widened its column for every row.
"""

from __future__ import annotations

import time
import unicodedata
from pathlib import Path
from typing import Any

import httpx
import kubernetes
from rich.cells import cell_len
from textual import events
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from backend.conventions import MODEL_LABEL, STAGE_LABEL
from backend.k8s.annotations import CHANGE_CAUSE_ANNOTATION, REVISION_ANNOTATION
from opsconsole.app import OpsConsoleApp
from opsconsole.screens.alerts import AlertsScreen
from opsconsole.screens.audit import AuditRecordScreen, AuditScreen
from opsconsole.screens.endpoints import EndpointsScreen
from opsconsole.screens.full_text import FullTextScreen
from opsconsole.screens.gpus import GpusScreen, NodesScreen
from opsconsole.screens.node_detail import NodeDetailScreen
from opsconsole.screens.quotas import QuotaScreen
from opsconsole.screens.rollback import RollbackScreen
from opsconsole.screens.tenant_detail import TenantDetailScreen
from opsconsole.screens.tenants import TenantsScreen
from opsconsole.screens.workload_detail import WorkloadDetailScreen
from opsconsole.screens.workloads import WorkloadsScreen
from opsconsole.settings import ConsoleSettings
from opsconsole.text import clean
from tests.conftest import LiveCluster
from tests.support.console import FakeClock, make_app, screen_text, wait_for
from tests.support.fleets import SAMPLED_AT
from tests.support.hostile import (
    HOSTILE,
    ISVC,
    LITERAL,
    MARKUP_SHOWN,
    NODE,
    REASON,
    REASON_END,
    SHOWN,
    TENANT,
    TENANT_SHOWN,
    WORKLOAD,
    WORKLOAD_SHOWN,
    hostile_backend,
)

SIZE = (80, 24)


def assert_safe(app: App[None]) -> str:
    """Nothing on screen that a terminal draws differently from Rich or that moves the cursor,
    no row wider than the screen, no hostile value shown whole; the screen's text."""
    text = screen_text(app)
    bad = {ch for ch in text if unicodedata.category(ch) in ("Cc", "Cf") and ch != "\n"}
    assert not bad, f"unsafe characters on screen: {sorted(map(hex, map(ord, bad)))}"
    lines = text.splitlines()
    assert len(lines) == SIZE[1]
    assert all(cell_len(line) == SIZE[0] for line in lines), "a row is not the screen's width"
    assert "R" * 200 not in text  # the long reason is clipped
    assert "a" * 80 not in text  # so is the joined text, to its cell
    return text


async def show(pilot, app, screen_type: type, *shown: str) -> str:
    """Wait for ``screen_type`` to show every string in ``shown``, then check the screen."""
    await wait_for(pilot, lambda: isinstance(app.screen, screen_type), screen_type.__name__)
    await wait_for(pilot, lambda: all(s in screen_text(app) for s in shown), f"{shown} on screen")
    return assert_safe(app)


async def test_hostile_text_in_every_screen_at_80x24(tmp_path: Path) -> None:
    fake, alerting = await hostile_backend(tmp_path)
    app = make_app(fake, clock=FakeClock(SAMPLED_AT + 60))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: f"team-a/{WORKLOAD_SHOWN}" in screen_text(app))
            assert LITERAL in assert_safe(app)

            await pilot.press("2")
            await show(pilot, app, TenantsScreen, TENANT_SHOWN)

            await pilot.press("3")
            await show(pilot, app, WorkloadsScreen, WORKLOAD_SHOWN, LITERAL)

            app.action_goto("nodes")
            await show(pilot, app, NodesScreen, NODE, LITERAL)

            await pilot.press("4")
            await show(pilot, app, GpusScreen, LITERAL)

            await pilot.press("5")
            await show(pilot, app, AuditScreen, LITERAL)
            await pilot.press("enter")
            await show(pilot, app, AuditRecordScreen, "reason", LITERAL)

            await pilot.press("6")
            await show(pilot, app, QuotaScreen, TENANT_SHOWN)

            await pilot.press("7")
            await show(pilot, app, AlertsScreen, "rollout_stuck", f"team-a/{WORKLOAD_SHOWN}")

            await pilot.press("8")
            await show(pilot, app, EndpointsScreen, f"team-a/{WORKLOAD_SHOWN}")

            app.action_show_tenant(TENANT)
            await show(pilot, app, TenantDetailScreen, WORKLOAD_SHOWN)
            await pilot.press("c")  # the cost panel
            await show(pilot, app, TenantDetailScreen, "27.00")

            app.action_show_workload("team-a", "deployment", WORKLOAD)
            text = await show(pilot, app, WorkloadDetailScreen, "RRR…", "line1 line2", LITERAL)
            assert "rollout failed" in text  # the condition's message follows, wrapped

            app.action_show_workload("team-a", "inferenceservice", ISVC)
            await show(pilot, app, WorkloadDetailScreen, "RRR…", LITERAL)

            app.action_show_node(NODE)
            await show(pilot, app, NodeDetailScreen, NODE, "gpu1")
            await pilot.press("down", "f")  # the hostile pod's column is off-screen: its row
            await show(pilot, app, FullTextScreen, "POD", SHOWN[:40], "line1 line2")
            await pilot.press("escape")
            app.action_show_node("gpu-node-0001")
            await show(pilot, app, NodeDetailScreen, "gpu-node-0001", LITERAL)
            assert app.is_running
    finally:
        alerting.close()


async def test_a_clipped_event_reads_in_full_and_escape_closes(tmp_path: Path) -> None:
    fake, alerting = await hostile_backend(tmp_path)
    app = make_app(fake, clock=FakeClock(SAMPLED_AT + 60))
    try:
        async with app.run_test(size=SIZE) as pilot:
            app.action_show_workload("team-a", "deployment", WORKLOAD)
            await show(pilot, app, WorkloadDetailScreen, "RRR…")
            detail = app.screen
            await pilot.press("e", "enter")  # the events; enter opens the row's whole text
            text = await show(pilot, app, FullTextScreen, "TYPE", "Warning", "REASON")
            assert "…" not in text  # nothing clipped: the text wraps
            assert "R" * 60 in text
            await pilot.press("end")  # it scrolls to the end of the reason and the other fields
            text = await show(pilot, app, FullTextScreen, REASON_END, "MESSAGE", "OBJECT")
            assert "line1 line2" in text and MARKUP_SHOWN in text

            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is detail, "back to the workload")
            await pilot.press("v", "f")  # any panel's row: f
            await show(pilot, app, FullTextScreen, "CHANGE-CAUSE", SHOWN[:40])
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is detail, "back to the workload")
    finally:
        alerting.close()


# -- through a cluster: what any client of the API server may write ----------------------------


def hostile_deployment(change_cause: str, image: str) -> dict[str, Any]:
    """``hostile``, a release whose change-cause and other annotation are hostile."""
    labels = {"app": "hostile", MODEL_LABEL: "hostile", STAGE_LABEL: "production"}
    return {
        "metadata": {
            "name": "hostile",
            "labels": labels,
            "annotations": {CHANGE_CAUSE_ANNOTATION: change_cause, "example.com/note": HOSTILE},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "hostile"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "server", "image": image}]},
            },
        },
    }


def revision_of(deployment: Any) -> str | None:
    """The revision number the deployment controller has given a Deployment, if any yet."""
    return (deployment.metadata.annotations or {}).get(REVISION_ANNOTATION)


def hostile_release(cluster: LiveCluster, namespace: str) -> None:
    """``hostile`` with two revisions (change-causes: the 5 KB reason, then ``HOSTILE``) and an
    event about it with a 5 KB reason, written through the cluster's API as any client may."""
    client = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
    apps, core = kubernetes.client.AppsV1Api(client), kubernetes.client.CoreV1Api(client)
    first = hostile_deployment(REASON, "registry.local/x:1")
    apps.create_namespaced_deployment(
        namespace, kubernetes.client.V1Deployment.model_validate(first)
    )
    # The controller must see the first template before it is replaced, or it only ever makes
    # one revision (a real deployment controller also acts on the latest state it reads).
    deadline = time.monotonic() + 15.0
    while revision_of(apps.read_namespaced_deployment("hostile", namespace)) != "1":
        assert time.monotonic() < deadline, "the first revision was never made"
        time.sleep(0.05)
    second = hostile_deployment(HOSTILE, "registry.local/x:2")
    apps.replace_namespaced_deployment(
        "hostile", namespace, kubernetes.client.V1Deployment.model_validate(second)
    )
    event = {
        "metadata": {"name": "hostile.1", "namespace": namespace},
        "involvedObject": {"kind": "Deployment", "namespace": namespace, "name": "hostile"},
        "type": "Warning",
        "reason": REASON,
        "message": HOSTILE,
        "count": 1,
    }
    core.create_namespaced_event(namespace, kubernetes.client.CoreV1Event.model_validate(event))


async def open_rollback(pilot: Pilot[None], app: OpsConsoleApp) -> RollbackScreen:
    """``u`` on the workload, until its plan arrives (a loaded machine may drop a connection:
    the dialog then says so and is opened again)."""
    for _ in range(3):
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, RollbackScreen))
        modal = app.screen
        assert isinstance(modal, RollbackScreen)

        def answered(dialog: RollbackScreen = modal) -> bool:
            return dialog.plan is not None or "Nothing planned" in screen_text(app)

        await wait_for(pilot, answered, "the plan or its error")
        if modal.plan is not None:
            return modal
        await pilot.press("escape")
    raise AssertionError("no rollback plan")


async def test_hostile_text_from_the_cluster_in_the_rollback_and_its_audit_at_80x24(
    mutable_cluster: LiveCluster,
) -> None:
    with httpx.Client(
        base_url=mutable_cluster.backend_url, timeout=10, headers=mutable_cluster.headers
    ) as http:
        namespace = http.get("/api/v1/workloads", params={"limit": 1}).json()["items"][0][
            "namespace"
        ]
    hostile_release(mutable_cluster, namespace)
    settings = ConsoleSettings(
        backend=mutable_cluster.backend_url,
        operator="carol",
        token=mutable_cluster.token_for("carol"),
        refresh_interval=0.5,
        request_timeout=30,
    )
    app = OpsConsoleApp(settings, backend_url=mutable_cluster.backend_url)
    async with app.run_test(size=SIZE) as pilot:
        app.action_show_workload(namespace, "Deployment", "hostile")
        detail = app.screen
        assert isinstance(detail, WorkloadDetailScreen)
        await wait_for(
            pilot,
            lambda: detail.data is not None and len(detail.data.revisions) == 2,
            "the two revisions",
        )
        await show(pilot, app, WorkloadDetailScreen, LITERAL, "RRR…")

        modal = await open_rollback(pilot, app)  # the plan: the change-causes swap
        await show(pilot, app, RollbackScreen, "change-cause")
        reason = modal.query_one("#reason", Input)
        pasted = "R" * 800 + HOSTILE  # a reason pasted from elsewhere (the API takes 1000)
        reason.post_message(events.Paste(pasted))
        await wait_for(pilot, lambda: "line1" in reason.value, "the pasted reason")
        assert reason.value == clean(pasted.splitlines()[0])  # its first line, sanitized
        assert_safe(app)
        await pilot.click("#apply")
        await wait_for(pilot, lambda: app.screen is detail, "the rollback applied")

        await pilot.press("h")  # its audit records: the reason as given, shown safely
        audit = app.screen
        assert isinstance(audit, AuditScreen)
        await wait_for(pilot, lambda: len(audit.records) == 2, "two records")
        await show(pilot, app, AuditScreen, "carol")
        audit.query_one("#records", DataTable).focus()
        await pilot.press("enter")
        await show(pilot, app, AuditRecordScreen, "reason", LITERAL)
