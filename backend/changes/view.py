"""A plan as the wire contract shows it to the operator who reviews it."""

from __future__ import annotations

from backend.audit.diff import record_diff
from backend.changes.plan import Plan
from backend.schemas import ChangePlan, FieldDiff, PlannedObject


def plan_view(plan: Plan) -> ChangePlan:
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
        diff=record_diff(
            [o.as_record("before") for o in plan.objects],
            [o.as_record("after") for o in plan.objects],
        ),
        warnings=plan.warnings,
        noop=plan.noop,
        details={**plan.details, **plan.forecast},
        fingerprint=plan.fingerprint,
    )
