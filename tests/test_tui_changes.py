"""The console acting on a cluster: a rollback from the workload detail (plan, Cancel focused,
reason required, apply), then its history in the Audit screen and one record's diff — through the
real backend on a sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import kubernetes
import pytest
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input

from backend.schemas import WorkloadKind
from opsconsole.app import OpsConsoleApp
from opsconsole.screens.audit import AuditRecordScreen, AuditScreen
from opsconsole.screens.overview import OverviewScreen
from opsconsole.screens.rollback import RollbackScreen
from opsconsole.screens.workload_detail import WorkloadDetailScreen
from opsconsole.settings import ConsoleSettings
from tests.conftest import LiveCluster
from tests.support.console import screen_text, wait_for


@pytest.fixture(scope="module")
def release(mutable_cluster: LiveCluster) -> Iterator[tuple[str, str, str, str]]:
    """(namespace, kind, name, revision) of a Deployment with a history."""
    with httpx.Client(
        base_url=mutable_cluster.backend_url, timeout=10, headers=mutable_cluster.headers
    ) as http:
        rows = http.get("/api/v1/workloads", params={"kind": "Deployment", "limit": 500}).json()
        for row in rows["items"]:
            detail = http.get(f"/api/v1/workloads/{row['namespace']}/Deployment/{row['name']}")
            if len(detail.json()["revisions"]) >= 2:
                yield row["namespace"], WorkloadKind.DEPLOYMENT.value, row["name"], row["revision"]
                return
    raise AssertionError("no Deployment with a history in the demo fleet")


def console(cluster: LiveCluster) -> OpsConsoleApp:
    settings = ConsoleSettings(
        backend=cluster.backend_url,
        operator="carol",
        token=cluster.token_for("carol"),
        refresh_interval=0.5,
        request_timeout=30,
    )
    return OpsConsoleApp(settings, backend_url=cluster.backend_url)


async def open_rollback(pilot: Pilot[None], app: OpsConsoleApp, key: str = "u") -> RollbackScreen:
    """Press ``key`` (``u`` roll back, ``P`` promote) and wait for the dialog's plan."""
    await pilot.press(key)
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
        await wait_for(
            pilot,
            lambda: all(w in screen_text(app) for w in ("chain ✓ ", "succeeded", "canary regr")),
            "the records and the chain's state",
        )
        assert "chain ✓ 0 records" not in screen_text(app)  # checked again after the change

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
        await wait_for(pilot, lambda: audit.records == [], "no failed changes in this log")
        assert "chain ✓" in screen_text(app)

        await pilot.press("slash")
        audit.query_one(Input).value = "since:soon"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "is not a time" in screen_text(app), "the query error")

        await pilot.press("slash")
        audit.query_one(Input).value = ""
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(audit.records) == everything, "all records again")


async def test_an_inference_service_rolled_back_and_promoted_from_its_detail(
    mutable_cluster: LiveCluster,
) -> None:
    with httpx.Client(
        base_url=mutable_cluster.backend_url, timeout=10, headers=mutable_cluster.headers
    ) as http:
        rows = http.get("/api/v1/workloads", params={"kind": "InferenceService"}).json()
        canary = next(w for w in rows["items"] if w["canary_percent"] == 10)
        path = f"/api/v1/workloads/{canary['namespace']}/InferenceService/{canary['name']}"
        latest, previous = (r["revision"] for r in http.get(path).json()["traffic"]["revisions"])
    app = console(mutable_cluster)
    async with app.run_test(size=(120, 40)) as pilot:
        app.action_show_workload(canary["namespace"], "InferenceService", canary["name"])
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadDetailScreen))
        detail = app.screen
        assert isinstance(detail, WorkloadDetailScreen)
        await wait_for(pilot, lambda: detail.data is not None, "the service")
        assert f"canary: 10% to {latest}" in screen_text(app)

        # u: the split before and after, Cancel focused; a reason, then applied.
        modal = await open_rollback(pilot, app)
        assert app.focused is modal.query_one("#cancel", Button)
        text = screen_text(app)
        assert f"all traffic to {previous}" in text and "canaryTrafficPercent 10 → 0" in text
        table = modal.query_one("#plan-diff", DataTable)
        assert [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)] == [
            [latest, "10%", "0%"],
            [previous, "90%", "100%"],
        ]
        modal.query_one("#reason", Input).focus()
        await pilot.press(*"canary 5xx")
        await pilot.click("#apply")
        await wait_for(pilot, lambda: app.screen is detail, "the modal closes once applied")
        await wait_for(
            pilot,
            lambda: _all_traffic_to(detail, previous),
            "the rollback followed until the traffic moved",
        )

        # P: promote, through the same confirmation.
        modal = await open_rollback(pilot, app, "P")
        assert "Promote InferenceService" in screen_text(app)
        modal.query_one("#reason", Input).focus()
        await pilot.press(*"fixed")
        await pilot.click("#apply")
        await wait_for(pilot, lambda: app.screen is detail, "the promotion applied")
        await wait_for(
            pilot, lambda: f"all traffic to {latest}" in screen_text(app), "the promotion followed"
        )
        assert detail.data is not None and detail.data.canary_percent is None


def _all_traffic_to(detail: WorkloadDetailScreen, revision: str) -> bool:
    """Whether the detail on screen shows every request going to ``revision``."""
    split = detail.data.traffic if detail.data is not None else None
    return split is not None and any(
        r.revision == revision and r.percent == 100 for r in split.revisions
    )


def stuck_deployment(cluster: LiveCluster, namespace: str, name: str) -> None:
    """A Deployment whose pods cannot be scheduled, past its progress deadline in seconds."""
    labels = {"app": name, "opsconsole.io/model": name}
    container = {
        "name": "server",
        "image": "vllm/vllm-openai:v0.6.3",
        "resources": {"limits": {"nvidia.com/gpu": "64"}},
    }
    body = {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "progressDeadlineSeconds": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }
    client = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
    deployment = kubernetes.client.V1Deployment.model_validate(body)
    kubernetes.client.AppsV1Api(client).create_namespaced_deployment(namespace, deployment)


async def test_a_degraded_workload_reaches_its_rollback_from_the_overview(
    mutable_cluster: LiveCluster, release: tuple[str, str, str, str]
) -> None:
    namespace = release[0]
    stuck_deployment(mutable_cluster, namespace, "stuck-release")
    app = console(mutable_cluster)
    async with app.run_test(size=(120, 40)) as pilot:
        overview = app.screen
        assert isinstance(overview, OverviewScreen)

        def stuck_problem() -> int | None:
            problems = overview.data.problems if overview.data else []
            subjects = [(p.kind, p.subject) for p in problems]
            wanted = ("rollout", f"{namespace}/stuck-release")
            return subjects.index(wanted) if wanted in subjects else None

        await wait_for(pilot, lambda: stuck_problem() is not None, "the stuck rollout")
        index = stuck_problem()
        assert index is not None
        await pilot.press("p")  # 1: the problems
        table = overview.query_one("#problems", DataTable)
        assert app.focused is table
        table.move_cursor(row=index)  # (the cursor on it)
        await pilot.press("enter")  # 2: its detail
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadDetailScreen), "the detail")
        detail = app.screen
        assert isinstance(detail, WorkloadDetailScreen)
        assert (detail.workload_namespace, detail.workload_name) == (namespace, "stuck-release")
        await wait_for(pilot, lambda: "STUCK" in screen_text(app), "the stuck rollout, clearly")
        await pilot.press("u")  # 3: its rollback
        await wait_for(pilot, lambda: isinstance(app.screen, RollbackScreen), "the rollback")
