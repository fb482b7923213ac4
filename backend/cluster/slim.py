"""Cut cluster objects down to what the fleet model reads, so that 20,000 pods stay small.

Every object keeps ``apiVersion``, ``kind``, a filtered ``metadata`` and its other top-level fields
(``spec``, ``status``, and for Events ``involvedObject``/``reason``/``message``/...), with
``managedFields`` always dropped. Pods keep only the scheduling and GPU-relevant parts of spec and
status; Nodes drop ``status.images`` (often the largest part of a node).
"""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]

METADATA_KEYS = (
    "name",
    "namespace",
    "uid",
    "labels",
    "annotations",
    "ownerReferences",
    "creationTimestamp",
    "deletionTimestamp",
    "resourceVersion",
    "generation",
)
POD_SPEC_KEYS = ("nodeName", "nodeSelector", "schedulingGates")
POD_CONTAINER_KEYS = ("name", "image", "resources")
POD_STATUS_KEYS = ("phase", "conditions", "podIP", "startTime", "reason", "message")
POD_CONTAINER_STATUS_KEYS = ("name", "ready", "restartCount")


def _pick(source: JsonObject, keys: tuple[str, ...]) -> JsonObject:
    return {k: source[k] for k in keys if k in source}


def slim_metadata(metadata: JsonObject) -> JsonObject:
    return _pick(metadata, METADATA_KEYS)


def slim_pod_spec(spec: JsonObject) -> JsonObject:
    out = _pick(spec, POD_SPEC_KEYS)
    out["containers"] = [_pick(c, POD_CONTAINER_KEYS) for c in spec.get("containers") or ()]
    return out


def slim_pod_status(status: JsonObject) -> JsonObject:
    out = _pick(status, POD_STATUS_KEYS)
    statuses = status.get("containerStatuses")
    if statuses is not None:
        out["containerStatuses"] = [_pick(s, POD_CONTAINER_STATUS_KEYS) for s in statuses]
    return out


def slim_node_status(status: JsonObject) -> JsonObject:
    return {k: v for k, v in status.items() if k != "images"}


def slim(obj: JsonObject, api_version: str, kind: str) -> JsonObject:
    """A new, smaller dict; ``api_version``/``kind`` fill in what list items omit."""
    out: JsonObject = {k: v for k, v in obj.items() if k not in ("metadata", "spec", "status")}
    out["apiVersion"] = obj.get("apiVersion") or api_version
    out["kind"] = obj.get("kind") or kind
    out["metadata"] = slim_metadata(obj.get("metadata") or {})
    spec, status = obj.get("spec"), obj.get("status")
    if kind == "Pod":
        spec = slim_pod_spec(spec or {})
        status = slim_pod_status(status or {})
    elif kind == "Node" and status is not None:
        status = slim_node_status(status)
    if spec is not None:
        out["spec"] = spec
    if status is not None:
        out["status"] = status
    return out


def object_key(obj: JsonObject) -> tuple[str, str]:
    """The cache key: (namespace or "", name)."""
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")
