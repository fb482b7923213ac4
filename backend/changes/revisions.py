"""How one revision of a release differs from another, field by field, for the operator deciding
on a rollback: images, the model URI, args, env, resources, labels and annotations.

Both sides are pod templates (``backend.k8s.revisions`` says where each kind keeps them); paths
read as a Deployment's do (``spec.template.spec.containers[vllm].image``), so that a Deployment's
rollback and an InferenceService's read alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.audit.diff import readable_diff
from backend.fleet.revisions import RevisionTemplates
from backend.schemas import FieldDiff, RevisionDiff


def template_diff(current: Mapping[str, Any], target: Mapping[str, Any]) -> list[FieldDiff]:
    """What changes when the pod template goes from ``current`` to ``target``."""
    return readable_diff({"spec": {"template": current}}, {"spec": {"template": target}})


def revision_diff(templates: RevisionTemplates) -> RevisionDiff:
    """A revision against the current one, or why that cannot be shown."""
    diff = None
    if templates.current is not None and templates.target is not None:
        diff = template_diff(templates.current, templates.target)
    return RevisionDiff(
        revision=templates.revision,
        current_revision=templates.current_revision,
        diff=diff,
        unknown=None if diff is not None else templates.unknown,
    )
