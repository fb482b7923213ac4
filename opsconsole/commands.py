"""The console's commands: the ``:`` command line's parser and completion, and the palette.

One table of commands, made from the views and the app's own commands (help, quit), serves both
the k9s-style command line (``:workloads team-a``, with Tab completing command names and
tenant/node names asked from the backend) and Textual's command palette (ctrl+p), which also
offers "go to tenant X".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from rich.text import Text
from textual.command import DiscoveryHit, Hit, Hits, Provider

from opsconsole.completion import NameLookup, complete_name, longest_prefix
from opsconsole.shell import shell
from opsconsole.text import clean, literal
from opsconsole.views import VIEWS, View


@dataclass(frozen=True)
class CommandSpec:
    """A command: its name, what it does, and what its argument names (if it takes one)."""

    name: str
    help: str
    arg: str | None = None  # "tenant" | "node": what the argument completes from
    arg_required: bool = False
    aliases: tuple[str, ...] = ()
    view: View | None = None  # the view it opens; None: one of the app's own commands


def _view_command(view: View) -> CommandSpec:
    return CommandSpec(view.name, view.help, view.arg, view.drill_down, view.aliases, view)


COMMANDS: tuple[CommandSpec, ...] = (
    *(_view_command(view) for view in VIEWS if view.open is not None),
    CommandSpec("help", "every key", aliases=("?",)),
    CommandSpec("quit", "leave the console", aliases=("q", "q!")),
)


class CommandError(ValueError):
    """A command line that cannot run; the message is shown to the operator."""


@dataclass(frozen=True)
class ParsedCommand:
    spec: CommandSpec
    arg: str = ""

    @property
    def name(self) -> str:
        return self.spec.name


def _lookup_spec(word: str) -> CommandSpec:
    """The command a word names: exactly, by alias, or by a prefix only one command has."""
    word = word.lower()
    for spec in COMMANDS:
        if word == spec.name or word in spec.aliases:
            return spec
    matches = [spec for spec in COMMANDS if spec.name.startswith(word)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(spec.name for spec in matches)
        raise CommandError(f"ambiguous command {clean(word)!r}: {names}")
    raise CommandError(f"unknown command {clean(word)!r} (try :help)")


def parse(line: str) -> ParsedCommand:
    """Parse ``:name [argument]``; raises ``CommandError`` with a message for the operator."""
    words = line.strip().removeprefix(":").split(maxsplit=1)
    if not words:
        raise CommandError("empty command")
    spec = _lookup_spec(words[0])
    arg = words[1].strip() if len(words) > 1 else ""
    if arg and spec.arg is None:
        raise CommandError(f":{spec.name} takes no argument")
    if not arg and spec.arg_required:
        raise CommandError(f":{spec.name} needs a {spec.arg} name")
    return ParsedCommand(spec, arg)


@dataclass(frozen=True)
class Completion:
    """The completed line and the candidates that remain (shown as a hint)."""

    line: str
    candidates: list[str]


async def complete(line: str, lookup: NameLookup) -> Completion:
    """Tab completion of a command line: the command name first, then its argument."""
    text = line.lstrip().removeprefix(":")
    if " " not in text:
        names = [spec.name for spec in COMMANDS if spec.name.startswith(text.lower())]
        done, unique = longest_prefix(text, names)
        if unique:
            takes_arg = next(spec for spec in COMMANDS if spec.name == done).arg is not None
            done += " " if takes_arg else ""
        return Completion(done, names)
    word, _, prefix = text.partition(" ")
    try:
        spec = _lookup_spec(word)
    except CommandError:
        return Completion(text, [])
    if spec.arg is None:
        return Completion(text, [])
    prefix = prefix.lstrip()
    done, names = await complete_name(spec.arg, prefix, lookup)
    return Completion(f"{spec.name} {done}", names)


class ConsoleCommands(Provider):
    """The command palette's entries: every command, and "go to tenant X" for matching tenants."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        run = shell(self.app).run_command_line
        entries: list[tuple[str, str, Callable[[], object]]] = []
        for spec in COMMANDS:
            if spec.arg_required:
                continue
            title = f"go to {spec.name}" if spec.view is not None else spec.name
            entries.append((title, spec.help, partial(run, spec.name)))
        return entries

    async def discover(self) -> Hits:
        for title, help_text, command in self._commands():
            yield DiscoveryHit(title, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, command in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), command, help=help_text)
        words = query.split()
        if not words:
            return
        console = shell(self.app)
        try:
            names = await console.lookup_names("tenant", words[-1])
        except Exception:  # backend down: the palette still offers the commands
            return
        for name in names[:20]:
            # The name is untrusted: shown literally, never through the markup-parsing highlight.
            display = Text("go to tenant ") + literal(name, style="bold")
            yield Hit(
                0.5,
                display,
                partial(console.action_show_tenant, name),
                text=f"go to tenant {clean(name)}",
                help="tenant detail",
            )
