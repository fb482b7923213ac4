"""Label selectors: the query-string form (``labelSelector=``) and the structured form
(``spec.selector``), as the API server and controllers evaluate them.

The string grammar accepts ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``
and ``!k``, comma-separated. A selector is compiled once into a predicate over a label mapping,
so that filtering thousands of objects costs a few dict lookups each.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

LabelPredicate = Callable[[Mapping[str, str]], bool]

_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SET_OP = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s+(in|notin)\s*\((.*)\)\s*$")
EQUALITY = re.compile(r"^\s*([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=()]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*$")


class SelectorError(ValueError):
    """A selector string that does not parse; the message is the API server's."""


def parse_label_selector(selector: str | None) -> LabelPredicate | None:
    """A predicate for a ``labelSelector`` string; None when it selects everything."""
    if not selector or not selector.strip():
        return None
    preds = [_requirement(r, selector) for r in _split_requirements(selector) if r.strip()]
    if not preds:
        return None
    if len(preds) == 1:
        return preds[0]
    return lambda labels: all(p(labels) for p in preds)


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
        raise SelectorError(f"unable to parse requirement: unbalanced parentheses in {text!r}")
    return parts


def _check_key(key: str, selector: str) -> None:
    if len(key) > 316 or not _LABEL_KEY.match(key):
        raise SelectorError(
            f"unable to parse requirement: invalid label key {key!r} in selector {selector!r}"
        )


def _check_value(value: str, selector: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise SelectorError(
            f"unable to parse requirement: invalid label value {value!r} in selector {selector!r}"
        )


def _requirement(req: str, selector: str) -> LabelPredicate:
    m = _SET_OP.match(req)
    if m and not m.group(1):
        key, op = m.group(2), m.group(3)
        _check_key(key, selector)
        values = frozenset(v.strip() for v in m.group(4).split(",") if v.strip())
        for v in values:
            _check_value(v, selector)
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    m = EQUALITY.match(req)
    if m:
        key, op, value = m.groups()
        _check_key(key, selector)
        _check_value(value, selector)
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    m = _EXISTS.match(req)
    if m:
        negate, key = m.groups()
        _check_key(key, selector)
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(f"unable to parse requirement: {req.strip()!r} in {selector!r}")


def match_label_selector(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
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
