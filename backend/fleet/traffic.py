"""How a KServe InferenceService's requests are split between its revisions.

KServe (serverless mode) routes ``spec.predictor.canaryTrafficPercent: P`` as P% to the latest
ready revision (the "latest" route) and 100-P% to the revision rolled out before it (tag ``prev``);
P = 0 pins that previous revision (a rollback), no P (or 100) sends everything to the latest. What
Knative really routes is in ``status.components.predictor.traffic[]``: when it is there it is the
answer, even while it still disagrees with the spec (the controller has not caught up yet). Before
KServe has written it, the split is derived from the spec and the rolled-out revisions it names.

Computed here, not in a view, so that a rollback works from the same numbers an operator sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.fleet.index import Obj
from backend.fleet.objects import dig, mapping, optional_count, sequence, text
from backend.schemas import RevisionTraffic, TrafficSplit

LATEST_TAG = "latest"
PREVIOUS_TAG = "prev"


def traffic_split(isvc: Obj) -> TrafficSplit | None:
    """The split of an InferenceService's traffic; None when neither status nor spec says one."""
    predictor = mapping(dig(isvc, "status", "components", "predictor"))
    observed = [_observed(entry, predictor) for entry in sequence(predictor.get("traffic"))]
    if observed:
        revisions = sorted(observed, key=lambda r: not r.latest)  # the latest route first
        return TrafficSplit(observed=True, revisions=revisions)
    return _split_from_spec(canary_percent(isvc), predictor)


def _split_from_spec(canary: int | None, predictor: Mapping[str, Any]) -> TrafficSplit | None:
    revisions = _from_spec(canary, predictor)
    return TrafficSplit(observed=False, revisions=revisions) if revisions else None


def planned_split(isvc: Obj, canary: int | None) -> TrafficSplit | None:
    """The split KServe routes once ``spec.predictor.canaryTrafficPercent`` is ``canary`` (None:
    removed), from the revisions the status names now: what a rollback or a promotion will do."""
    return _split_from_spec(canary, mapping(dig(isvc, "status", "components", "predictor")))


def previous_rolled_out(isvc: Obj) -> str | None:
    """The revision a canary's remaining traffic (tag ``prev``) goes to: the rolled-out one, or,
    once the latest ready revision is the rolled-out one (promoted), the one rolled out before."""
    return _previous(mapping(dig(isvc, "status", "components", "predictor")))


def _previous(predictor: Mapping[str, Any]) -> str | None:
    rolled_out = text(predictor.get("latestRolledoutRevision"))
    if rolled_out is not None and rolled_out != _latest_ready(predictor):
        return rolled_out
    return text(predictor.get("previousRolledoutRevision"))


def canary_percent(isvc: Obj) -> int | None:
    """``spec.predictor.canaryTrafficPercent`` (at most 100), None when not set."""
    percent = optional_count(dig(isvc, "spec", "predictor", "canaryTrafficPercent"))
    return None if percent is None else min(percent, 100)


def _observed(entry: Any, predictor: Mapping[str, Any]) -> RevisionTraffic:
    """One ``traffic[]`` entry; the latest route may leave its revision name to the status."""
    entry = mapping(entry)
    tag = text(entry.get("tag"))
    latest_ready = _latest_ready(predictor)
    name = text(entry.get("revisionName"))
    flag = entry.get("latestRevision")
    if isinstance(flag, bool):
        is_latest = flag
    else:
        is_latest = tag == LATEST_TAG or (name is not None and name == latest_ready)
    if name is None and is_latest:
        name = latest_ready
    return RevisionTraffic(
        revision=name, percent=optional_count(entry.get("percent")) or 0, tag=tag, latest=is_latest
    )


def _from_spec(canary: int | None, predictor: Mapping[str, Any]) -> list[RevisionTraffic]:
    """The split the spec asks for, with the revisions the status names (None when unnamed)."""
    latest = _latest_ready(predictor)
    rolled_out = text(predictor.get("latestRolledoutRevision"))
    if canary is None or canary == 100:  # promoted: the latest ready becomes the rolled-out one
        name = text(predictor.get("latestReadyRevision")) or rolled_out or latest
        return [RevisionTraffic(revision=name, percent=100, latest=True)] if name else []
    previous = _previous(predictor)
    if predictor and previous is None:  # nothing rolled out yet: KServe sends all to the latest
        return [RevisionTraffic(revision=latest, percent=100, latest=True)]
    return [
        RevisionTraffic(revision=latest, percent=canary, latest=True),
        RevisionTraffic(revision=previous, percent=100 - canary, latest=False),
    ]


def _latest_ready(predictor: Mapping[str, Any]) -> str | None:
    """The revision Knative's "latest" route goes to: the latest ready one, else the newest."""
    return text(predictor.get("latestReadyRevision")) or text(
        predictor.get("latestCreatedRevision")
    )


def revision_traffic(split: TrafficSplit | None) -> dict[str, RevisionTraffic]:
    """Each named revision's share, for the revision history (what is routed only; a revision
    routed twice shows its last entry)."""
    if split is None or not split.observed:
        return {}
    return {entry.revision: entry for entry in split.revisions if entry.revision is not None}
