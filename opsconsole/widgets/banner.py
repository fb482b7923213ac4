"""The connection banner: says what failed and how stale the data on screen is.

Hidden while all is well; otherwise it reads e.g. "backend unreachable — showing data from 42 s
ago — retrying in 4 s", or "cluster data is not current: …" when the backend answers but its
cluster does not, redrawn every second. Its colour says how bad: error, warning, or info (the
embedded cluster still starting).
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
    ConnectionBanner.-warning {
        background: $warning;
        color: $text;
    }
    ConnectionBanner.-info {
        background: $primary;
        color: $text;
    }
    """

    _shown: str | None = None
    _lines = (0, 0)  # the banner's width and the shown text's lines at that width

    def on_mount(self) -> None:
        self.set_interval(1.0, self.update_state)
        self.update_state()

    def message(self) -> str | None:
        return shell(self.app).connection.banner()

    def update_state(self) -> None:
        """Show or hide, and redraw when the text changes, counting ages included. Re-laid out
        only when the text takes another number of lines: a layout pass repaints every table's
        scrollbars, and a counting age changes every second while the backend is away."""
        notice = shell(self.app).connection.notice()
        message = None if notice is None else notice.text
        self.set_class(message is not None, "-visible")
        for level in ("warning", "info"):
            self.set_class(notice is not None and notice.level == level, f"-{level}")
        if message != self._shown:
            self.refresh()
            size = self.size
            lines = (size.width, self.get_content_height(size, size, size.width) if message else 0)
            if not size or lines != self._lines:
                self.refresh(layout=True)
            self._lines = lines
        self._shown = message

    def render(self) -> Text:
        # The error text may quote the server's answer: literal, never markup.
        lines = (self.message() or "").split("\n")
        text = Text("\n").join(literal(f" ⚠ {line}") for line in lines)
        text.no_wrap = False  # wraps on a narrow terminal rather than hiding the retry time
        return text
