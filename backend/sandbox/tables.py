"""Server-side printing: the ``meta.k8s.io/v1`` ``Table`` that ``kubectl get`` asks for.

kubectl sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints whatever columns
the server returns; without this it could show only NAME and AGE. The columns follow the real
API server's printers (and the Kueue/KServe CRDs' ``additionalPrinterColumns``), simplified.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from backend.sandbox.scale import selector_string

JsonObject = dict[str, Any]
Getter = Callable[[JsonObject, datetime], Any]


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


@dataclass(frozen=True)
class Column:
    name: str
    get: Getter
    type: str = "string"
    priority: int = 0  # 1: only with ``-o wide``


def human_duration(seconds: float) -> str:
    """An age as kubectl shows it (``45s``, ``3m12s``, ``5h``, ``12d``)."""
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    return f"{h // (24 * 365)}y{(h // 24) % 365}d"


def _since(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "<unknown>"
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    return human_duration((now - then).total_seconds())


def _dig(obj: Any, *path: str, default: Any = None) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(part)
    return default if obj is None else obj


def _name(obj: JsonObject, now: datetime) -> str:
    return obj["metadata"]["name"]


def _age(obj: JsonObject, now: datetime) -> str:
    return _since(obj["metadata"].get("creationTimestamp"), now)


def _condition(obj: JsonObject, kind: str) -> str | None:
    for cond in _dig(obj, "status", "conditions", default=[]):
        if cond.get("type") == kind:
            return cond.get("status")
    return None


# -- per-kind cells ----------------------------------------------------------------------------


def _pod_ready(obj: JsonObject, now: datetime) -> str:
    statuses = _dig(obj, "status", "containerStatuses", default=[])
    total = len(_dig(obj, "spec", "containers", default=[]))
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status(obj: JsonObject, now: datetime) -> str:
    if obj["metadata"].get("deletionTimestamp"):
        return "Terminating"
    if _dig(obj, "spec", "schedulingGates"):
        return "SchedulingGated"
    for status in _dig(obj, "status", "containerStatuses", default=[]):
        reason = _dig(status, "state", "waiting", "reason") or _dig(
            status, "state", "terminated", "reason"
        )
        if reason:
            return reason
    return _dig(obj, "status", "reason") or _dig(obj, "status", "phase", default="Unknown")


def _pod_restarts(obj: JsonObject, now: datetime) -> int:
    return sum(
        s.get("restartCount", 0) for s in _dig(obj, "status", "containerStatuses", default=[])
    )


def _containers(obj: JsonObject, now: datetime) -> str:
    spec = _dig(obj, "spec", "template", "spec", default={})
    return ",".join(c.get("name", "") for c in spec.get("containers", []))


def _images(obj: JsonObject, now: datetime) -> str:
    spec = _dig(obj, "spec", "template", "spec", default={})
    return ",".join(c.get("image", "") for c in spec.get("containers", []))


def _selector(obj: JsonObject, now: datetime) -> str:
    return selector_string(_dig(obj, "spec", "selector"))


def _node_status(obj: JsonObject, now: datetime) -> str:
    status = {"True": "Ready", "False": "NotReady"}.get(_condition(obj, "Ready") or "", "Unknown")
    return status + (",SchedulingDisabled" if _dig(obj, "spec", "unschedulable") else "")


def _node_roles(obj: JsonObject, now: datetime) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = [k[len(prefix) :] for k in obj["metadata"].get("labels", {}) if k.startswith(prefix)]
    return ",".join(sorted(roles)) or "<none>"


def _node_ip(obj: JsonObject, now: datetime) -> str:
    for address in _dig(obj, "status", "addresses", default=[]):
        if address.get("type") == "InternalIP":
            return address.get("address", "")
    return "<none>"


def _job_status(obj: JsonObject, now: datetime) -> str:
    if _condition(obj, "Complete") == "True":
        return "Complete"
    if _condition(obj, "Failed") == "True":
        return "Failed"
    if _dig(obj, "spec", "suspend"):
        return "Suspended"
    return "Running"


def _job_completions(obj: JsonObject, now: datetime) -> str:
    return f"{_dig(obj, 'status', 'succeeded', default=0)}/{_dig(obj, 'spec', 'completions', default=1)}"


def _quota(section: str) -> Getter:
    def cell(obj: JsonObject, now: datetime) -> str:
        hard = _dig(obj, "status", "hard", default={}) or _dig(obj, "spec", "hard", default={})
        used = _dig(obj, "status", "used", default={})
        keys = sorted(
            k for k in hard if k.startswith(section) or (section == "requests." and "." not in k)
        )
        return ", ".join(f"{k}: {used.get(k, 0)}/{hard[k]}" for k in keys)

    return cell


def _field(*path: str, default: Any = "") -> Getter:
    return lambda obj, now: _dig(obj, *path, default=default)


def _event_object(obj: JsonObject, now: datetime) -> str:
    ref = obj.get("involvedObject") or {}
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


def _event_last_seen(obj: JsonObject, now: datetime) -> str:
    return _since(obj.get("lastTimestamp") or obj.get("eventTime") or None, now)


def _isvc_url(obj: JsonObject, now: datetime) -> str:
    return _dig(obj, "status", "url", default="")


def _isvc_traffic(tag: str) -> Getter:
    def cell(obj: JsonObject, now: datetime) -> Any:
        for entry in _dig(obj, "status", "components", "predictor", "traffic", default=[]):
            if (tag == "prev") == (entry.get("tag") == "prev"):
                return entry.get("percent", "")
        return ""

    return cell


NAME = Column("Name", _name)
AGE = Column("Age", _age)

COLUMNS: dict[str, list[Column]] = {
    "Pod": [
        NAME,
        Column("Ready", _pod_ready),
        Column("Status", _pod_status),
        Column("Restarts", _pod_restarts, "integer"),
        AGE,
        Column("IP", _field("status", "podIP", default="<none>"), priority=1),
        Column("Node", _field("spec", "nodeName", default="<none>"), priority=1),
    ],
    "Deployment": [
        NAME,
        Column(
            "Ready",
            lambda o, n: (
                f"{_dig(o, 'status', 'readyReplicas', default=0)}/"
                f"{_dig(o, 'spec', 'replicas', default=1)}"
            ),
        ),
        Column("Up-to-date", _field("status", "updatedReplicas", default=0), "integer"),
        Column("Available", _field("status", "availableReplicas", default=0), "integer"),
        AGE,
        Column("Containers", _containers, priority=1),
        Column("Images", _images, priority=1),
        Column("Selector", _selector, priority=1),
    ],
    "ReplicaSet": [
        NAME,
        Column("Desired", _field("spec", "replicas", default=1), "integer"),
        Column("Current", _field("status", "replicas", default=0), "integer"),
        Column("Ready", _field("status", "readyReplicas", default=0), "integer"),
        AGE,
        Column("Containers", _containers, priority=1),
        Column("Images", _images, priority=1),
        Column("Selector", _selector, priority=1),
    ],
    "Node": [
        NAME,
        Column("Status", _node_status),
        Column("Roles", _node_roles),
        AGE,
        Column("Version", _field("status", "nodeInfo", "kubeletVersion")),
        Column("Internal-IP", _node_ip, priority=1),
        Column("GPU", _field("metadata", "labels", "nvidia.com/gpu.product"), priority=1),
    ],
    "Namespace": [NAME, Column("Status", _field("status", "phase", default="Active")), AGE],
    "Job": [NAME, Column("Status", _job_status), Column("Completions", _job_completions), AGE],
    "Event": [
        Column("Last Seen", _event_last_seen),
        Column("Type", _field("type")),
        Column("Reason", _field("reason")),
        Column("Object", _event_object),
        Column("Message", _field("message")),
    ],
    "ResourceQuota": [
        NAME,
        AGE,
        Column("Request", _quota("requests.")),
        Column("Limit", _quota("limits.")),
    ],
    "ClusterQueue": [
        NAME,
        Column(
            "Cohort",
            lambda o, n: _dig(o, "spec", "cohortName") or _dig(o, "spec", "cohort", default=""),
        ),
        Column("Pending Workloads", _field("status", "pendingWorkloads", default=0), "integer"),
        Column("Admitted Workloads", _field("status", "admittedWorkloads", default=0), "integer"),
        AGE,
    ],
    "LocalQueue": [
        NAME,
        Column("ClusterQueue", _field("spec", "clusterQueue")),
        Column("Pending Workloads", _field("status", "pendingWorkloads", default=0), "integer"),
        Column("Admitted Workloads", _field("status", "admittedWorkloads", default=0), "integer"),
        AGE,
    ],
    "Workload": [
        NAME,
        Column("Queue", _field("spec", "queueName")),
        Column("Reserved in", _field("status", "admission", "clusterQueue")),
        Column("Admitted", lambda o, n: _condition(o, "Admitted") or ""),
        AGE,
    ],
    "InferenceService": [
        NAME,
        Column("URL", _isvc_url),
        Column("Ready", lambda o, n: _condition(o, "Ready") or ""),
        Column("Prev", _isvc_traffic("prev"), "integer"),
        Column("Latest", _isvc_traffic("latest"), "integer"),
        AGE,
    ],
}


def columns_for(kind: str) -> list[Column]:
    return COLUMNS.get(kind, [NAME, AGE])


def _row(columns: list[Column], obj: JsonObject, now: datetime) -> JsonObject:
    meta = obj["metadata"]
    partial = {
        key: meta[key]
        for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp", "labels")
        if key in meta
    }
    return {
        "cells": [column.get(obj, now) for column in columns],
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": partial,
        },
    }


def table(
    kind: str, objects: Iterable[JsonObject], list_meta: JsonObject, now: datetime
) -> JsonObject:
    """A ``Table`` of ``objects`` (all of one kind) with the list's metadata."""
    columns = columns_for(kind)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": [
            {
                "name": c.name,
                "type": c.type,
                "format": "name" if c is NAME else "",
                "description": "",
                "priority": c.priority,
            }
            for c in columns
        ],
        "rows": [_row(columns, obj, now) for obj in objects],
    }
