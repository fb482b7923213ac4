"""Helpers for the console's pilot tests: an app on the fake backend, one screen in a harness,
screen text, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from textual.app import App
from textual.binding import Binding, BindingType
from textual.pilot import Pilot
from textual.screen import Screen

from opsconsole.app import OpsConsoleApp
from opsconsole.client import BackendClient, BackendError
from opsconsole.connection import ConnectionState
from opsconsole.screens.node_detail import NodeDetailScreen
from opsconsole.screens.tenant_detail import TenantDetailScreen
from opsconsole.screens.workload_detail import WorkloadDetailScreen
from opsconsole.settings import ConsoleSettings
from opsconsole.themes import register_themes
from tests.support.backend import FleetBackend
from tests.support.detail_fleet import NOW, detail_fleet

START = 1_800_000_000.0  # a fixed clock: ages on screen are deterministic


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_app(
    fake: FleetBackend,
    *,
    clock: Callable[[], float] | None = None,
    timeout: float = 5.0,
    sandbox: bool = False,
    refresh_interval: float = 60.0,  # tests refresh explicitly; no timer noise
    read_only: bool = False,
    token: str | None = None,
) -> OpsConsoleApp:
    settings = ConsoleSettings(
        backend="http://fake-backend:8080",
        operator="alice",
        theme="opsconsole-dark",
        refresh_interval=refresh_interval,
        request_timeout=timeout,
        read_only=read_only,
        token=fake.token if token is None else token,  # "": none
    )
    return OpsConsoleApp(
        settings,
        backend_url="http://fake-backend:8080",
        sandbox=sandbox,
        clock=clock or FakeClock(),
        transport=fake.transport(),
    )


def screen_text(app: App[Any]) -> str:
    """The characters on the terminal right now, one line per row."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def record_notifications(app: App[Any], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The messages of the app's notifications from now on (they are still shown)."""
    messages: list[str] = []
    notify = app.notify

    def record(message: str, **kwargs: Any) -> None:
        messages.append(message)
        notify(message, **kwargs)

    monkeypatch.setattr(app, "notify", record)
    return messages


async def wait_for(pilot: Pilot[None], predicate: Callable[[], object], what: str = "") -> None:
    """Let the app run until ``predicate()`` holds; fails only when it never does (15 s, far
    beyond any expected latency: this is not a speed test)."""
    deadline = time.monotonic() + 15.0
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.02)


async def wait_for_focus(pilot: Pilot[None], widget_id: str) -> None:
    """Let the app run until the widget ``#widget_id`` has the focus: a key reaches its widget,
    bubbles up as a message and moves the focus through the app's queue, hops that a pilot's
    press does not wait for."""
    app = pilot.app

    def focused() -> bool:
        return app.focused is not None and app.focused.id == widget_id

    await wait_for(pilot, focused, f"#{widget_id} focused")


class HarnessApp(App[None]):
    """A minimal app with the shell's interface (client, clock, reports, drill-down actions).

    It records drill-downs instead of navigating unless ``navigate`` is set, so tests can assert
    what was asked for; screens are pushed like the shell does. The backend defaults to the real
    one over ``detail_fleet()``, and the clock is that fleet's ``NOW``.
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    def __init__(
        self,
        screen_factory: Callable[[], Screen[Any]],
        fake: FleetBackend | None = None,
        *,
        navigate: bool = False,
    ) -> None:
        super().__init__()
        self.fake = fake or FleetBackend(detail_fleet())
        self.client = BackendClient(
            "http://fake", transport=self.fake.transport(), timeout=1.0, token=self.fake.token
        )
        self.clock: Callable[[], float] = lambda: NOW
        self.settings = SimpleNamespace(refresh_interval=3600.0, read_only=False)
        self.connection = ConnectionState(
            backend_url="http://fake", operator="alice", sandbox=False, clock=self.clock
        )
        self.screen_factory = screen_factory
        self.navigate = navigate
        self.errors: list[BackendError] = []
        self.oks = 0
        self.calls: list[tuple[str, ...]] = []
        register_themes(self)

    def on_mount(self) -> None:
        self.push_screen(self.screen_factory())

    async def action_back(self) -> None:
        if len(self.screen_stack) > 2:
            self.pop_screen()

    def report_backend_ok(self) -> None:
        self.oks += 1

    def report_backend_error(self, error: BackendError) -> None:
        self.errors.append(error)

    def action_show_tenant(self, name: str) -> None:
        self.calls.append(("tenant", name))
        if self.navigate:
            self.push_screen(TenantDetailScreen(name))

    def action_show_workload(self, namespace: str, kind: str, name: str) -> None:
        self.calls.append(("workload", namespace, kind, name))
        if self.navigate:
            self.push_screen(WorkloadDetailScreen(namespace, kind, name))

    def action_show_node(self, name: str) -> None:
        self.calls.append(("node", name))
        if self.navigate:
            self.push_screen(NodeDetailScreen(name))

    async def on_unmount(self) -> None:
        await self.client.aclose()
