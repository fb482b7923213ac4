"""Pilot tests of the overview, detail and help screens against the real backend app serving
``detail_fleet()`` (cluster objects and telemetry turned into screens by the real fleet model).

Each screen runs in ``HarnessApp`` (the shell's interface, recording drill-downs) so that what a
screen asks the app to open can be asserted; one test drives the real ``OpsConsoleApp`` through a
drill-down chain.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.text import Text
from textual.widgets import DataTable, Static

from backend.fleet.model import build_fleet_model
from backend.schemas import Problem, ProblemSeverity
from opsconsole import format as fmt
from opsconsole.screens.help import HelpScreen
from opsconsole.screens.node_detail import NodeDetailScreen
from opsconsole.screens.overview import OverviewScreen, problem_target
from opsconsole.screens.tenant_detail import TenantDetailScreen
from opsconsole.screens.workload_detail import WorkloadDetailScreen
from tests.support import objects as k8s
from tests.support.backend import FleetBackend
from tests.support.console import HarnessApp
from tests.support.detail_fleet import (
    HOSTILE,
    HOSTILE_POD,
    NO_NODE_FITS,
    NOW,
    detail_fleet,
    queued_job,
)

SIZE = (120, 40)


def cells(table: DataTable[Any], row: int) -> list[str]:
    """A row's cells as plain text, asserting every non-empty cell is a Text (never markup)."""
    out = []
    for cell in table.get_row_at(row):
        assert isinstance(cell, Text) or cell == "" or str(cell).isdigit(), repr(cell)
        out.append(cell.plain if isinstance(cell, Text) else str(cell))
    return out


def column(table: DataTable[Any], index: int) -> list[str]:
    return [cells(table, row)[index] for row in range(table.row_count)]


def static_text(app: HarnessApp, selector: str) -> Text:
    content = app.screen.query_one(selector, Static).content
    assert isinstance(content, Text)
    return content


async def select_row(app: HarnessApp, pilot: Any, table_id: str, row: int) -> None:
    table = app.screen.query_one(f"#{table_id}", DataTable)
    table.focus()
    table.move_cursor(row=row)
    await pilot.press("enter")
    await pilot.pause()


async def loaded(pilot: Any, app: HarnessApp, oks: int = 1) -> None:
    for _ in range(100):
        await pilot.pause(0.02)
        if app.oks >= oks or app.errors:
            return


# -- overview --------------------------------------------------------------------------------------


async def test_overview_shows_fleet_and_drills_down() -> None:
    app = HarnessApp(OverviewScreen)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        totals = static_text(app, "#totals").plain
        assert "Nodes 3/4 ready" in totals and "7352 W" in totals  # the samples' sum
        problems = screen.query_one("#problems", DataTable)
        # critical first (a node down, an XID), then warnings; by kind and subject within each
        assert column(problems, 2) == [
            "a100-node-01",
            "h100-node-02/gpu2",
            "team-a/llama-70b",
            "h100-node-01/gpu3",
            "team-a/finetune-7",
            "team-b/x[bold]y",  # its rollout passed the progress deadline: stuck
        ]
        assert problems.border_title == "Problems (6)"
        tenants = screen.query_one("#tenants", DataTable)
        team_a = cells(tenants, 0)
        assert team_a[0] == "team-a" and "18/16 +2 borrowed" in team_a[1]
        assert cells(tenants, 1)[3] == "N/A"  # unknown utilization is N/A, never 0%
        assert cells(tenants, 3)[0] == HOSTILE  # shown literally, not as markup
        models = screen.query_one("#models", DataTable)
        assert column(models, 0) == [
            "NVIDIA-A100-SXM4-40GB",
            "NVIDIA-H100-80GB-HBM3",
            "NVIDIA-L4",
        ]
        assert "Degraded 2" in static_text(app, "#statuses").plain
        hottest = screen.query_one("#hottest", DataTable)
        assert cells(hottest, 0)[:3] == ["h100-node-01/gpu3", "H100-80GB-HBM3", "91°C"]

        await select_row(app, pilot, "tenants", 3)
        await select_row(app, pilot, "problems", 1)  # xid on a GPU -> its node
        await select_row(app, pilot, "problems", 0)  # node not ready
        await select_row(app, pilot, "hottest", 0)
        await select_row(app, pilot, "problems", 2)  # degraded: looks up the workload's kind
        for _ in range(50):
            if len(app.calls) >= 5:
                break
            await pilot.pause(0.02)
    assert app.calls == [
        ("tenant", HOSTILE),
        ("node", "h100-node-02"),
        ("node", "a100-node-01"),
        ("node", "h100-node-01"),
        ("workload", "team-a", "Deployment", "llama-70b"),
    ]


