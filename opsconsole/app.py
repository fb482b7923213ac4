"""The console application: navigation, the connection's health, and the chrome of every screen.

Screens live on a stack whose root is the overview: ``1``..``4`` and ``:commands`` go back to the
root and open a list on top of it, enter drills down (pushes), esc goes back (pops). Every screen
gets the same chrome — connection banner on top, command line, status bar and footer at the
bottom — added as it is shown, so screens only draw their own content. The keys, ``:`` commands,
palette entries and help groups of the views all come from ``opsconsole.views``; screens reach the
app through ``opsconsole.shell``.

The backend may be down, slow or wrong at any time. Nothing here raises on that: errors arrive as
``BackendError`` through ``report_backend_error``, the banner says what failed and how old the
data on screen is, and a health worker reconnects with exponential backoff. Each time it
(re)connects it asks the backend who the operator is, for the status bar and for the actions
screens offer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer

from opsconsole.client import (
    BackendClient,
    BackendError,
    BackendUnavailable,
    NotAuthenticated,
    NotReady,
)
from opsconsole.commands import CommandError, ConsoleCommands, parse
from opsconsole.connection import ConnectionState, Link, Startup
from opsconsole.screens.help import HelpScreen
from opsconsole.screens.listing import ListScreen
from opsconsole.screens.node_detail import NodeDetailScreen
from opsconsole.screens.refreshing import RefreshingScreen
from opsconsole.screens.tenant_detail import TenantDetailScreen
from opsconsole.screens.workload_detail import WorkloadDetailScreen
from opsconsole.settings import ConsoleSettings
from opsconsole.shell import ConsoleShell
from opsconsole.themes import DARK, LIGHT, register_themes
from opsconsole.views import ROOT, VIEWS, View, view_named
from opsconsole.widgets.banner import ConnectionBanner
from opsconsole.widgets.command_line import CommandLine
from opsconsole.widgets.status_bar import StatusBar
from opsconsole.widgets.virtual_table import VirtualTable

NAME_LOOKUP_LIMIT = 200
ROOT_DEPTH = 2  # Textual's default screen + the overview


class BottomChrome(Vertical):
    """Command line, status bar and footer, docked together so they never overlap."""

    def on_mount(self) -> None:
        # The footer lists keys when the screen's bindings change; a screen that settled its
        # focus before the chrome arrived would otherwise show an empty footer.
        self.call_after_refresh(self.screen.refresh_bindings)


class OpsConsoleApp(App[None]):
    """The operator console."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "opsconsole"
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    healthy_poll = 5.0  # seconds between /info polls while the backend answers
    backoff_first = 1.0  # first reconnect delay; doubles on every failure
    backoff_max = 30.0
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("colon", "command_line", "Cmd", key_display=":"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("escape", "back", "Back"),
        *(
            Binding(view.key, f"goto('{view.name}')", view.title, show=False)
            for view in VIEWS
            if view.key
        ),
        Binding("r", "refresh", "Refresh", show=False),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
        Binding("q", "quit_root", "Quit"),
    ]

    def __init__(
        self,
        settings: ConsoleSettings,
        *,
        backend_url: str,
        sandbox: bool = False,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        startup: Callable[[], Startup] | None = None,
    ) -> None:
        """``startup``: the embedded cluster's progress, when the console started one (its
        token is used once made). Raises ``TransportRefused`` for an unusable ``ca_file``."""
        super().__init__()
        self.settings = settings
        self.clock = clock
        self.client = BackendClient(
            backend_url,
            timeout=settings.request_timeout,
            transport=transport,
            operator=settings.operator,
            ssh_client=os.environ.get("SSH_CONNECTION"),  # where the operator connects from
            token=settings.token,
            ca_file=settings.ca_file,
            read_only=settings.read_only,
        )
        self._identity_due = True  # ask /whoami at the next good /info
        self.connection = ConnectionState(
            backend_url=backend_url,
            operator=settings.operator,
            sandbox=sandbox,
            clock=clock,
            startup=startup,
            read_only=settings.read_only,
        )
        self._wake_health = asyncio.Event()
        register_themes(self)
        self.theme = settings.theme if settings.theme in self.available_themes else DARK.name

    # -- start and stop ----------------------------------------------------------------------

    def on_mount(self) -> None:
        self.screen_change_signal.subscribe(self, self._add_chrome)
        self.push_screen(self._open(ROOT))
        self._health_poll()

    async def on_unmount(self) -> None:
        await self.client.aclose()

    def _add_chrome(self, screen: Screen[object]) -> None:
        """Give a full screen the banner, command line, status bar and footer (once)."""
        if isinstance(screen, ModalScreen) or screen.query(BottomChrome):
            return
        screen.mount(ConnectionBanner())
        screen.mount(BottomChrome(CommandLine(), StatusBar(), Footer()))

    # -- the connection ----------------------------------------------------------------------

    @work(exclusive=True, exit_on_error=False, group="health")
    async def _health_poll(self) -> None:
        """Poll ``/info``: freshness for the status bar, and reconnects with backoff."""
        while True:
            progress = self.connection.starting()
            if progress is not None and progress.token and not self.client.has_token:
                self.client.use_token(progress.token)
            try:
                self.connection.info = await self.client.info()
                if self._identity_due:
                    await self._ask_identity()
            except Exception as error:  # BackendError, or a bug: neither may stop the poll
                failure = error if isinstance(error, BackendError) else BackendError(str(error))
                delay = min(self.backoff_max, self.backoff_first * 2**self.connection.failures)
                if self.connection.starting() is None:  # a backend on its way: no backoff
                    self.connection.failures += 1
                self.connection.next_retry = self.clock() + delay
                self._identity_due = True  # it may be another backend, or another token, next
                self.report_backend_error(failure, from_health=True)
            else:
                if self.connection.health_clears():
                    recovered = self.connection.error is not None or self._synced_now()
                    self.report_backend_ok()
                    if recovered:
                        self.action_refresh()
                delay = self.healthy_poll
            self._wake_health.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_health.wait(), delay)

    def _synced_now(self) -> bool:
        """Whether ``/info`` says the fleet data is there while a fleet answer said it was not
        (the screen asks again at once)."""
        info = self.connection.info
        fresh = info is not None and info.freshness.synced and info.freshness.sync is None
        return self.connection.not_synced is not None and fresh

    async def _ask_identity(self) -> None:
        """Who the backend takes the operator for: the status bar shows it, and screens offer
        only the changes it allows (they redraw their keys now)."""
        identity = await self.client.whoami()
        self._identity_due = False
        if identity != self.connection.identity:
            self.connection.identity = identity
            self.screen.refresh_bindings()
            self._redraw_chrome()

    def report_backend_ok(self) -> None:
        """A good answer arrived: clear the banner, count the data's age from now. While the
        backend had no fleet data, ask ``/info`` at once whether it has now."""
        self.connection.ok()
        if self.connection.sync() is not None:
            self._wake_health.set()
        self._redraw_chrome()

    def report_backend_error(self, error: BackendError, *, from_health: bool = False) -> None:
        """Show a failure. A 4xx answer to a request is the operator's business (a
        notification: "tenant x not found"); anything else, any failure of ``/info`` (a wrong
        URL answers 404), and a refused token mean the data may be stale (the banner). Never
        raises."""
        try:
            if isinstance(error, NotReady):  # no error of the link: say why there is no data
                self.connection.not_ready(error.sync)
                self._redraw_chrome()
                return
            status = error.status
            unauthenticated = isinstance(error, NotAuthenticated)
            if status is not None and 400 <= status < 500 and not (from_health or unauthenticated):
                self.notify(error.message, severity="error", markup=False)
                return
            was_ok = self.connection.error is None
            link = Link.ERROR
            if isinstance(error, BackendUnavailable):
                link = Link.UNREACHABLE
            elif unauthenticated:
                link = Link.UNAUTHENTICATED
            self.connection.failed(error.message, link, from_health=from_health)
            if was_ok and not from_health:
                self._wake_health.set()  # start the backoff and the countdown now
            self._redraw_chrome()
        except Exception:  # the error path itself must never take the console down
            pass

    def _redraw_chrome(self) -> None:
        if not self.screen_stack:  # a table's answer that lands while the console exits
            return
        for banner in self.screen.query(ConnectionBanner):
            banner.update_state()
        for bar in self.screen.query(StatusBar):
            bar.update_state()

    def on_virtual_table_loaded(self, _event: VirtualTable.Loaded) -> None:
        self.report_backend_ok()

    def on_virtual_table_load_failed(self, event: VirtualTable.LoadFailed) -> None:
        self.report_backend_error(event.error)

    # -- commands ----------------------------------------------------------------------------

    async def lookup_names(self, kind: str, prefix: str) -> list[str]:
        """Tenant or node names containing ``prefix`` (server-side), for completion."""
        q = prefix or None
        if kind == "tenant":
            tenants = await self.client.tenants(q=q, sort="name", limit=NAME_LOOKUP_LIMIT)
            return [tenant.name for tenant in tenants.items]
        if kind == "node":
            nodes = await self.client.nodes(q=q, sort="name", limit=NAME_LOOKUP_LIMIT)
            return [node.name for node in nodes.items]
        return []

    def on_command_line_submitted(self, event: CommandLine.Submitted) -> None:
        self.run_command_line(event.line)

    def run_command_line(self, line: str) -> None:
        """Run ``:name [arg]``; a mistake is a notification, never an exception."""
        try:
            command = parse(line)
        except CommandError as error:
            self.notify(str(error), severity="warning", markup=False)
            return
        view = command.spec.view
        if view is not None:
            self.open_view(view, command.arg)
        elif command.name == "help":
            self.action_help()
        elif command.name == "quit":
            self.exit()

    # -- navigation --------------------------------------------------------------------------

    def _pop_to_root(self) -> None:
        while len(self.screen_stack) > ROOT_DEPTH:
            self.pop_screen()

    @staticmethod
    def _open(view: View, arg: str = "") -> Screen[Any]:
        if view.open is None:
            raise ValueError(f"the {view.name} view opens only from another screen")
        return view.open(arg)

    def open_view(self, view: View, arg: str = "") -> None:
        """A top-level view replaces the one on top of the root; a drill-down goes on top."""
        if not view.drill_down:
            self._pop_to_root()
        if view is not ROOT:
            self.push_screen(self._open(view, arg))

    def action_goto(self, target: str, arg: str = "") -> None:
        """Open a top-level view (on top of the overview, which is the root)."""
        view = view_named(target)
        if view is None or view.open is None or view.drill_down:
            self.notify(f"no such view: {target}", severity="warning", markup=False)
            return
        self.open_view(view, arg)

    def action_show_tenant(self, name: str) -> None:
        self.push_screen(TenantDetailScreen(name))

    def action_show_workload(self, namespace: str, kind: str, name: str) -> None:
        self.push_screen(WorkloadDetailScreen(namespace, kind, name))

    def action_show_node(self, name: str) -> None:
        self.push_screen(NodeDetailScreen(name))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_back(self) -> None:
        """Esc: close the command line, else leave the current screen (never the root)."""
        for line in self.screen.query(CommandLine):
            if line.is_open:
                line.close()
                return
        if len(self.screen_stack) > ROOT_DEPTH:
            self.pop_screen()

    def action_command_line(self) -> None:
        for line in self.screen.query(CommandLine):
            line.open()

    def action_refresh(self) -> None:
        """``r`` everywhere: the screen's own refresh, where it has one."""
        screen = self.screen
        if isinstance(screen, (RefreshingScreen, ListScreen)):
            screen.action_refresh_now()

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT.name if self.current_theme.dark else DARK.name

    def action_quit_root(self) -> None:
        if len(self.screen_stack) <= ROOT_DEPTH:
            self.exit()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """``q`` quits only from the root screen; elsewhere it is not offered."""
        if action == "quit_root":
            return len(self.screen_stack) <= ROOT_DEPTH
        if action == "back":
            return len(self.screen_stack) > ROOT_DEPTH or any(
                line.is_open for line in self.screen.query(CommandLine)
            )
        return True


if TYPE_CHECKING:
    _app_is_a_shell: type[ConsoleShell] = OpsConsoleApp  # the type checker holds the app to it
