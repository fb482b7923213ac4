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


def record_diff(before: Any, after: Any) -> list[FieldDiff]:
    """What an audit record changed. A change's records hold, per object, the fields it set
    (``[{"object": ..., "fields": {path: value}}]``); anything else is compared as it is."""
    if _per_object(before) and _per_object(after) and len(before) == len(after):
        diff: list[FieldDiff] = []
        for old, new in zip(before, after, strict=True):
            prefix = f"{old['object']}: " if len(before) > 1 else ""
            diff += [
                FieldDiff(path=prefix + d.path, before=d.before, after=d.after)
                for d in readable_diff(_dotted(old["fields"]), _dotted(new["fields"]))
            ]
        return sorted(diff, key=lambda d: d.path)  # the same order however the record is kept
    return readable_diff(before, after)


def _per_object(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, dict) and "object" in v and isinstance(v.get("fields"), dict) for v in value
    )


def _dotted(fields: dict[str, Any]) -> dict[str, Any]:
    """JSON-pointer keys (``/spec/template``) as readable paths (``spec.template``)."""
    return {
        k.strip("/").replace("/", ".").replace("~1", "/").replace("~0", "~"): v
        for k, v in fields.items()
    }
