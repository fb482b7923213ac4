"""Label and field selectors, compiled once into cheap predicates.

A list of 20,000 pods is filtered on every request, so a selector string is parsed into a tuple of
small closures and each object costs a few dict lookups. The grammar follows the API server's:
label selectors accept ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` and
``!k``; field selectors accept ``path=v``, ``path==v`` and ``path!=v`` for dotted paths.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from backend.sandbox.store import ApiError

JsonObject = dict[str, Any]
Predicate = Callable[[JsonObject], bool]

_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SET_OP = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s+(in|notin)\s*\((.*)\)\s*$")
_EQ_OP = re.compile(r"^\s*([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=()]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*$")


def _split_requirements(text: str) -> list[str]:
    """Split on commas that are not inside ``( ... )``."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    if depth != 0:
        raise ApiError.bad_request(
            f"unable to parse requirement: unbalanced parentheses in {text!r}"
        )
    return parts


def _check_key(key: str, selector: str) -> None:
    if len(key) > 316 or not _LABEL_KEY.match(key):
        raise ApiError.bad_request(
            f"unable to parse requirement: invalid label key {key!r} in selector {selector!r}"
        )


def _check_value(value: str, selector: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise ApiError.bad_request(
            f"unable to parse requirement: invalid label value {value!r} in selector {selector!r}"
        )


def _labels(obj: JsonObject) -> dict[str, str]:
    return obj["metadata"].get("labels") or {}


def _label_requirement(req: str, selector: str) -> Predicate:
    m = _SET_OP.match(req)
    if m and not m.group(1):
        key, op = m.group(2), m.group(3)
        _check_key(key, selector)
        values = frozenset(v.strip() for v in m.group(4).split(",") if v.strip())
        for v in values:
            _check_value(v, selector)
        if op == "in":
            return lambda o: _labels(o).get(key) in values
        return lambda o: _labels(o).get(key) not in values
    m = _EQ_OP.match(req)
    if m:
        key, op, value = m.groups()
        _check_key(key, selector)
        _check_value(value, selector)
        if op == "!=":
            return lambda o: _labels(o).get(key) != value
        return lambda o: _labels(o).get(key) == value
    m = _EXISTS.match(req)
    if m:
        negate, key = m.groups()
        _check_key(key, selector)
        if negate:
            return lambda o: key not in _labels(o)
        return lambda o: key in _labels(o)
    raise ApiError.bad_request(f"unable to parse requirement: {req.strip()!r} in {selector!r}")


def parse_label_selector(selector: str | None) -> Predicate | None:
    """A predicate for a ``labelSelector`` query string; ``None`` when it selects everything."""
    if not selector or not selector.strip():
        return None
    preds = [_label_requirement(r, selector) for r in _split_requirements(selector) if r.strip()]
    return _all(preds)


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
    m = _EQ_OP.match(req)
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


def match_label_selector(selector: JsonObject | None, labels: dict[str, str]) -> bool:
    """Whether ``labels`` satisfy a structured ``LabelSelector`` (matchLabels/matchExpressions).

    An empty selector matches everything, as for Deployments and ReplicaSets.
    """
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
