"""The backend's alerts: evaluated after a model rebuild (at most once per ``settle`` seconds,
one telemetry round) and every ``interval`` seconds (so a ``for:`` runs out on a fleet that does
not change), never per request.

Each evaluation runs the engine in a worker thread, publishes an ``AlertView`` that every read
answers from (the current alerts, counts and overview problems per tenant scope, JSON rendered
once per scope, each alert's JSON once while it does not change), then writes the transitions to
the history, in a thread too. What most reads ask (the whole fleet's firing alerts and all of
them at the default limit, and its problems) is rendered in that thread before the view is
published, so that those requests only copy bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine

from backend.alerts.engine import AlertEngine
from backend.alerts.history import AlertHistoryStore
from backend.alerts.rules import RULE_KINDS, AlertInputs, configured_rules
from backend.cputime import accounted
from backend.fleet.model import FleetModel
from backend.schemas import Alert, AlertList, AlertState, Problem
from backend.settings import Settings
from backend.telemetry.base import TelemetrySnapshot

log = logging.getLogger(__name__)
DAY = 86400.0
MAX_RENDERED = 64  # answers kept per view (scopes × states × limits)
DEFAULT_LIMIT = 500  # alerts at most in an answer that names no limit
CPU_WORK = "alerts"  # the evaluations' and history writes' CPU on /metrics
Latest = Callable[[], tuple[FleetModel | None, TelemetrySnapshot]]


def visible(alert: Alert, scope: frozenset[str] | None) -> bool:
    """An actor limited to ``scope`` sees its tenants' alerts and those about no tenant (nodes,
    free GPUs), as it sees those GPUs and nodes."""
    tenant = alert.subject.tenant
    return scope is None or tenant is None or tenant in scope


def as_problem(alert: Alert) -> Problem:
    """A firing alert as an overview problem (its subject named as problems name theirs)."""
    return Problem(
        severity=alert.severity,
        kind=RULE_KINDS[alert.rule].problem_kind,
        subject=alert.subject.name,
        message=alert.message,
    )


@dataclass
class AlertView:
    """One evaluation's alerts; what every read of that evaluation answers from."""

    alerts: list[Alert] = field(default_factory=list)
    evaluated_at: datetime | None = None
    _rendered: dict[Hashable, object] = field(default_factory=dict)
    _json: dict[int, tuple[Alert, bytes]] = field(default_factory=dict)  # by id of the alert

    def keep_json(self, previous: AlertView) -> None:
        """Take ``previous``'s JSON of the alerts both list: the engine shows an alert that did
        not change as the very same object."""
        for alert in self.alerts:
            found = previous._json.get(id(alert))
            if found is not None and found[0] is alert:
                self._json[id(alert)] = found

    def _item_json(self, alert: Alert) -> bytes:
        found = self._json.get(id(alert))
        if found is None:
            found = self._json[id(alert)] = (alert, alert.__pydantic_serializer__.to_json(alert))
        return found[1]

    def _cached(self, key: Hashable, make: Callable[[], object]) -> object:
        if key not in self._rendered:
            if len(self._rendered) >= MAX_RENDERED:
                self._rendered.pop(next(iter(self._rendered)))
            self._rendered[key] = make()
        return self._rendered[key]

    def scoped(self, scope: frozenset[str] | None) -> list[Alert]:
        found = self._cached(
            ("scoped", scope), lambda: [a for a in self.alerts if visible(a, scope)]
        )
        assert isinstance(found, list)
        return found

    def count(self, scope: frozenset[str] | None, state: AlertState) -> int:
        return sum(1 for a in self.scoped(scope) if a.state is state)

    def problems(self, scope: frozenset[str] | None) -> tuple[Problem, ...]:
        """The firing alerts as problems; the same tuple for the whole evaluation (the overview
        caches its JSON by it)."""
        found = self._cached(
            ("problems", scope),
            lambda: tuple(
                as_problem(a) for a in self.scoped(scope) if a.state is AlertState.FIRING
            ),
        )
        assert isinstance(found, tuple)
        return found

    def list_json(
        self, scope: frozenset[str] | None, state: AlertState | None, limit: int
    ) -> bytes:
        """``AlertList`` of ``state`` (None: every state), at most ``limit`` items."""

        def render() -> bytes:
            mine = self.scoped(scope)
            items = [a for a in mine if state is None or a.state is state][:limit]
            empty = AlertList(
                items=[],
                firing=self.count(scope, AlertState.FIRING),
                pending=self.count(scope, AlertState.PENDING),
                evaluated_at=self.evaluated_at,
            )
            envelope = empty.__pydantic_serializer__.to_json(empty)
            head = b'{"items":['
            assert envelope.startswith(head + b"]")
            return head + b",".join(map(self._item_json, items)) + envelope[len(head) :]

        found = self._cached(("json", scope, state, limit), render)
        assert isinstance(found, bytes)
        return found

    def prerender(self) -> AlertView:
        """Render what most reads ask of the whole fleet: the firing alerts and every alert at
        the default limit, and the overview's problems."""
        for state in (AlertState.FIRING, None):
            self.list_json(None, state, DEFAULT_LIMIT)
        self.problems(None)
        return self


