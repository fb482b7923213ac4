"""The alert state machine, with Prometheus's ``for:`` semantics, under the caller's clock.

Per rule and subject: inactive → pending when the condition becomes true → firing once it has
held for the rule's ``for_seconds`` (at once when that is 0) → resolved when it stops being true
(or the subject is no longer observed). A pending alert that clears is resolved too, without ever
firing. ``evaluate`` returns the transitions, which the history keeps; ``current`` lists firing,
pending and recently resolved alerts. Evaluation is one pass over each rule's readings; an
observation (and the alert shown for it) is made only for a reading that holds or clears an
active alert, and an active alert read again from the very same row of the model (a model update
keeps the rows it did not change) keeps its observation and shown alert.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from backend.alerts.rules import (
    COMPARISONS,
    AlertInputs,
    ConfiguredRule,
    Observation,
    duration,
)
from backend.schemas import Alert, AlertState, ProblemSeverity

RESOLVED_KEPT_SECONDS = 3600.0  # how long a resolved alert stays in the current list
RESOLVED_KEPT_MAX = 500
STATE_ORDER = {AlertState.FIRING: 0, AlertState.PENDING: 1, AlertState.RESOLVED: 2}
SEVERITY_ORDER = {ProblemSeverity.CRITICAL: 0, ProblemSeverity.WARNING: 1, ProblemSeverity.INFO: 2}


@dataclass(slots=True)
class _Active:
    """A pending or firing alert."""

    rule: ConfiguredRule
    observation: Observation
    started: float
    firing_since: float | None = None
    shown: Alert | None = None  # as ``current`` lists it, until the observation or state changes

    def observe(self, value: float, source: Any) -> None:
        """The newest reading; the same row as before reads the same."""
        if source is not self.observation.source:
            self.observation = Observation(value, source, self.rule.kind.explain)
            self.shown = None


def _order(alert: Alert) -> tuple[int, int, float, str]:
    return (
        STATE_ORDER[alert.state],
        SEVERITY_ORDER[alert.severity],
        -alert.since.timestamp(),
        alert.subject.name,
    )


def _time(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


LABELS = ("node", "gpu_uuid", "namespace", "workload_kind", "workload", "tenant")


def _alert(active: _Active, state: AlertState, at: float, message: str) -> Alert:
    rule, observation = active.rule, active.observation
    subject = observation.subject
    labels = {"alertname": rule.name, "severity": rule.severity.value}
    for name in LABELS:
        value = getattr(subject, name)
        if value is not None:
            labels[name] = value
    return Alert(
        rule=rule.name,
        severity=rule.severity,
        state=state,
        subject=subject,
        labels=labels,
        value=observation.value,
        threshold=rule.threshold,
        unit=rule.kind.unit,
        since=_time(at),
        started=_time(active.started),
        message=message,
    )


def _shown(active: _Active) -> Alert:
    """The pending or firing alert as ``current`` lists it (made again only after a change)."""
    if active.shown is None:
        firing = active.firing_since
        state = AlertState.PENDING if firing is None else AlertState.FIRING
        at = active.started if firing is None else firing
        active.shown = _alert(active, state, at, active.rule.message(active.observation))
    return active.shown


class AlertEngine:
    """The alerts of a set of rules; not thread-safe (one evaluation at a time)."""

    def __init__(self, rules: Sequence[ConfiguredRule]) -> None:
        self.rules = list(rules)
        self._active: dict[tuple[str, str], _Active] = {}
        self._resolved: deque[Alert] = deque(maxlen=RESOLVED_KEPT_MAX)

    def evaluate(self, inputs: AlertInputs, now: float) -> list[Alert]:
        """Apply the rules to ``inputs`` at time ``now``; the transitions, in rule order."""
        transitions: list[Alert] = []
        seen: set[tuple[str, str]] = set()
        cleared: dict[tuple[str, str], Observation] = {}
        for rule in self.rules:
            compare, threshold, name = COMPARISONS[rule.kind.op], rule.threshold, rule.name
            for key, value, source in rule.kind.observe(inputs):
                ident = (name, key)
                if compare(value, threshold):
                    seen.add(ident)
                    transition = self._holds(rule, ident, value, source, now)
                    if transition is not None:
                        transitions.append(transition)
                elif ident in self._active:
                    cleared[ident] = Observation(value, source, rule.kind.explain)
        for ident in [i for i in self._active if i not in seen]:
            active = self._active.pop(ident)
            transitions.append(self._resolve(active, cleared.get(ident), now))
        cutoff = now - RESOLVED_KEPT_SECONDS
        while self._resolved and self._resolved[0].since.timestamp() < cutoff:
            self._resolved.popleft()
        return transitions

    def _holds(
        self, rule: ConfiguredRule, ident: tuple[str, str], value: float, source: Any, now: float
    ) -> Alert | None:
        """The transition a true condition makes, if any."""
        active = self._active.get(ident)
        if active is None:
            observation = Observation(value, source, rule.kind.explain)
            active = self._active[ident] = _Active(rule, observation, now)
            if rule.for_seconds > 0:
                return _alert(active, AlertState.PENDING, now, rule.message(observation))
        else:
            active.observe(value, source)
        if active.firing_since is None and now - active.started >= rule.for_seconds:
            active.firing_since = now
            active.shown = None
            return _alert(active, AlertState.FIRING, now, rule.message(active.observation))
        return None

    def _resolve(self, active: _Active, observation: Observation | None, now: float) -> Alert:
        """Resolved with the value that cleared it (None: the subject is no longer observed)."""
        held = duration(now - active.started)
        fired = active.firing_since is not None
        why = f"cleared after {held}" + ("" if fired else " pending, never fired")
        was = active.rule.message(active.observation)
        if observation is None:
            why += " (no longer observed)"
        else:
            active.observation = observation
        alert = _alert(active, AlertState.RESOLVED, now, f"{why}; was: {was}")
        if observation is None:
            alert.value = None
        if fired:
            self._resolved.append(alert)
        return alert

    def current(self) -> list[Alert]:
        """Firing, then pending, then resolved (in the last hour); in each the most severe, then
        the newest first."""
        alerts = [_shown(a) for a in self._active.values()]
        alerts.extend(self._resolved)
        alerts.sort(key=_order)
        return alerts
