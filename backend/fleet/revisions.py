"""A revision's pod template and the current one's, from the cache, for the operator who looks at
a release's history before deciding on a rollback (any role may look; only changes are gated).

A Deployment's current template is its own ``spec.template`` (what ``kubectl rollout undo``
replaces) and each revision's is its ReplicaSet's. An InferenceService's revisions are Knative's:
the current one is the latest created (the InferenceService's spec), and each one's template is
in the Deployment Knative keeps for it (``backend.k8s.revisions``), when it still exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.fleet.detail import kserve_revisions, rs_revision
from backend.fleet.index import Obj
from backend.fleet.inputs import ClusterObjects
from backend.fleet.objects import dig, mapping, object_annotations, text
from backend.fleet.traffic import traffic_split
from backend.fleet.workloads import WorkloadRecord
from backend.k8s.annotations import REVISION_ANNOTATION
from backend.k8s.revisions import knative_revision_template, unknown_template
from backend.k8s.rollout import without_hash
from backend.schemas import WorkloadKind


@dataclass(frozen=True)
class RevisionTemplates:
    """Two revisions' pod templates; ``unknown`` says why one of them is None."""

    revision: str
    current_revision: str | None
    current: Obj | None
    target: Obj | None
    unknown: str | None = None


def revision_templates(
    record: WorkloadRecord, cluster: ClusterObjects, revision: str
) -> RevisionTemplates | None:
    """The templates of ``revision`` and of the current revision; None when the workload has
    no such revision (or its kind no revisions)."""
    if record.row.kind == WorkloadKind.DEPLOYMENT:
        return _deployment(record, revision)
    if record.row.kind == WorkloadKind.INFERENCE_SERVICE:
        return _inference_service(record, cluster, revision)
    return None


def _deployment(record: WorkloadRecord, revision: str) -> RevisionTemplates | None:
    if not revision.isdigit():
        return None
    target = next((rs for rs in record.replicasets if rs_revision(rs) == int(revision)), None)
    if target is None:
        return None
    numbers = [rs_revision(rs) for rs in record.replicasets]
    current = text(object_annotations(record.obj).get(REVISION_ANNOTATION)) or str(max(numbers))
    return RevisionTemplates(
        revision=revision,
        current_revision=current,
        current=without_hash(mapping(dig(record.obj, "spec", "template"))),
        target=without_hash(mapping(dig(target, "spec", "template"))),
    )


def _inference_service(
    record: WorkloadRecord, cluster: ClusterObjects, revision: str
) -> RevisionTemplates | None:
    obj = record.obj
    names = [r.revision for r in kserve_revisions(obj, record.pods, traffic_split(obj))]
    if revision not in names:
        return None
    namespace = record.row.namespace
    current = text(dig(obj, "status", "components", "predictor", "latestCreatedRevision"))
    if current is None:
        return RevisionTemplates(revision, None, None, None, "KServe names no current revision")
    templates = {name: _knative_template(cluster, namespace, name) for name in (current, revision)}
    missing = next((name for name, t in templates.items() if t is None), None)
    return RevisionTemplates(
        revision=revision,
        current_revision=current,
        current=templates[current],
        target=templates[revision],
        unknown=unknown_template(namespace, missing) if missing else None,
    )


def _knative_template(cluster: ClusterObjects, namespace: str, revision: str) -> Obj | None:
    """The template of the Deployment Knative names ``<revision>-deployment``."""
    deployments = cluster.get("deployments") or {}
    deployment = deployments.get((namespace, f"{revision}-deployment"))
    return None if deployment is None else knative_revision_template([deployment], revision)
