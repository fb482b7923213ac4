"""Rollout progress read as ``kubectl rollout status`` reads a Deployment, and as KServe routes an
InferenceService's traffic."""

from __future__ import annotations

from typing import Any

import pytest

from backend.fleet.rollout import deployment_progress, inference_service_progress
from backend.fleet.traffic import planned_split, traffic_split


def deployment(generation: int = 2, desired: int = 3, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "generation": generation},
        "spec": {"replicas": desired},
        "status": {"observedGeneration": 2, **status},
    }


@pytest.mark.parametrize(
    ("obj", "done", "stuck", "message"),
    [
        (deployment(generation=3), False, False,
         "Waiting for deployment spec update to be observed"),
        (deployment(updatedReplicas=1, replicas=3), False, False,
         'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated'),
        (deployment(updatedReplicas=3, replicas=5), False, False,
         'Waiting for deployment "web" rollout to finish: 2 old replicas are pending termination'),
        (deployment(updatedReplicas=3, replicas=3, availableReplicas=2), False, False,
         'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available'),
        (deployment(updatedReplicas=3, replicas=3, availableReplicas=3, readyReplicas=3), True,
         False, 'deployment "web" successfully rolled out'),
        (deployment(updatedReplicas=1, conditions=[
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]),
         False, True, 'deployment "web" exceeded its progress deadline'),
    ],
)  # fmt: skip
def test_deployment_progress_in_kubectls_words(
    obj: dict[str, Any], done: bool, stuck: bool, message: str
) -> None:
    progress = deployment_progress(obj)
    assert (progress.done, progress.stuck, progress.message) == (done, stuck, message)
    assert progress.desired == 3


def isvc(canary: int | None, traffic: list[dict[str, Any]], ready: bool = True) -> dict[str, Any]:
    predictor: dict[str, Any] = {"model": {}}
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    return {
        "metadata": {"name": "chat"},
        "spec": {"predictor": predictor},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "components": {
                "predictor": {
                    "latestCreatedRevision": "chat-3",
                    "latestReadyRevision": "chat-3",
                    "latestRolledoutRevision": "chat-2",
                    "previousRolledoutRevision": "chat-1",
                    "traffic": traffic,
                }
            },
        },
    }


CANARY = [
    {"revisionName": "chat-3", "percent": 10, "latestRevision": True, "tag": "latest"},
    {"revisionName": "chat-2", "percent": 90, "latestRevision": False, "tag": "prev"},
]


def test_inference_service_progress_follows_the_routed_traffic() -> None:
    obj = isvc(10, CANARY)
    progress = inference_service_progress(obj, traffic_split(obj), 2, 2, 1)
    assert progress.done and progress.message == "canary: 10% to chat-3, 90% to chat-2"
    # Rolled back in the spec, not yet routed: under way.
    obj = isvc(0, CANARY)
    progress = inference_service_progress(obj, traffic_split(obj), 2, 2, 1)
    assert not progress.done and progress.message == "10% of traffic on chat-3, 0% asked"
    assert (progress.latest_traffic_percent, progress.target_traffic_percent) == (10, 0)


def test_the_planned_split_of_a_rollback_and_a_promotion() -> None:
    obj = isvc(10, CANARY)
    rollback = planned_split(obj, 0)
    assert rollback is not None and not rollback.observed
    assert [(r.revision, r.percent) for r in rollback.revisions] == [("chat-3", 0), ("chat-2", 100)]
    promote = planned_split(obj, None)
    assert promote is not None
    assert [(r.revision, r.percent) for r in promote.revisions] == [("chat-3", 100)]
