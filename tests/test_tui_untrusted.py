"""Text from the cluster is data: markup-looking names and escape sequences show as plain text."""

from __future__ import annotations

import re
from dataclasses import replace

from rich.text import Text

from backend.conventions import MODEL_LABEL, TENANT_LABEL
from opsconsole.screens.gpus import GpusScreen
from opsconsole.screens.tenant_detail import TenantDetailScreen
from opsconsole.screens.tenants import TenantsScreen
from opsconsole.screens.workloads import WorkloadsScreen
from opsconsole.text import clean, literal
from opsconsole.widgets.banner import ConnectionBanner
from opsconsole.widgets.command_line import CommandLine
from tests.support.backend import FleetBackend
from tests.support.console import make_app, screen_text, wait_for
from tests.support.fleets import generated_fleet

MARKUP_NAME = "x[bold]y"
LABEL = "v[/]w[/"
ESCAPED = "pod\x1b[31mred\x1b[0m\x07\x9b2J"


def hostile_backend() -> FleetBackend:
    """A fleet whose first tenant, workload and GPU carry markup and escape sequences."""
    fleet = generated_fleet(tenants=3, workloads=6, nodes=2)
    cluster = fleet.cluster
    cluster["namespaces"][("", "team-a")]["metadata"]["labels"][TENANT_LABEL] = MARKUP_NAME
    workload = cluster["deployments"].pop(("team-a", "model-00000"))
    workload["metadata"]["name"] = "[link=http://x]click[/link]"
    workload["metadata"]["labels"][MODEL_LABEL] = LABEL
    cluster["deployments"][("team-a", workload["metadata"]["name"])] = workload
    uuid, sample = next((u, s) for u, s in fleet.samples.items() if s.pod)
    fleet.samples[uuid] = replace(sample, pod=ESCAPED, namespace="team-a")
    return FleetBackend(fleet)


def test_clean_strips_every_control_character() -> None:
    assert clean(ESCAPED) == "pod[31mred[0m2J"
    assert clean("a\tb\nc\x00d\x7fe\x85f") == "a b cde f"
    assert clean("line1\n\n\tline2") == "line1 line2"
    assert clean("a\u200d" * 3 + "\u202eevil\u2066x\u2069\ufeff") == "aaaevilx"
    assert clean("é 日本 \u00a0 ok") == "é 日本 ok"
    assert clean(None) == "" and clean(42) == "42"
    assert literal("[bold]x[/]").plain == "[bold]x[/]"
    assert literal("[red]x", style="green").spans == [] and literal("y", "green").style == "green"
    assert isinstance(literal(LABEL), Text)


async def test_hostile_names_are_shown_literally_everywhere() -> None:
    fake = hostile_backend()
    app = make_app(fake)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, TenantsScreen))
        await wait_for(pilot, lambda: MARKUP_NAME in screen_text(app), "tenant name")

        await pilot.press("3")
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadsScreen))
        await wait_for(pilot, lambda: "[link=http://x]click" in screen_text(app), "workload")
        text = screen_text(app)
        assert LABEL in text and MARKUP_NAME in text

        await pilot.press("4")
        await wait_for(pilot, lambda: isinstance(app.screen, GpusScreen))
        await wait_for(pilot, lambda: "pod[31mred[0m2J" in screen_text(app), "pod")
        assert "\x1b" not in screen_text(app) and "\x07" not in screen_text(app)

        # The filter shows what was typed, literally, and sends it as data.
        await pilot.press("slash", *"[b")
        await wait_for(pilot, lambda: fake.last_params("/gpus").get("q") == "[b")
        await wait_for(pilot, lambda: "filter [b" in screen_text(app))
        await pilot.press("escape")

        # Completion hints and the palette show hostile names without styling them.
        await pilot.press("colon")
        app.screen.query_one(CommandLine).input.value = "workloads "
        await pilot.press("tab")
        await wait_for(pilot, lambda: MARKUP_NAME in screen_text(app), "hint")
        await pilot.press("escape", "ctrl+p", "x", "[")
        await wait_for(pilot, lambda: f"go to tenant {MARKUP_NAME}" in screen_text(app))
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TenantDetailScreen))
        await wait_for(pilot, lambda: MARKUP_NAME in screen_text(app), "detail title")
        assert app.is_running


async def test_hostile_server_messages_and_notifications() -> None:
    fake = hostile_backend()
    app = make_app(fake)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        app.run_command_line(f"tenant {MARKUP_NAME}[red")  # unknown: a 404 that names it
        await wait_for(pilot, lambda: 'y[red" not found' in screen_text(app), "404 toast")
        app.run_command_line("[/red]nope")
        await wait_for(pilot, lambda: "unknown command '[/red]nope'" in screen_text(app))

        fake.error_detail = "[bold]boom\x1b[2J[/"
        fake.mode = "error"
        app.action_refresh()
        await wait_for(pilot, lambda: app.screen.query_one(ConnectionBanner).has_class("-visible"))
        await wait_for(pilot, lambda: "[bold]boom[2J[/" in re.sub(r"\s+", " ", screen_text(app)))
        assert app.is_running
