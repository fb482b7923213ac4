"""Every key, grouped: the app's, the screen underneath's, each screen's, tables', and ``:`` commands.

Built from the ``BINDINGS`` themselves, the views and the command table, so the help cannot drift
from what the keys really do.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from opsconsole.commands import COMMANDS
from opsconsole.screens.refreshing import PanelTable
from opsconsole.text import clean
from opsconsole.views import VIEWS


def collect_bindings(cls: type[DOMNode], *, own_only: bool = False) -> list[Binding]:
    """The bindings a class declares, its bases' included, each key once.

    Subclass bindings come first. ``own_only`` keeps only what the console's own classes declare (a screen's group then does
    not repeat Textual's tab / shift+tab, which the "Everywhere" group lists).
    """
    seen: set[str] = set()
    out: list[Binding] = []
    for klass in cls.__mro__:  # the subclass's own description of a key wins
        if own_only and not klass.__module__.startswith("opsconsole"):
            continue
        declared: Iterable[BindingType] = klass.__dict__.get("BINDINGS", ())
        for binding in Binding.make_bindings(declared):
            if binding.key in seen or not binding.description:
                continue
            seen.add(binding.key)
            out.append(binding)
    return out


def command_rows() -> list[tuple[str, str]]:
    rows = []
    for spec in COMMANDS:
        usage = f":{spec.name}"
        if spec.arg:
            usage += f" <{spec.arg}>" if spec.arg_required else f" [{spec.arg}]"
        aliases = f" (also :{', :'.join(spec.aliases)})" if spec.aliases else ""
        rows.append((usage, spec.help + aliases))
    return rows


def view_groups() -> list[tuple[str, type[Screen[Any]]]]:
    """(title, screen class) of each help group of screen keys, in the views' order, each once."""
    groups: dict[type[Screen[Any]], str] = {}
    for view in VIEWS:
        title, cls = view.keys_group or (view.title, view.screen)
        groups.setdefault(cls, title)
    return [(title, cls) for cls, title in groups.items()]


def view_title(cls: type[Screen[Any]]) -> str:
    """The title of the view whose screen ``cls`` is (its class name for any other screen)."""
    titles = {view.screen: view.title for view in VIEWS}
    return titles.get(cls) or cls.__name__.removesuffix("Screen")


class HelpScreen(ModalScreen[None]):
    """``?`` or ``:help``: every key; ``escape``, ``q`` or ``?`` closes it."""

    CSS_PATH = Path(__file__).with_name("help.tcss")
    # No ClassVar: Textual declares it on Screen as an instance variable.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body") as body:
            body.border_title = "Keys"
            body.border_subtitle = "esc closes"
            for title, rows in self.groups():
                group = Static(_table(rows), classes="help-group")
                group.border_title = title
                yield group

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def groups(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """(title, [(key, what it does)]) for each group, the screen underneath first."""
        below = self._screen_below()
        everywhere = self._rows(type(self.app)) + self._rows(Screen)
        if self.app.ENABLE_COMMAND_PALETTE:
            palette = Binding(self.app.COMMAND_PALETTE_BINDING, "command_palette", "Palette")
            everywhere.append((self.app.get_key_display(palette), "Command palette"))
        out = [("Everywhere", everywhere)]
        groups: list[tuple[str, type[DOMNode]]] = []
        if below is not None and type(below).__module__.startswith("opsconsole"):
            groups.append((f"{view_title(type(below))} (this screen)", type(below)))
        groups += [(t, cls) for t, cls in view_groups() if below is None or cls is not type(below)]
        for title, cls in groups:
            rows = self._rows(cls, own_only=True)
            if rows:
                out.append((clean(title), rows))
        out.append(("Tables and lists", self._rows(PanelTable)))
        out.append(("Command line (:, tab completes)", command_rows()))
        return out

    def _screen_below(self) -> Screen[Any] | None:
        stack = self.app.screen_stack
        return stack[-2] if len(stack) > 1 and stack[-1] is self else None

    def _rows(self, cls: type[DOMNode], *, own_only: bool = False) -> list[tuple[str, str]]:
        return [
            (self.app.get_key_display(b), b.description)
            for b in collect_bindings(cls, own_only=own_only)
        ]

    def action_close(self) -> None:
        self.dismiss(None)


def _table(rows: list[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True, min_width=8)
    table.add_column()
    for key, what in rows:
        table.add_row(Text(key), Text(what))
    return table
