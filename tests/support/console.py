"""Helpers for the console's pilot tests: an app on the fake backend, screen text, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from opsconsole.app import OpsConsoleApp
from opsconsole.settings import ConsoleSettings
from tests.support.backend import FleetBackend

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
) -> OpsConsoleApp:
    settings = ConsoleSettings(
        backend="http://fake-backend:8080",
        operator="alice",
        theme="opsconsole-dark",
        refresh_interval=60.0,  # tests refresh explicitly; no timer noise
        request_timeout=timeout,
    )
    return OpsConsoleApp(
        settings,
        backend_url="http://fake-backend:8080",
        sandbox=sandbox,
        clock=clock or FakeClock(),
        transport=fake.transport(),
    )


def screen_text(app: OpsConsoleApp) -> str:
    """The characters on the terminal right now, one line per row."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def record_notifications(app: OpsConsoleApp, monkeypatch: pytest.MonkeyPatch) -> list[str]:
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
