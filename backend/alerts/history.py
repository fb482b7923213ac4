"""The alert history: one row per transition (pending, firing, resolved), with its time, the
observed value and why, kept ``alert_history_days``.

The row holds the alert's whole JSON (what ``GET /alerts?since=`` answers) plus the columns the
queries filter on. Synchronous: callers run it in a thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Engine, Float, Index, Text
from sqlmodel import Field, SQLModel

from backend.schemas import Alert, AlertState


class AlertEventRow(SQLModel, table=True):
    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: float = Field(sa_type=Float, description="Unix time of the transition.")
    rule: str = Field(max_length=64)
    state: str = Field(max_length=16)
    subject: str = Field(sa_type=Text)
    tenant: str | None = Field(default=None, max_length=253)
    value: float | None = Field(default=None, sa_type=Float)
    message: str = Field(sa_type=Text)
    alert: str = Field(sa_type=Text, description="The alert's JSON as the API answers it.")


EVENTS_TABLE = SQLModel.metadata.tables[AlertEventRow.__tablename__]


class AlertHistoryStore:
    """Writes transitions, prunes old ones, reads them back by time, state and tenant scope."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, transitions: Iterable[Alert]) -> None:
        rows = [
            {
                "at": a.since.timestamp(),
                "rule": a.rule,
                "state": a.state.value,
                "subject": a.subject.name,
                "tenant": a.subject.tenant,
                "value": a.value,
                "message": a.message,
                "alert": a.model_dump_json(),
            }
            for a in transitions
        ]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(EVENTS_TABLE), rows)

    def prune(self, before: float) -> None:
        table = EVENTS_TABLE
        with self.engine.begin() as conn:
            conn.execute(sa.delete(table).where(table.c.at < before))

    def since(
        self,
        since: datetime,
        *,
        state: AlertState | None = None,
        scope: frozenset[str] | None = None,
        limit: int = 500,
    ) -> list[Alert]:
        """Transitions at or after ``since``, newest first; ``scope``: only those about these
        tenants' subjects or about no tenant's."""
        t = EVENTS_TABLE
        query = sa.select(t.c.alert).where(t.c.at >= since.timestamp())
        if state is not None:
            query = query.where(t.c.state == state.value)
        if scope is not None:
            query = query.where(sa.or_(t.c.tenant.is_(None), t.c.tenant.in_(sorted(scope))))
        query = query.order_by(t.c.at.desc(), t.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [Alert.model_validate_json(body) for (body,) in conn.execute(query)]
