"""Holding the screen's updates for a moment, so that a change and its answer share one frame.

Textual draws at most ``TEXTUAL_FPS`` frames a second (60). After an idle spell its first frame
comes at once, but its timer then skips a period: the second frame comes one to two periods
(17–33 ms) after the first. A filter keystroke drew its echo (and an emptied table) at once, so
the filtered rows, which arrive about 10 ms later, waited for that second frame: half of the
keystroke's latency was this wait, and the frame of placeholder rows in between was sent to the
terminal for nothing. Held until the rows arrive, the echo and the rows are drawn in one frame.

The hold is Textual's own ``App.batch_update``, entered and left at two different moments, and
it never outlasts ``limit``: a slow backend delays the echo by at most that, never freezes it.
"""

from __future__ import annotations

from contextlib import ExitStack, suppress
from typing import Any

from textual.app import App, ScreenStackError
from textual.timer import Timer


class FrameHold:
    """Suspends ``app``'s screen updates from ``hold()`` until ``release()``, at most ``limit``
    seconds."""

    def __init__(self, app: App[Any], limit: float) -> None:
        self.app = app
        self.limit = limit
        self._batch: ExitStack | None = None
        self._deadline: Timer | None = None

    def hold(self) -> None:
        """Hold the updates (a hold in progress keeps its deadline: the screen is never held
        longer than ``limit`` however many changes come meanwhile)."""
        if self._batch is not None:
            return
        batch = ExitStack()
        batch.enter_context(self.app.batch_update())
        self._batch = batch
        # On the app, not on a widget: a widget's timers stop with it, and this one must run.
        self._deadline = self.app.set_timer(self.limit, self.release, name="frame-hold")

    def release(self) -> None:
        """Let the held updates be drawn (now, not at the next update period)."""
        batch, self._batch = self._batch, None
        if batch is None:
            return
        if self._deadline is not None:
            self._deadline.stop()
            self._deadline = None
        batch.close()
        # What changed meanwhile is marked; the screen looks for it when it next goes idle.
        with suppress(ScreenStackError):  # the app is closing
            self.app.screen.check_idle()
