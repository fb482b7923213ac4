"""The console acting on a cluster: a rollback from the workload detail (plan, Cancel focused,
reason required, apply), then its history in the Audit screen and one record's diff — through the
real backend on a sandbox over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import kubernetes
import pytest
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input

from backend.schemas import Problem, WorkloadKind
from opsconsole.app import OpsConsoleApp
from opsconsole.screens.audit import AuditRecordScreen, AuditScreen
from opsconsole.screens.overview import OverviewScreen
from opsconsole.screens.rollback import RollbackScreen
from opsconsole.screens.workload_detail import WorkloadDetailScreen
from opsconsole.settings import ConsoleSettings
from tests.conftest import LiveCluster
from tests.support.console import screen_text, wait_for, wait_for_focus


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


def console(cluster: LiveCluster, refresh_interval: float = 0.5) -> OpsConsoleApp:
    settings = ConsoleSettings(
        backend=cluster.backend_url,
        operator="carol",
        token=cluster.token_for("carol"),
        refresh_interval=refresh_interval,
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
        await wait_for_focus(pilot, "reason")
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
        await wait_for(pilot, lambda: "canary regressed" in screen_text(app), "the reason")


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
        # How the revision taking the traffic differs from the latest: the model it serves.
        changes = modal.query_one("#revision-changes", DataTable)
        rows = [[str(c) for c in changes.get_row_at(i)] for i in range(changes.row_count)]
        uri = "containers[kserve-container].env[STORAGE_URI].value"
        assert changes.display and any(field == uri for field, _ in rows)
        assert f"pod template {latest} → {previous}" in screen_text(app)
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


async def test_a_stuck_rollout_is_a_problem_and_stuck_in_its_detail(
    mutable_cluster: LiveCluster, release: tuple[str, str, str, str]
) -> None:
    namespace = release[0]
    stuck_deployment(mutable_cluster, namespace, "stuck-release")
    app = console(mutable_cluster)
    async with app.run_test(size=(120, 40)) as pilot:
        overview = app.screen
        assert isinstance(overview, OverviewScreen)

        def stuck_problem() -> bool:
            problems = overview.data.problems if overview.data else []
            return ("rollout", f"{namespace}/stuck-release") in [
                (p.kind, p.subject) for p in problems
            ]

        await wait_for(pilot, stuck_problem, "the stuck rollout among the problems")
        app.action_show_workload(namespace, "Deployment", "stuck-release")
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadDetailScreen), "the detail")
        await wait_for(pilot, lambda: "STUCK" in screen_text(app), "the stuck rollout, clearly")


BAD_RELEASE = ("team-g", "llama-8b-prod")  # the demo fleet's bad revision (seed 7)


def bad_release_problem(problems: list[Problem]) -> int | None:
    """The row of the bad release's endpoint alert among the overview's problems."""
    subjects = [(p.kind, p.subject) for p in problems]
    wanted = ("endpoint-errors", "/".join(BAD_RELEASE))
    return subjects.index(wanted) if wanted in subjects else None


async def test_a_degraded_release_reaches_its_rollback_from_the_overview_in_three_keys(
    alerting_cluster: LiveCluster,
) -> None:
    """The bad release fails 8% of its requests: its error-rate alert is among the overview's
    problems (critical, as this backend rates it), and the rollback to the revision before it
    is at most three keys away."""
    namespace, name = BAD_RELEASE
    headers = alerting_cluster.headers
    with httpx.Client(base_url=alerting_cluster.backend_url, timeout=10, headers=headers) as http:
        detail = http.get(f"/api/v1/workloads/{namespace}/Deployment/{name}").json()
        current, previous = (r["revision"] for r in detail["revisions"][:2])
        assert current == detail["revision"] and int(previous) < int(current)
        deadline = time.monotonic() + 60
        while bad_release_problem(problems_of(http)) is None:
            assert time.monotonic() < deadline, "the bad release's alert never fired"
            time.sleep(0.2)
    app = console(alerting_cluster, refresh_interval=3600)  # the rows stay where they are
    async with app.run_test(size=(120, 40)) as pilot:
        overview = app.screen
        assert isinstance(overview, OverviewScreen)
        await wait_for(pilot, lambda: overview.data is not None, "the overview")
        assert overview.data is not None
        row = bad_release_problem(overview.data.problems)
        assert row is not None and row <= 1, f"the bad release is row {row} of the problems"
        assert app.focused is overview.query_one("#problems", DataTable)

        keys = [*["down"] * row, "enter", "u"]
        assert len(keys) <= 3
        await pilot.press(*keys[:-1])  # to the problem, then its detail
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadDetailScreen), "the detail")
        detail_screen = app.screen
        assert isinstance(detail_screen, WorkloadDetailScreen)
        assert (detail_screen.workload_namespace, detail_screen.workload_name) == BAD_RELEASE
        await wait_for(pilot, lambda: detail_screen.data is not None, "the release")
        modal = await open_rollback(pilot, app, keys[-1])
        assert app.focused is modal.query_one("#cancel", Button)
        assert modal.plan is not None and modal.plan.details["target_revision"] == int(previous)
        assert f"revision {current} → revision {previous}" in screen_text(app)
        await pilot.press("enter")  # on Cancel: nothing changes
        await wait_for(pilot, lambda: app.screen is detail_screen, "back on the detail")


def problems_of(http: httpx.Client) -> list[Problem]:
    overview = http.get("/api/v1/overview").json()
    return [Problem.model_validate(p) for p in overview["problems"]]
