"""The API server's ``labelSelector`` and ``fieldSelector`` query parameters, as predicates.

A list of 20,000 pods is filtered on every request, so a selector string is parsed into a tuple of
small closures and each object costs a few dict lookups. Label selectors are Kubernetes' own
grammar (``backend.k8s.selectors``); field selectors accept ``path=v``, ``path==v`` and
``path!=v`` for dotted paths. A malformed selector is a 400 Bad Request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backend.k8s.selectors import EQUALITY, SelectorError
from backend.k8s.selectors import parse_label_selector as parse_labels
from backend.sandbox.store import ApiError

JsonObject = dict[str, Any]
Predicate = Callable[[JsonObject], bool]


def parse_label_selector(selector: str | None) -> Predicate | None:
    """A predicate over objects for a ``labelSelector`` query string; None when it selects
    everything."""
    try:
        matches = parse_labels(selector)
    except SelectorError as err:
        raise ApiError.bad_request(str(err)) from None
    if matches is None:
        return None
    return lambda obj: matches(obj["metadata"].get("labels") or {})


def _field_value(obj: JsonObject, path: tuple[str, ...]) -> str:
    """A field's value as the API server compares it: a string, "" when absent."""
    cur: Any = obj
    for part in path:
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
        if cur is None:
            return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, dict | list):
        return ""
    return str(cur)


def _field_requirement(req: str, selector: str) -> Predicate:
    m = EQUALITY.match(req)
    if not m:
        raise ApiError.bad_request(f"invalid field selector: {req.strip()!r} in {selector!r}")
    field, op, value = m.groups()
    path = tuple(field.split("."))
    if not all(path):
        raise ApiError.bad_request(f"invalid field selector: {field!r} is not a field path")
    if op == "!=":
        return lambda o: _field_value(o, path) != value
    return lambda o: _field_value(o, path) == value


def parse_field_selector(selector: str | None) -> Predicate | None:
    """A predicate for a ``fieldSelector`` query string; ``None`` when it selects everything."""
    if not selector or not selector.strip():
        return None
    preds = [_field_requirement(r, selector) for r in selector.split(",") if r.strip()]
    return _all(preds)


def _all(preds: list[Predicate]) -> Predicate | None:
    if not preds:
        return None
    if len(preds) == 1:
        return preds[0]
    return lambda o: all(p(o) for p in preds)


def combine(*preds: Predicate | None) -> Predicate | None:
    """One predicate requiring every given one (``None`` entries ignored)."""
    return _all([p for p in preds if p is not None])
