"""``isvc.rollback`` and ``isvc.promote``: a KServe InferenceService's canary, ended either way.

KServe splits traffic by ``spec.predictor.canaryTrafficPercent``: P% to the latest ready revision,
the rest to the previously rolled-out one (tag ``prev``). Ending a canary is one field:

- rollback sets it to 0, which pins all traffic on the previous rolled-out revision (also after a
  promotion: KServe then routes to the revision rolled out before the latest);
- promote removes it, which sends all traffic to the latest ready revision, and KServe records
  that revision as the rolled-out one.

The plan carries the split before and after (``backend.fleet.traffic``, the numbers the console
shows), so the operator reviews where the traffic will go, not only the field, and how the
revision taking the traffic differs from the one giving it up (image, model URI, args, env,
resources, annotations: ``template_diff``), read from the Deployment Knative keeps for each
revision. When that is gone the plan says so (``template_unknown``, also a warning): KServe keeps
no earlier predictor spec, and a guessed diff would be worse than none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.changes.kube import ClusterClient, JsonObject, KubeError, ObjectRef
from backend.changes.plan import FieldChange, ObjectChange, Plan, json_pointer
from backend.changes.request import ChangeInvalid
from backend.changes.revisions import template_diff
from backend.changes.rollout import namespace_tenants, required_string
from backend.fleet.objects import dig, text
from backend.fleet.traffic import (
    canary_percent,
    planned_split,
    previous_rolled_out,
    traffic_split,
)
from backend.k8s.revisions import (
    KNATIVE_REVISION_LABEL,
    knative_revision_template,
    unknown_template,
)
from backend.schemas import TrafficSplit

CANARY_PATH = json_pointer("spec", "predictor", "canaryTrafficPercent")


def inference_service_ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef(
        "serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService", namespace, name
    )


def _read(parameters: Mapping[str, Any], cluster: ClusterClient) -> tuple[ObjectRef, JsonObject]:
    ref = inference_service_ref(
        required_string(parameters, "namespace"), required_string(parameters, "name")
    )
    try:
        return ref, cluster.get(ref)
    except KubeError as exc:
        if exc.status == 404:
            raise ChangeInvalid(str(exc)) from exc
        raise


def _revision_template(cluster: ClusterClient, namespace: str, revision: str) -> JsonObject | None:
    deployments = cluster.list(
        ObjectRef("apps", "v1", "deployments", "Deployment", namespace, ""),
        label_selector=f"{KNATIVE_REVISION_LABEL}={revision}",
    )
    return knative_revision_template(deployments, revision)


def _with_template_diff(
    plan: Plan, cluster: ClusterClient, namespace: str, current: str | None, target: str
) -> Plan:
    """The plan with how ``target``'s pod template differs from ``current``'s, or why that is
    not known."""
    details = plan.details
    details["template_from"], details["template_to"] = current, target
    if current is None:
        why = f"no other rolled-out revision to compare {target} with"
    else:
        before = _revision_template(cluster, namespace, current)
        after = _revision_template(cluster, namespace, target)
        if before is not None and after is not None:
            diff = template_diff(before, after)
            details["template_diff"] = [d.model_dump(mode="json") for d in diff]
            return plan
        why = unknown_template(namespace, current if before is None else target)
    details["template_diff"] = None
    details["template_unknown"] = why
    plan.warnings.append(why)
    return plan


def _split(split: TrafficSplit | None) -> dict[str, Any] | None:
    return None if split is None else split.model_dump(mode="json")


def _plan(
    action: str, ref: ObjectRef, isvc: JsonObject, cluster: ClusterClient, after: int | None
) -> Plan:
    """The plan that sets ``canaryTrafficPercent`` to ``after`` (None: removes it)."""
    before = dig(isvc, "spec", "predictor", "canaryTrafficPercent")
    predictor = dig(isvc, "status", "components", "predictor") or {}
    rv = str(dig(isvc, "metadata", "resourceVersion") or "")
    return Plan(
        action=action,
        target=str(ref),
        tenants=namespace_tenants(cluster, ref.namespace or ""),
        parameters={"namespace": ref.namespace, "name": ref.name},
        objects=[ObjectChange(ref, rv, (FieldChange(CANARY_PATH, before, after),))],
        details={
            "canary_before": before,
            "canary_after": after,
            "latest_revision": text(predictor.get("latestReadyRevision")),
            "latest_created_revision": text(predictor.get("latestCreatedRevision")),
            "previous_revision": previous_rolled_out(isvc),
            "traffic_before": _split(traffic_split(isvc)),
            "traffic_after": _split(planned_split(isvc, after)),
        },
    )


class InferenceServiceRollback:
    """Parameters: ``namespace``, ``name``. All traffic back to the previous rolled-out revision."""

    action = "isvc.rollback"

    def plan(self, parameters: Mapping[str, Any], cluster: ClusterClient) -> Plan:
        ref, isvc = _read(parameters, cluster)
        previous = previous_rolled_out(isvc)
        if previous is None:
            raise ChangeInvalid(
                f'no previous rolled-out revision for inferenceservice "{ref.name}": '
                "nothing to roll back to"
            )
        plan = _plan(self.action, ref, isvc, cluster, 0)
        plan.details["target_revision"] = previous
        if canary_percent(isvc) == 0:
            plan.objects = []
            plan.noop = f"already rolled back: all traffic goes to {previous}"
        latest = text(dig(isvc, "status", "components", "predictor", "latestReadyRevision"))
        return _with_template_diff(plan, cluster, ref.namespace or "", latest, previous)


class InferenceServicePromote:
    """Parameters: ``namespace``, ``name``. All traffic to the latest ready revision."""

    action = "isvc.promote"

    def plan(self, parameters: Mapping[str, Any], cluster: ClusterClient) -> Plan:
        ref, isvc = _read(parameters, cluster)
        canary = canary_percent(isvc)
        predictor = dig(isvc, "status", "components", "predictor") or {}
        latest = text(predictor.get("latestReadyRevision"))
        if canary is None or canary == 100:
            raise ChangeInvalid(
                f'inferenceservice "{ref.name}" is not in a canary: all traffic already goes '
                f"to the latest ready revision{f' {latest}' if latest else ''}"
            )
        if latest is None:
            raise ChangeInvalid(f'inferenceservice "{ref.name}" has no ready revision to promote')
        plan = _plan(self.action, ref, isvc, cluster, None)
        plan.details["target_revision"] = latest
        created = text(predictor.get("latestCreatedRevision"))
        if created and created != latest:
            plan.warnings.append(
                f"the newest revision {created} is not ready: promoting sends all traffic to "
                f"{latest}, the latest ready one"
            )
        previous = previous_rolled_out(isvc)
        return _with_template_diff(plan, cluster, ref.namespace or "", previous, latest)
