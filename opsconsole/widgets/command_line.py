"""The ``:`` command line, k9s style: type a command, Tab completes, Enter runs, Esc closes.

Completion of tenant and node names asks the backend (``app.lookup_names``) in a worker, so a
slow backend never freezes typing; a failed lookup just completes nothing.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from opsconsole.commands import complete
from opsconsole.shell import shell
from opsconsole.text import literal
from opsconsole.widgets.plain_input import PlainInput

MAX_HINTS = 12


class CommandInput(PlainInput):
    """The input line itself; Tab and Esc belong to the command line, not to focus moves."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "complete", "Complete"),
        Binding("escape", "close", "Close"),
    ]

    def action_complete(self) -> None:
        parent = self.parent
        if isinstance(parent, CommandLine):
            parent.complete_line()

    def action_close(self) -> None:
        parent = self.parent
        if isinstance(parent, CommandLine):
            parent.close()


class CommandLine(Vertical):
    """Hidden until ``open()``; posts ``CommandLine.Submitted`` with the typed line."""

    DEFAULT_CSS = """
    CommandLine {
        height: auto;
        display: none;
    }
    CommandLine.-open {
        display: block;
    }
    CommandLine > #command-hint {
        height: auto;
        max-height: 2;
        color: $text-muted;
        padding: 0 1;
    }
    CommandLine > CommandInput, CommandLine > CommandInput:focus {
        border: none;
        height: 1;
        padding: 0 1;
        background: $boost;
    }
    """

    class Submitted(Message):
        def __init__(self, line: str) -> None:
            super().__init__()
            self.line = line

    def compose(self) -> ComposeResult:
        yield Static(id="command-hint")
        yield CommandInput(placeholder=":command  (Tab completes, Esc closes)", id="command-input")

    @property
    def input(self) -> CommandInput:
        return self.query_one(CommandInput)

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def open(self, text: str = "") -> None:
        self.add_class("-open")
        self.input.value = text
        self.input.cursor_position = len(text)
        self.show_hint([])
        self.input.focus()

    def close(self) -> None:
        self.remove_class("-open")
        self.input.value = ""
        self.screen.set_focus(None)
        self.screen.focus_next()

    def show_hint(self, candidates: list[str]) -> None:
        hint = Text(no_wrap=False, end="")
        for i, name in enumerate(candidates[:MAX_HINTS]):
            if i:
                hint.append("  ")
            hint.append_text(literal(name))
        if len(candidates) > MAX_HINTS:
            hint.append(f"  … {len(candidates) - MAX_HINTS} more")
        self.query_one("#command-hint", Static).update(hint)

    @work(exclusive=True, exit_on_error=False, group="command-complete")
    async def complete_line(self) -> None:
        try:
            result = await complete(self.input.value, shell(self.app).lookup_names)
        except Exception:  # the backend may be down: complete nothing, say nothing
            return
        self.input.value = result.line
        self.input.cursor_position = len(result.line)
        self.show_hint(result.candidates if len(result.candidates) > 1 else [])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        line = event.value.strip()
        self.close()
        if line:
            self.post_message(self.Submitted(line))
