"""What the console's screens and widgets may ask of the app they run in.

Screens never import the app (the app imports them); they reach it through ``shell(self.app)``, typed
as ``ConsoleShell``. ``OpsConsoleApp`` implements it (the type checker holds it to that), and a
test harness can implement it to run one screen on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

from textual.app import App
from textual.screen import Screen

from opsconsole.client import BackendClient, BackendError
from opsconsole.connection import ConnectionState
from opsconsole.settings import ConsoleSettings


class ConsoleShell(Protocol):
    """The backend, the settings and clock, the connection's health, and navigation."""

    @property
    def client(self) -> BackendClient: ...

    @property
    def settings(self) -> ConsoleSettings: ...

    @property
    def clock(self) -> Callable[[], float]:
        """The app's clock (frozen in tests and screenshots)."""
        ...

    @property
    def connection(self) -> ConnectionState: ...

    def report_backend_ok(self) -> None:
        """A good answer arrived."""
        ...

    def report_backend_error(self, error: BackendError) -> None:
        """A request failed; the shell decides between a notification and the banner."""
        ...

    def action_show_tenant(self, name: str) -> None: ...

    def action_show_workload(self, namespace: str, kind: str, name: str) -> None: ...

    def action_show_node(self, name: str) -> None: ...

    def run_command_line(self, line: str) -> None:
        """Run ``:name [arg]`` as if typed on the command line."""
        ...

    async def lookup_names(self, kind: str, prefix: str) -> list[str]:
        """Tenant or node names containing ``prefix``, for completion."""
        ...


def on_top(screen: Screen[Any]) -> bool:
    """Whether ``screen`` is the one the operator sees. Textual's ``Screen.is_current`` also
    holds for the screen underneath (it may show through), so a refresh timer guarded by it
    keeps redrawing a hidden screen, and each redraw repaints the visible one in full."""
    return screen.app.screen is screen


def shell(app: App[Any]) -> ConsoleShell:
    """``app`` as the console's shell: every console screen, widget and palette runs in one."""
    return cast(ConsoleShell, app)
