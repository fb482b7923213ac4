"""Where a release's earlier pod templates are kept, so a rollback can show what it brings back.

- A Deployment: each revision's template is in its ReplicaSet (``kubectl rollout history
  --revision N`` prints it), ``pod-template-hash`` aside.
- A KServe InferenceService (serverless mode): the InferenceService keeps only its current
  predictor spec. Each revision of the predictor is a Knative Revision, backed by a Deployment
  (``<revision>-deployment``) labelled ``serving.knative.dev/revision=<revision>`` whose pod
  template is that revision's: image, args, env (the model URI among them), resources,
  annotations. Knative keeps it, scaled to zero, while the Revision exists; once Knative has
  garbage-collected an old Revision, or in raw deployment mode (no revisions), that template is
  no longer anywhere in the cluster, and the product says so instead of guessing.

The labels naming the revision itself (equal to its name, such as ``app`` and the revision label)
and Knative's revision number differ between any two revisions; they are left out, so what is
compared is what the revision runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from backend.k8s.rollout import without_hash

KNATIVE_REVISION_LABEL = "serving.knative.dev/revision"
KNATIVE_REVISION_NUMBER_ANNOTATION = "serving.knative.dev/revision-number"

JsonObject = dict[str, Any]


def knative_revision_template(
    deployments: Iterable[Mapping[str, Any]], revision: str
) -> JsonObject | None:
    """The pod template Knative runs ``revision`` with, from the Deployment backing it (None
    when no Deployment of ``deployments`` backs it)."""
    for deployment in deployments:
        labels = (deployment.get("metadata") or {}).get("labels") or {}
        if labels.get(KNATIVE_REVISION_LABEL) == revision:
            template = (deployment.get("spec") or {}).get("template") or {}
            return _without_identity(without_hash(template), revision)
    return None


def _without_identity(template: Mapping[str, Any], revision: str) -> JsonObject:
    meta = dict(template.get("metadata") or {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if v != revision}
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k != KNATIVE_REVISION_NUMBER_ANNOTATION
    }
    for key, value in (("labels", labels), ("annotations", annotations)):
        if value:
            meta[key] = value
        else:
            meta.pop(key, None)
    return {**template, "metadata": meta}


def unknown_template(namespace: str, revision: str) -> str:
    """Why a KServe revision's template cannot be shown."""
    return (
        f"the pod template of revision {revision} is not known: no Deployment in namespace "
        f'"{namespace}" is labelled {KNATIVE_REVISION_LABEL}={revision} (Knative may have '
        "garbage-collected that revision), and KServe keeps no earlier predictor spec"
    )
