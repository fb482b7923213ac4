"""The traffic split of a KServe InferenceService, from the upstream canary sample and its edges.

The sample (/work/shared/samples/kserve-inferenceservice-canary.yaml) is the KServe docs' canary:
``canaryTrafficPercent: 10`` and no status. Each test gives it the status KServe writes at one
point of a rollout (or none), as the backend would read it from the cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from backend.fleet.traffic import traffic_split
from backend.schemas import RevisionTraffic, TrafficSplit

SAMPLE = Path("/work/shared/samples/kserve-inferenceservice-canary.yaml")
REV1 = "sklearn-iris-predictor-00001"
REV2 = "sklearn-iris-predictor-00002"
REV3 = "sklearn-iris-predictor-00003"


def sample(canary: int | None = 10, **predictor_status: Any) -> dict[str, Any]:
    """The sample with ``canaryTrafficPercent`` set (None: removed) and the predictor's status."""
    isvc: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    if canary is None:
        isvc["spec"]["predictor"].pop("canaryTrafficPercent")
    else:
        isvc["spec"]["predictor"]["canaryTrafficPercent"] = canary
    if predictor_status:
        isvc["status"] = {"components": {"predictor": predictor_status}}
    return isvc


def target(name: str | None, percent: int, tag: str | None, latest: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"latestRevision": latest, "percent": percent}
    if name is not None:
        entry["revisionName"] = name
    if tag is not None:
        entry["tag"] = tag
    return entry


def shares(split: TrafficSplit | None) -> list[tuple[str | None, int, bool]]:
    assert split is not None
    return [(r.revision, r.percent, r.latest) for r in split.revisions]


MID_CANARY = {  # what KServe writes during the sample's canary (its docs show this status)
    "latestCreatedRevision": REV2,
    "latestReadyRevision": REV2,
    "latestRolledoutRevision": REV1,
    "previousRolledoutRevision": REV1,
}


def test_the_sample_during_its_canary_follows_status_traffic() -> None:
    isvc = sample(
        10,
        **MID_CANARY,
        traffic=[target(REV2, 10, "latest", True), target(REV1, 90, "prev", False)],
    )
    split = traffic_split(isvc)
    assert split == TrafficSplit(
        observed=True,
        revisions=[
            RevisionTraffic(revision=REV2, percent=10, tag="latest", latest=True),
            RevisionTraffic(revision=REV1, percent=90, tag="prev", latest=False),
        ],
    )


def test_the_sample_without_traffic_in_status_is_derived_from_the_spec() -> None:
    split = traffic_split(sample(10, **MID_CANARY))
    assert split is not None and not split.observed
    assert shares(split) == [(REV2, 10, True), (REV1, 90, False)]


def test_no_status_yet_splits_by_the_spec_with_unnamed_revisions() -> None:
    split = traffic_split(sample(10))
    assert split is not None and not split.observed
    assert shares(split) == [(None, 10, True), (None, 90, False)]


def test_no_status_and_no_canary_says_nothing() -> None:
    assert traffic_split(sample(None)) is None


def test_no_canary_sends_everything_to_the_latest_revision_once_rolled_out() -> None:
    status = {**MID_CANARY, "latestRolledoutRevision": REV2}
    assert shares(traffic_split(sample(None, **status))) == [(REV2, 100, True)]
    observed = traffic_split(sample(None, **status, traffic=[target(REV2, 100, None, True)]))
    assert observed is not None and observed.observed
    assert shares(observed) == [(REV2, 100, True)]


def test_no_previous_revision_sends_everything_to_the_latest() -> None:
    """The first rollout: KServe ignores the canary until a revision has been rolled out."""
    first = {"latestCreatedRevision": REV1, "latestReadyRevision": REV1}
    assert shares(traffic_split(sample(10, **first))) == [(REV1, 100, True)]


def test_canary_zero_pins_the_previous_revision() -> None:
    assert shares(traffic_split(sample(0, **MID_CANARY))) == [(REV2, 0, True), (REV1, 100, False)]
    routed = [target(REV2, 0, "latest", True), target(REV1, 100, "prev", False)]
    assert shares(traffic_split(sample(0, **MID_CANARY, traffic=routed))) == [
        (REV2, 0, True),
        (REV1, 100, False),
    ]


def test_canary_100_is_a_promotion() -> None:
    assert shares(traffic_split(sample(100, **MID_CANARY))) == [(REV2, 100, True)]
    promoted = {**MID_CANARY, "latestRolledoutRevision": REV2}
    assert shares(traffic_split(sample(100, **promoted))) == [(REV2, 100, True)]
    assert shares(traffic_split(sample(150, **promoted))) == [(REV2, 100, True)]  # capped


def test_status_traffic_wins_when_it_disagrees_with_the_spec() -> None:
    """The operator moved the canary to 50%; Knative still routes 10/90 until KServe catches up."""
    routed = [target(REV1, 90, "prev", False), target(REV2, 10, "latest", True)]
    split = traffic_split(sample(50, **MID_CANARY, traffic=routed))
    assert split is not None and split.observed
    assert shares(split) == [(REV2, 10, True), (REV1, 90, False)]  # the latest route first


def test_a_rolled_out_revision_after_a_promotion_is_the_previous_one() -> None:
    """Promoted to 00002, then a canary of 00003: the rest goes to the rolled-out 00002."""
    status = {
        "latestCreatedRevision": REV3,
        "latestReadyRevision": REV3,
        "latestRolledoutRevision": REV2,
        "previousRolledoutRevision": REV1,
    }
    assert shares(traffic_split(sample(20, **status))) == [(REV3, 20, True), (REV2, 80, False)]
    # Rolled back after the promotion of 00003: the previously rolled-out 00002 takes the rest.
    promoted = {**status, "latestRolledoutRevision": REV3, "previousRolledoutRevision": REV2}
    assert shares(traffic_split(sample(0, **promoted))) == [(REV3, 0, True), (REV2, 100, False)]


def test_untagged_and_unnamed_status_entries() -> None:
    """Without tag routing the entries carry no tag; the latest route may omit its name."""
    routed = [target(None, 30, None, True), {"revisionName": REV1, "percent": 70}]
    split = traffic_split(sample(30, **MID_CANARY, traffic=routed))
    assert split is not None
    assert [(r.revision, r.percent, r.tag, r.latest) for r in split.revisions] == [
        (REV2, 30, None, True),
        (REV1, 70, None, False),
    ]
