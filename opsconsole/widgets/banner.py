"""The connection banner: says what failed and how stale the data on screen is.

Hidden while the backend answers; while it does not, it reads e.g. "backend unreachable —
showing data from 42 s ago — retrying in 4 s", redrawn every second.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from opsconsole.shell import shell
from opsconsole.text import literal


class ConnectionBanner(Widget):
    """A one-line warning at the top of every screen, shown only while the link is down."""

    DEFAULT_CSS = """
    ConnectionBanner {
        height: auto;
        max-height: 3;
        background: $error;
        color: $text;
        text-style: bold;
        display: none;
    }
    ConnectionBanner.-visible {
        display: block;
    }
    """

    _shown: str | None = None

    def on_mount(self) -> None:
        self.set_interval(1.0, self.update_state)
        self.update_state()

    def message(self) -> str | None:
        return shell(self.app).connection.banner()

    def update_state(self) -> None:
        """Show or hide, and redraw the counting ages (re-laid out: the text may wrap)."""
        message = self.message()
        self.set_class(message is not None, "-visible")
        self.refresh(layout=message != self._shown)
        self._shown = message

    def render(self) -> Text:
        # The error text may quote the server's answer: literal, never markup.
        line = literal(f" ⚠ {self.message() or ''}")
        line.no_wrap = False  # wraps on a narrow terminal rather than hiding the retry time
        return line
