"""The ``scale`` subresource of Deployments and ReplicaSets (``autoscaling/v1`` ``Scale``).

``kubectl scale`` and autoscalers read and write replicas through it rather than the whole object.
"""

from __future__ import annotations

from typing import Any

from backend.sandbox.patch import deep_copy
from backend.sandbox.store import DEPLOYMENT, REPLICA_SET, ApiError, ResourceType

JsonObject = dict[str, Any]
SCALABLE = (DEPLOYMENT, REPLICA_SET)


def selector_string(selector: JsonObject | None) -> str:
    """A LabelSelector in query form (``a=b,c in (d,e)``), as ``status.selector`` shows it."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(sorted(values))})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(sorted(values))})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def to_scale(obj: JsonObject) -> JsonObject:
    """The ``Scale`` view of a Deployment or ReplicaSet."""
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in meta
        },
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": selector_string(spec.get("selector")),
        },
    }


def apply_scale(rt: ResourceType, obj: JsonObject, scale: JsonObject) -> JsonObject:
    """A copy of ``obj`` with the replicas (and resourceVersion precondition) of ``scale``."""
    replicas = (scale.get("spec") or {}).get("replicas")
    name = obj["metadata"]["name"]
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise ApiError.invalid(
            rt,
            name,
            "spec.replicas",
            f"Invalid value: {replicas}: must be greater than or equal to 0",
        )
    updated = deep_copy(obj)
    updated.setdefault("spec", {})["replicas"] = replicas
    asked = (scale.get("metadata") or {}).get("resourceVersion")
    updated["metadata"]["resourceVersion"] = asked or obj["metadata"]["resourceVersion"]
    return updated
