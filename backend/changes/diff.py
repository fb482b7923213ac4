"""A readable difference between two JSON values: the leaves that differ, by path.

Containers and env vars are lists in Kubernetes but are keyed by ``name``; paths name them
(``spec.containers[vllm].image``) so that a reviewer sees which container changes, not an index.
"""

from __future__ import annotations

from typing import Any

from backend.schemas import FieldDiff


def leaves(value: Any, path: str = "") -> dict[str, Any]:
    """Every scalar (and empty container) in ``value``, keyed by its readable path."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(leaves(item, f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        named = all(isinstance(v, dict) and isinstance(v.get("name"), str) for v in value)
        for index, item in enumerate(value):
            label = item["name"] if named else str(index)
            rest = {k: v for k, v in item.items() if k != "name"} if named else item
            out.update(leaves(rest, f"{path}[{label}]"))
        return out
    return {path: value}


def readable_diff(before: Any, after: Any) -> list[FieldDiff]:
    """The paths whose value differs, in a stable order (before's order, then new paths)."""
    old, new = leaves(before), leaves(after)
    paths = list(old) + [p for p in new if p not in old]
    return [
        FieldDiff(path=p, before=old.get(p), after=new.get(p))
        for p in paths
        if old.get(p) != new.get(p)
    ]
