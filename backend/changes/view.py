"""A plan as the wire contract shows it to the operator who reviews it."""

from __future__ import annotations

from backend.changes.diff import readable_diff
from backend.changes.plan import Plan
from backend.schemas import ChangePlan, FieldDiff, PlannedObject


def _dotted(pointer: str) -> str:
    """``/spec/template`` -> ``spec.template``."""
    return pointer.strip("/").replace("/", ".").replace("~1", "/").replace("~0", "~")


def plan_view(plan: Plan) -> ChangePlan:
    diff: list[FieldDiff] = []
    for obj in plan.objects:
        prefix = f"{obj.ref}: " if len(plan.objects) > 1 else ""
        before = {_dotted(f.path): f.before for f in obj.fields}
        after = {_dotted(f.path): f.after for f in obj.fields}
        diff += [
            FieldDiff(path=prefix + d.path, before=d.before, after=d.after)
            for d in readable_diff(before, after)
        ]
    return ChangePlan(
        action=plan.action,
        target=plan.target,
        tenants=plan.tenants,
        parameters=plan.parameters,
        objects=[
            PlannedObject(
                object=str(o.ref),
                resource_version=o.resource_version,
                fields=[FieldDiff(path=f.path, before=f.before, after=f.after) for f in o.fields],
            )
            for o in plan.objects
        ],
        diff=diff,
        warnings=plan.warnings,
        noop=plan.noop,
        details=plan.details,
        fingerprint=plan.fingerprint,
    )
