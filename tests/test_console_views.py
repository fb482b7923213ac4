"""The views table is the one source of the console's keys, ``:`` commands, palette and help."""

from __future__ import annotations

from textual.binding import Binding

from opsconsole.app import OpsConsoleApp
from opsconsole.commands import COMMANDS, parse
from opsconsole.screens.help import command_rows, view_groups
from opsconsole.views import VIEWS


def test_every_view_with_a_key_is_bound_on_the_app() -> None:
    bindings = {b.key: b for b in Binding.make_bindings(OpsConsoleApp.BINDINGS)}
    for view in VIEWS:
        if view.key:
            binding = bindings[view.key]
            assert (binding.action, binding.description) == (f"goto('{view.name}')", view.title)
    assert [k for k in bindings if k.isdigit()] == ["1", "2", "3", "4", "5", "6", "7", "8"]


def test_every_view_that_opens_on_its_own_is_a_command() -> None:
    for view in VIEWS:
        if view.open is None:
            assert view.name not in {spec.name for spec in COMMANDS}
            continue
        command = parse(f"{view.name} x" if view.drill_down else view.name)
        assert command.spec.view is view
        assert (command.spec.arg, command.spec.arg_required) == (view.arg, view.drill_down)
    names = [spec.name for spec in COMMANDS]
    assert names[-2:] == ["help", "quit"]  # the app's own commands follow the views


def test_help_groups_and_command_rows_come_from_the_views() -> None:
    assert [title for title, _ in view_groups()] == [
        "Overview",
        "Lists",
        "Nodes",
        "GPUs",
        "Audit log",
        "Quota review",
        "Alerts",
        "Tenant detail",
        "Workload detail",
        "Node detail",
    ]
    rows = dict(command_rows())
    assert rows[":workloads [tenant]"] == "workloads, of one tenant if given"
    assert rows[":tenant <tenant>"] == "one tenant's detail"
    assert rows[":quota [tenant]"].startswith("every tenant's quota against its use")
    assert rows[":overview"] == "the fleet at a glance (also :home)"
    assert rows[":alerts"] == "firing, pending and recently resolved alerts"