# At least this long between two evaluations, unless the settings say otherwise (the backend
# evaluates once per telemetry round, ``scrape_interval``): a round enters the model in several
# steps, each a new model, and the readings change once per round; the rules' durations are
# minutes, and Prometheus evaluates its rules every 15 s to 1 min. One evaluation of the large
# fleet costs about 0.1 s of CPU: every 5 s, that was 16-20 % of the backend process's own CPU.
SETTLE_SECONDS = 15.0


class AlertMonitor:
    """Keeps the alerts current from the newest model; ``clock`` is ``time.time`` but in tests."""

    def __init__(
        self,
        engine: AlertEngine,
        history: AlertHistoryStore | None,
        *,
        interval: float = 15.0,
        settle: float = SETTLE_SECONDS,
        retention_days: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.history = history
        self.interval = interval
        self.settle = settle  # at least this long between two evaluations
        self.retention = retention_days * DAY
        self.clock = clock
        self.view = AlertView()
        self.evaluations = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def evaluate(self, model: FleetModel, telemetry: TelemetrySnapshot) -> list[Alert]:
        """One evaluation at ``clock()``: the transitions, recorded and published."""
        now = self.clock()
        inputs = AlertInputs(model, telemetry)
        transitions, self.view = await asyncio.to_thread(self._evaluate, inputs, now)
        self.evaluations += 1
        if transitions and self.history is not None:
            try:
                await asyncio.to_thread(self._record, transitions, now)
            except Exception:  # the database may be away: the alerts themselves stay current
                log.exception("recording %d alert transitions failed", len(transitions))
        return transitions

    def _evaluate(self, inputs: AlertInputs, now: float) -> tuple[list[Alert], AlertView]:
        """The transitions, and the view to publish with its common answers rendered."""
        with accounted(CPU_WORK):
            transitions = self.engine.evaluate(inputs, now)
            view = AlertView(self.engine.current(), datetime.fromtimestamp(now, UTC))
            view.keep_json(self.view)
            return transitions, view.prerender()

    def _record(self, transitions: list[Alert], now: float) -> None:
        """Keep the transitions in the history and drop what is past the retention."""
        assert self.history is not None
        with accounted(CPU_WORK):
            self.history.record(transitions)
            self.history.prune(now - self.retention)

    def wake(self) -> None:
        """Evaluate now (a new model was built)."""
        self._wake.set()

    async def start(self, latest: Latest) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(latest), name="alerts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self, latest: Latest) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            model, telemetry = latest()
            if model is None:
                continue
            try:
                await self.evaluate(model, telemetry)
            except Exception:  # never let the loop die: the alerts would freeze silently
                log.exception("alert evaluation failed")
            # A model updated in many small steps (a telemetry round enters it in slices) wakes
            # the loop after each: one evaluation per ``settle`` covers them all.
            await asyncio.sleep(self.settle)

    async def since(
        self,
        since: datetime,
        state: AlertState | None,
        scope: frozenset[str] | None,
        limit: int,
    ) -> list[Alert]:
        """The history's transitions since ``since``, newest first (empty without a database)."""
        if self.history is None:
            return []
        return await asyncio.to_thread(
            self.history.since, since, state=state, scope=scope, limit=limit
        )


def monitor_from_settings(
    settings: Settings, database: Engine | None, clock: Callable[[], float] = time.time
) -> AlertMonitor:
    """The rules of the settings, their history in ``database`` (None: kept nowhere)."""
    rules = configured_rules(settings.alert_rules, settings.hot_temperature_c)
    return AlertMonitor(
        AlertEngine(rules),
        AlertHistoryStore(database) if database is not None else None,
        interval=settings.alert_interval,
        settle=settings.scrape_interval,
        retention_days=settings.alert_history_days,
        clock=clock,
    )
