"""A text input that keeps only what the screen can show.

What is typed or pasted goes through the console's sanitizer (``opsconsole.text.clean``): a reason
pasted from a ticket or a chat cannot carry a bidi override, a zero-width joiner or a terminal
escape into the dialog that shows it, nor into the audit log that records it.
"""

from __future__ import annotations

from textual.widgets import Input

from opsconsole.text import clean


class PlainInput(Input):
    """An ``Input`` whose insertions (keys, pastes) are cleaned first."""

    def replace(self, text: str, start: int, end: int) -> None:
        super().replace(clean(text), start, end)
