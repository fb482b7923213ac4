"""A change's plan: the exact fields of the exact objects it will write, before and after.

A plan is data, so that what is applied is what was reviewed: its fingerprint covers the action,
the parameters, every field's before and after value, the details shown to the reviewer and the
resourceVersion each object had when it was read. Each object's patch is derived from its fields (a JSON patch of ``replace``, ``add``
or ``remove`` operations) and carries that resourceVersion, which the API server checks (409 when
the object changed in between). The revert of an applied change is the same fields, swapped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from backend.changes.kube import ObjectRef


@dataclass(frozen=True)
class FieldChange:
    """One JSON-pointer path of an object, before and after (None: absent)."""

    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class ObjectChange:
    ref: ObjectRef
    resource_version: str
    fields: tuple[FieldChange, ...]

    def patch(self) -> list[dict[str, Any]]:
        """The JSON patch: the resourceVersion precondition, then the fields."""
        ops: list[dict[str, Any]] = [
            {"op": "replace", "path": "/metadata/resourceVersion", "value": self.resource_version}
        ]
        for change in self.fields:
            if change.after is None:
                ops.append({"op": "remove", "path": change.path})
            else:
                op = "add" if change.before is None else "replace"
                ops.append({"op": op, "path": change.path, "value": change.after})
        return ops

    def reverted(self, resource_version: str) -> ObjectChange:
        """The change that puts the fields back, on the object as it is after this one."""
        swapped = tuple(FieldChange(f.path, f.after, f.before) for f in self.fields)
        return replace(self, resource_version=resource_version, fields=swapped)

    def as_record(self, side: str) -> dict[str, Any]:
        """``before`` or ``after`` of this object, for the audit log."""
        return {
            "object": str(self.ref),
            "fields": {f.path: getattr(f, side) for f in self.fields},
        }


@dataclass
class Plan:
    """What a change will do. ``noop`` explains a plan that writes nothing."""

    action: str
    target: str
    tenants: list[str]
    parameters: dict[str, Any]
    objects: list[ObjectChange]
    warnings: list[str] = field(default_factory=list)
    noop: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # kind-specific, for the reviewer
    # Predictions from the cluster's moving status (what a queue would admit): shown in the
    # details, but like the warnings not part of the fingerprint, or every admission in between
    # would make a reviewed change stale.
    forecast: dict[str, Any] = field(default_factory=dict)
    confirmed: str | None = None  # the fingerprint confirmed, when only resourceVersions differ

    @property
    def reviewed(self) -> str:
        """Digest of what the operator reviews: action, target, parameters, every field's before
        and after, and the kind's details (target revision, traffic split, ...)."""
        content = {
            "action": self.action,
            "target": self.target,
            "parameters": self.parameters,
            "objects": [
                {"ref": o.ref.as_dict(), "fields": [[f.path, f.before, f.after] for f in o.fields]}
                for o in self.objects
            ],
            "details": self.details,
        }
        return _digest(content)

    @property
    def fingerprint(self) -> str:
        """``<reviewed>.<resourceVersions>``: what was reviewed, and the object versions read.

        Two parts, because a controller that writes an object's status moves its
        resourceVersion without touching anything the operator reviewed; apply tells the two
        apart (``backend.changes.path``)."""
        return f"{self.reviewed}.{_digest(self.resource_versions())}"

    def resource_versions(self) -> dict[str, str]:
        return {str(o.ref): o.resource_version for o in self.objects}


def reviewed_part(fingerprint: str) -> str:
    """The reviewed digest of a fingerprint (the part before the dot)."""
    return fingerprint.partition(".")[0]


def _digest(content: Any) -> str:
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def json_pointer(*parts: str | int) -> str:
    """``/spec/template`` from ("spec", "template"), escaping ``~`` and ``/`` as RFC 6901 says."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)
