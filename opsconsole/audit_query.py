"""The audit filter language shared by the Audit screen's ``/`` and ``opsconsole audit list``.

``actor:alice action:quota.* outcome:failed since:1h node drain`` — ``field:value`` terms set the
matching filter, everything else is free text. Times are ``30s``, ``15m``, ``2h``, ``7d`` (that long
ago) or an ISO 8601 time (UTC when it names no zone).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from backend.schemas import AuditFilter

FIELDS = ("actor", "action", "tenant", "target", "outcome", "change", "since", "until")
_DURATION = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class QueryError(ValueError):
    """The query cannot be understood; the message says which part and why."""


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """``1h`` (an hour ago) or an ISO time, as an aware UTC datetime."""
    match = _DURATION.match(value.strip())
    if match:
        amount, unit = match.groups()
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise QueryError(f"{value!r} is not a time: use 30m, 2h, 7d or an ISO time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_query(query: str, now: datetime | None = None) -> AuditFilter:
    """The filter a query line asks for."""
    values: dict[str, object] = {}
    words: list[str] = []
    for term in query.split():
        name, sep, value = term.partition(":")
        if not sep or name.lower() not in FIELDS:
            words.append(term)
            continue
        if not value:
            raise QueryError(f"{name}: needs a value")
        key = name.lower()
        if key in ("since", "until"):
            values[key] = parse_time(value, now)
        else:
            values["change_id" if key == "change" else key] = value
    if words:
        values["text"] = " ".join(words)
    try:
        return AuditFilter.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise QueryError(f"{where}: {first.get('msg', 'invalid')}") from exc
