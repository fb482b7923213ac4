"""Alerts for the fake backend: the real monitor with the default rules over its fleet, its
history in a SQLite file, under a clock the test moves."""

from __future__ import annotations

from pathlib import Path

from backend.alerts.engine import AlertEngine
from backend.alerts.history import AlertHistoryStore
from backend.alerts.monitor import AlertMonitor
from backend.alerts.rules import configured_rules
from backend.db.engine import create_db_engine
from backend.db.migrate import upgrade
from backend.settings import DEFAULT_ALERT_RULES
from tests.support.backend import FleetBackend
from tests.support.console import FakeClock
from tests.support.fleets import SAMPLED_AT, Fleet


class Alerting:
    """``fake`` with alerts over ``fleet``; ``evaluate(at)`` runs the rules ``at`` seconds after
    the fleet's sampling time."""

    def __init__(self, fake: FleetBackend, fleet: Fleet, workdir: Path) -> None:
        url = f"sqlite:///{workdir / 'alerts.db'}"
        upgrade(url)
        self.database = create_db_engine(url)
        self.clock = FakeClock(SAMPLED_AT)
        self.monitor = AlertMonitor(
            AlertEngine(configured_rules(DEFAULT_ALERT_RULES, 85.0)),
            AlertHistoryStore(self.database),
            clock=self.clock,
        )
        self.fake, self.fleet = fake, fleet
        fake.source.alerts = self.monitor

    async def evaluate(self, at: float) -> None:
        model = self.fake.source.model
        assert model is not None
        self.clock.now = SAMPLED_AT + at
        await self.monitor.evaluate(model, self.fleet.telemetry())

    def close(self) -> None:
        self.database.dispose()
