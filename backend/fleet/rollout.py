"""How far a release's rollout has got: the progress the console and ``--wait`` follow.

Deployments are read exactly as ``kubectl rollout status`` reads them (its ``Status`` in
``polymorphichelpers/rollout_status.go``): the spec must be observed, every replica updated, no
old replica left, every updated one available; a ``Progressing`` condition with reason
``ProgressDeadlineExceeded`` means the rollout passed its ``progressDeadlineSeconds`` and is stuck
(the controller stops trying to judge it, kubectl gives up). InferenceServices are done when
KServe routes what the spec asks: the latest ready revision gets ``canaryTrafficPercent`` (100
without one) and the service is Ready.
"""

from __future__ import annotations

from backend.fleet.index import Obj
from backend.fleet.objects import condition, condition_true, count, dig, mapping, optional_count
from backend.fleet.objects import text as text_of
from backend.fleet.traffic import canary_percent, previous_rolled_out
from backend.schemas import RolloutProgress, TrafficSplit

DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


def deployment_progress(obj: Obj) -> RolloutProgress:
    """``kubectl rollout status deployment/<name>``, as data."""
    spec, status = mapping(obj.get("spec")), mapping(obj.get("status"))
    name = text_of(dig(obj, "metadata", "name")) or ""
    desired = count(spec.get("replicas"), default=1)
    updated = optional_count(status.get("updatedReplicas")) or 0
    total = optional_count(status.get("replicas")) or 0
    available = optional_count(status.get("availableReplicas")) or 0
    progress = RolloutProgress(
        desired=desired,
        updated=updated,
        ready=optional_count(status.get("readyReplicas")) or 0,
        available=available,
        done=False,
    )
    generation = optional_count(dig(obj, "metadata", "generation")) or 0
    observed = optional_count(status.get("observedGeneration")) or 0
    if generation > observed:
        progress.message = "Waiting for deployment spec update to be observed"
        return progress
    progressing = condition(obj, "Progressing")
    if progressing is not None and progressing.get("reason") == DEADLINE_EXCEEDED:
        progress.stuck = True
        progress.message = f'deployment "{name}" exceeded its progress deadline'
    elif updated < desired:
        progress.message = (
            f'Waiting for deployment "{name}" rollout to finish: {updated} out of {desired} new '
            "replicas have been updated"
        )
    elif total > updated:
        progress.message = (
            f'Waiting for deployment "{name}" rollout to finish: {total - updated} old replicas '
            "are pending termination"
        )
    elif available < updated:
        progress.message = (
            f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} '
            "updated replicas are available"
        )
    else:
        progress.done = True
        progress.message = f'deployment "{name}" successfully rolled out'
    return progress


def inference_service_progress(
    obj: Obj, split: TrafficSplit | None, desired: int, ready: int, updated: int
) -> RolloutProgress:
    """Whether KServe routes what the spec asks, and to which revision."""
    predictor = mapping(dig(obj, "status", "components", "predictor"))
    latest = text_of(predictor.get("latestReadyRevision"))
    created = text_of(predictor.get("latestCreatedRevision"))
    canary = canary_percent(obj)
    target = 100 if canary is None else canary
    observed = split is not None and split.observed
    share = sum(r.percent for r in split.revisions if r.latest) if observed and split else None
    progress = RolloutProgress(
        desired=desired,
        updated=updated,
        ready=ready,
        available=ready,
        latest_traffic_percent=share,
        target_traffic_percent=target,
        done=False,
    )
    if share is None:
        progress.message = "waiting for KServe to route traffic"
    elif target > 0 and created and created != latest:
        progress.message = f"waiting for revision {created} to become ready"
    elif share != target:
        progress.message = f"{share}% of traffic on {latest or 'the latest'}, {target}% asked"
    elif not condition_true(obj, "Ready"):
        progress.message = "waiting for the InferenceService to become Ready"
    else:
        progress.done = True
        progress.message = _routed(target, latest, previous_rolled_out(obj))
    return progress


def _routed(target: int, latest: str | None, previous: str | None) -> str:
    if target == 100:
        return f"all traffic to {latest}"
    if target == 0:
        return f"rolled back: all traffic to {previous or 'the previous revision'}"
    return f"canary: {target}% to {latest}, {100 - target}% to {previous or 'the previous'}"