async def test_overview_keeps_last_data_on_backend_error() -> None:
    fake = FleetBackend(detail_fleet())
    app = HarnessApp(OverviewScreen, fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        fake.mode = "error"
        await pilot.press("r")
        await loaded(pilot, app, oks=2)
        assert len(app.errors) == 1 and app.errors[0].status == 500
        problems = app.screen.query_one("#problems", DataTable)
        assert problems.row_count == 6  # the last good data is still browsable
        fake.mode = "down"
        await pilot.press("r")
        for _ in range(50):
            if len(app.errors) == 2:
                break
            await pilot.pause(0.02)
        assert len(app.errors) == 2
        assert app.screen.query_one("#tenants", DataTable).row_count == 4


async def test_overview_backend_down_at_start_shows_no_crash() -> None:
    fake = FleetBackend(detail_fleet())
    fake.mode = "malformed"
    app = HarnessApp(OverviewScreen, fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        assert app.errors and "malformed" in app.errors[0].message
        assert "Loading" in static_text(app, "#totals").plain
        fake.mode = "ok"
        await pilot.press("r")
        await loaded(pilot, app)
        assert app.screen.query_one("#problems", DataTable).row_count == 6


async def test_problem_about_a_missing_workload_notifies_literally() -> None:
    fleet = detail_fleet()
    k8s.add(fleet.cluster, *queued_job("x[bold]gone", "team-a"))
    fake = FleetBackend(fleet)
    app = HarnessApp(OverviewScreen, fake)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        subjects = column(app.screen.query_one("#problems", DataTable), 2)
        # The Job is deleted between the overview and the drill-down's lookup of its kind.
        after = detail_fleet()
        fake.source.model = build_fleet_model(after.cluster, after.telemetry(), now=NOW)
        await select_row(app, pilot, "problems", subjects.index("team-a/x[bold]gone"))
        for _ in range(50):
            if app._notifications:
                break
            await pilot.pause(0.02)
        messages = [n.message for n in app._notifications]
    assert app.calls == []
    assert messages == ["workload team-a/x[bold]gone not found"]


def test_problem_targets() -> None:
    def target(kind: str, subject: str) -> tuple[str, str, str] | None:
        return problem_target(
            Problem(severity=ProblemSeverity.INFO, kind=kind, subject=subject, message="")
        )

    assert target("pending", "team-a/job-1") == ("workload", "team-a", "job-1")
    for alert in ("endpoint-errors", "endpoint-slow"):
        assert target(alert, "team-g/llama-8b") == ("workload", "team-g", "llama-8b")
    assert target("degraded", "lonely") is None
    assert target("xid", "node-07/gpu3") == ("node", "node-07", "")
    assert target("node-not-ready", "node-07") == ("node", "node-07", "")
    assert target("hot", "") is None


# -- tenant detail -----------------------------------------------------------------------------


async def test_tenant_detail_quota_workloads_gpus() -> None:
    app = HarnessApp(lambda: TenantDetailScreen("team-a"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        screen = app.screen
        header = static_text(app, "#header").plain
        assert "cq-team-a" in header and "research" in header and "team-a-dev" in header
        quotas = screen.query_one("#quotas", DataTable)
        h100 = cells(quotas, 0)
        assert h100[0] == "NVIDIA-H100-80GB-HBM3"
        assert "14/12 +2 borrowed 4 pending" in h100[2]
        assert h100[5] == "4" and h100[6] == "∞"
        workloads = screen.query_one("#workloads", DataTable)
        assert column(workloads, 2) == ["llama-70b", "finetune-7", "train-big"]
        assert cells(workloads, 1)[6] == "N/A"  # a job without a model label
        gpus = screen.query_one("#gpus", DataTable)
        assert gpus.row_count == 14 and gpus.border_title == "GPUs (14)"
        await select_row(app, pilot, "workloads", 1)
        await select_row(app, pilot, "gpus", 9)
    assert app.calls == [("workload", "team-a", "Job", "finetune-7"), ("node", "h100-node-02")]


async def test_tenant_detail_unknown_tenant_reports_404() -> None:
    app = HarnessApp(lambda: TenantDetailScreen("nobody"))
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        assert app.errors and app.errors[0].status == 404
        assert "Loading" in static_text(app, "#header").plain


# -- workload detail ---------------------------------------------------------------------------


async def test_workload_detail_revisions_pods_events() -> None:
    app = HarnessApp(lambda: WorkloadDetailScreen("team-a", "Deployment", "llama-70b"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        screen = app.screen
        header = static_text(app, "#header").plain
        assert "Degraded" in header and NO_NODE_FITS in header  # why a replica is missing
        assert "team-a-queue" in header and "replicas 2/3" in header
        assert not screen.query_one("#canary").display  # a Deployment has no traffic split
        revisions = screen.query_one("#revisions", DataTable)
        assert column(revisions, 0) == ["4", "3", "2"]
        assert column(revisions, 1)[1] == "<none>"
        assert column(revisions, 2) == ["2h", "3d", "9d"]  # ages from the app's frozen clock
        assert column(revisions, 1)[0] == "bump to llama 4.1 [canary]"  # literal brackets
        pods = screen.query_one("#pods", DataTable)
        assert cells(pods, 2)[1:4] == ["N/A", "Pending", "no"]
        events = screen.query_one("#events", DataTable)
        assert column(events, 1) == ["BackOff", "ScalingReplicaSet"]  # newest first
        warning = events.get_row_at(0)[0]
        assert warning.plain == "Warning" and "yellow" in str(warning.style)
        await select_row(app, pilot, "pods", 1)
        await select_row(app, pilot, "pods", 2)  # unscheduled: nothing to open
    assert app.calls == [("node", "h100-node-02")]


async def test_workload_detail_canary_and_control_characters() -> None:
    app = HarnessApp(lambda: WorkloadDetailScreen("serving", "InferenceService", "chat"))
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        canary = static_text(app, "#canary").plain
        assert "chat-predictor-00003" in canary and "20%" in canary and "80%" in canary
        assert app.screen.query_one("#canary").display
    app = HarnessApp(lambda: WorkloadDetailScreen("team-b", "Deployment", HOSTILE_POD))
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        title = app.screen.query_one("#header")._border_title
        assert title is not None and title.plain == "Deployment team-b/x[bold]y"
        header = static_text(app, "#header").plain
        assert "[31mred?" in header and "\x1b" not in header


# -- node detail -------------------------------------------------------------------------------


async def test_node_detail_gpus_with_history() -> None:
    app = HarnessApp(lambda: NodeDetailScreen("h100-node-02"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        facts = static_text(app, "#header").plain
        assert "6 allocated of 8 allocatable" in facts and "XID GPUs 1" in facts
        gpus = app.screen.query_one("#gpus", DataTable)
        assert gpus.row_count == 8
        gpu1 = cells(gpus, 1)
        assert fmt.SPARK_GAP in gpu1[2]  # unknown samples are gaps, not zeros
        assert cells(gpus, 2)[6] == "79"
        gpu5 = cells(gpus, 5)
        assert [gpu5[1], gpu5[4], gpu5[5], gpu5[6]] == ["N/A"] * 4
        assert cells(gpus, 4)[0] == "gpu4 idle"
        assert cells(gpus, 7)[8] == "free"
        await select_row(app, pilot, "gpus", 0)
        await select_row(app, pilot, "gpus", 7)  # a free GPU: nothing to open
    assert app.calls == [("workload", "team-a", "Deployment", "llama-70b")]


async def test_node_with_no_telemetry_and_not_ready() -> None:
    app = HarnessApp(lambda: NodeDetailScreen("a100-node-01"))
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        facts = static_text(app, "#header").plain
        assert "NotReady" in facts and "cordoned" in facts
        assert "util N/A" in facts and "power N/A" in facts


# -- help and navigation -----------------------------------------------------------------------


async def test_help_lists_keys_and_commands_and_closes() -> None:
    app = HarnessApp(OverviewScreen)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        app.push_screen(HelpScreen())
        await pilot.pause()
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        groups = dict(help_screen.groups())
        assert ("r", "Refresh") in groups["Overview (this screen)"]
        assert ("esc", "Back") in groups["Everywhere"]
        assert (":workloads [tenant]", "workloads, of one tenant if given") in groups[
            "Command line (:, tab completes)"
        ]
        assert ("w", "Workloads") in groups["Tenant detail"]
        assert ("/", "Filter") in groups["Lists"]
        assert ("f", "Full text") in groups["Tables and lists"]
        assert ("^p", "Command palette") in groups["Everywhere"]
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, OverviewScreen)


async def test_drill_down_chain_in_the_real_app() -> None:
    from opsconsole.app import OpsConsoleApp
    from opsconsole.settings import ConsoleSettings

    fake = FleetBackend(detail_fleet())
    app = OpsConsoleApp(
        ConsoleSettings(
            backend="http://fake", operator="tester", token=fake.token, refresh_interval=3600
        ),
        backend_url="http://fake",
        clock=lambda: NOW,
        transport=fake.transport(),
    )
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(100):
            await pilot.pause(0.02)
            if isinstance(app.screen, OverviewScreen) and app.screen.data is not None:
                break
        table = app.screen.query_one("#tenants", DataTable)
        table.focus()
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, TenantDetailScreen)
        assert app.screen.tenant_name == "team-a"
        await pilot.pause(0.2)
        app.screen.query_one("#workloads", DataTable).focus()
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, WorkloadDetailScreen)
        await pilot.pause(0.2)
        app.screen.query_one("#pods", DataTable).focus()
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, NodeDetailScreen)
        assert app.screen.node_name == "h100-node-01"
        await pilot.press("escape", "escape", "escape")
        await pilot.pause(0.1)
        assert isinstance(app.screen, OverviewScreen)


# -- formatting --------------------------------------------------------------------------------


def test_format_unknown_values_are_na_never_zero() -> None:
    for text in (
        fmt.percent(None),
        fmt.mib_as_gib(None),
        fmt.watts(None),
        fmt.celsius(None),
        fmt.xid(None),
        fmt.age(None),
        fmt.text(None),
        fmt.percent(float("nan")),
    ):
        assert text.plain == "N/A" and text.style == "dim"
    assert fmt.memory(None, 81920).plain == "N/A/80.0 GiB"


def test_format_values() -> None:
    assert fmt.percent(87.4).plain == "87%"
    assert fmt.fraction_percent(0.5).plain == "50%"
    assert fmt.mib_as_gib(40960).plain == "40.0 GiB"
    assert fmt.watts(312.4).plain == "312 W" and fmt.watts(23_300).plain == "23.3 kW"
    assert fmt.celsius(91).style == "bold red" and fmt.celsius(60).style == ""
    assert fmt.xid(0).plain == "-" and fmt.xid(79).style == "bold red"
    assert [fmt.age_str(s) for s in (5, 180, 7200, 90000, 30 * 86400)] == [
        "5s",
        "3m",
        "2h",
        "1d1h",
        "30d",
    ]
    assert fmt.age_str(datetime.fromtimestamp(NOW - 7200, UTC), now=NOW) == "2h"
    assert fmt.age_str(datetime.fromtimestamp(NOW + 60, UTC), now=NOW) == "0s"  # clock skew
    assert fmt.model_name("NVIDIA-H100-80GB-HBM3").plain == "H100-80GB-HBM3"
    assert fmt.status("Degraded").style == "bold red"
    assert fmt.status("Running").style == "green"
    assert fmt.status(HOSTILE).plain == HOSTILE  # unknown statuses stay literal


def test_quota_bar_shows_borrowed_and_over_quota() -> None:
    within = fmt.bar(4, 8, 8)
    assert within.plain == "████░░░░"
    borrowed = fmt.bar(10, 8, 10, borrowed=2)
    assert borrowed.plain == "████████▓▓"  # borrowing is its own character, not just colour
    over = fmt.bar(12, 8, 12, borrowed=2)
    assert over.plain.count(fmt.BAR_BORROWED) == 2
    assert any(span.style == "bold red" for span in over.spans)  # beyond quota and borrowing
    pending = fmt.bar(8, 8, 10, pending=2)
    assert fmt.BAR_PENDING in pending.plain
    assert fmt.bar(1, 100, 10).plain.startswith(fmt.BAR_USED)  # one GPU is still visible
    assert fmt.bar(None, 8, 5).plain == "N/A  "
    assert len(fmt.bar(3, 0, 7).plain) == 7
    usage = fmt.usage_bar(10, 8, 6, borrowed=2, pending=1).plain
    assert usage.endswith("10/8 +2 borrowed 1 pending")


def test_sparkline_gaps_and_scale() -> None:
    line = fmt.sparkline([0.0, None, 50.0, 100.0], 6)
    assert line.plain == "  ▁·▅█"
    assert len(fmt.sparkline([10.0] * 100, 12).plain) == 12
    assert fmt.sparkline([], 3).plain == "   "
