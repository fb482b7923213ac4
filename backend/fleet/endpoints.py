"""Endpoint health: request rate, error rate and latency quantiles of each model Deployment and
InferenceService, overall and per revision, for each of the last telemetry rounds.

The input is per-pod traffic (``backend.telemetry.inference``). A pod is joined to its workload
and revision through the cluster index: pods that exist by their owner, pods already gone (a
rollback replaced them) by their ReplicaSet, which the Deployment keeps in its history; so the
sparklines still show what the replaced revision did. The figures shown cover the snapshot's
newest ``summary_rounds`` (the configured window), each pod's windows summed before the pods are;
the history has one value per round. Quantiles are computed from the summed
histogram buckets as Prometheus's ``histogram_quantile()`` computes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from backend.conventions import ISVC_LABEL, SLO_P99_ANNOTATION
from backend.fleet.detail import pod_revision, rs_revision
from backend.fleet.index import ClusterIndex, ObjectKey
from backend.fleet.objects import dig, labels, name_of, pod_kserve_revision, trailing_number
from backend.fleet.traffic import revision_traffic, traffic_split
from backend.fleet.workloads import WorkloadRecord
from backend.schemas import (
    EndpointHealth,
    HealthHistory,
    RequestStats,
    RevisionHealth,
    WorkloadKind,
)

QUANTILES = (0.5, 0.95, 0.99)
WORST_SHOWN = 5


class TrafficLike(Protocol):
    """A pod's traffic over one window (``backend.telemetry.inference.PodTraffic``)."""

    @property
    def seconds(self) -> float: ...
    @property
    def requests(self) -> float: ...
    @property
    def errors(self) -> float: ...
    @property
    def buckets(self) -> Sequence[tuple[float, float]]: ...


class RoundLike(Protocol):
    @property
    def at(self) -> float: ...
    @property
    def pods(self) -> Mapping[tuple[str, str], TrafficLike]: ...
    @property
    def memo(self) -> dict[str, Any]: ...


class InferenceLike(Protocol):
    @property
    def rounds(self) -> Sequence[RoundLike]: ...
    @property
    def summary_rounds(self) -> int: ...


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus's ``histogram_quantile``: linear interpolation inside the bucket holding the
    rank; the highest finite bound when the rank falls into the +Inf bucket; None without
    observations."""
    if not buckets or not math.isinf(buckets[-1][0]) or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return None  # pragma: no cover - the +Inf bucket always holds the rank


def request_stats(traffic: Iterable[TrafficLike]) -> RequestStats:
    """Requests of several pods over one window, summed."""
    return summed_stats([[pod] for pod in traffic])


def summed_stats(pods: Iterable[Sequence[TrafficLike]]) -> RequestStats:
    """Requests of several pods, each over one or more windows: a pod's rate is its requests
    over its seconds; the endpoint's is the sum of its pods' rates."""
    rate = requests = errors = 0.0
    buckets: dict[float, float] = {}
    seen = False
    for windows in pods:
        seconds = sum(w.seconds for w in windows)
        served = sum(w.requests for w in windows)
        seen = seen or bool(windows)
        if seconds > 0:
            rate += served / seconds
        requests += served
        errors += sum(w.errors for w in windows)
        for window in windows:
            for le, count in window.buckets:
                buckets[le] = buckets.get(le, 0.0) + count
    if not seen:
        return RequestStats()
    # No requests, no latency: a histogram scraped a moment apart from the request counter
    # (queue-proxy and the model server are two targets) may still have moved a little.
    ordered = sorted(buckets.items()) if requests > 0 else []
    p50, p95, p99 = (histogram_quantile(q, ordered) for q in QUANTILES)
    return RequestStats(
        request_rate=rate,
        error_rate=errors / requests if requests > 0 else None,
        p50_seconds=p50,
        p95_seconds=p95,
        p99_seconds=p99,
    )


def _history(stats: list[RequestStats]) -> HealthHistory:
    return HealthHistory(
        request_rate=[s.request_rate for s in stats],
        error_rate=[s.error_rate for s in stats],
        p99_seconds=[s.p99_seconds for s in stats],
    )


Owner = tuple[ObjectKey, str | None]  # (workload key, revision)
ByName = dict[tuple[str, str], ObjectKey]  # (namespace, name) -> workload key


class Owners(Protocol):
    """``namespace/pod`` or ``namespace/replicaset`` -> the endpoint and revision it serves."""

    def get(self, name: str, /) -> Owner | None: ...


def pod_owners(
    records: Iterable[WorkloadRecord], index: ClusterIndex, *, revisions: bool = True
) -> dict[str, Owner]:
    """``namespace/pod`` and ``namespace/replicaset`` -> the endpoint and revision they serve
    (the revision None without ``revisions``: which endpoint is all that is asked). A name
    that is both is the ReplicaSet's, when it serves one of ``records``."""
    records = list(records)
    owners: dict[str, Owner] = {}
    deployments, isvcs = _by_name(records)
    for record in records:
        ns = record.row.namespace
        record_key = record.key
        for pod in record.pods:
            revision = pod_revision(pod, index) if revisions else None
            owners[f"{ns}/{name_of(pod)}"] = (record_key, revision)
    for (ns, rs_name), rs in index.replicasets.items():
        owner = _replicaset_owner(rs, ns, deployments, isvcs, revisions)
        if owner is not None:
            owners[f"{ns}/{rs_name}"] = owner
    return owners


class Claims:
    """What ``pod_owners(endpoints, index, revisions=False)`` says of a name, worked out for
    the names asked only. An update asks about the pods of the few endpoints it recomputes;
    the whole map cost a pass over every endpoint's pods and every ReplicaSet (most of a pod's
    update on a large fleet). ``holders`` is the fleet's (namespace, pod) -> the workloads
    whose records hold it (``backend.fleet.workloads.pod_holders``)."""

    def __init__(
        self,
        endpoints: list[WorkloadRecord],
        index: ClusterIndex,
        holders: Mapping[tuple[str, str], set[ObjectKey]],
    ) -> None:
        self.index = index
        self.holders = holders
        self.order = {record.key: i for i, record in enumerate(endpoints)}
        self.deployments, self.isvcs = _by_name(endpoints)

    def get(self, name: str, /) -> Owner | None:
        ns, _, short = name.partition("/")
        rs = self.index.replicasets.get((ns, short))
        if rs is not None:
            owner = _replicaset_owner(rs, ns, self.deployments, self.isvcs, False)
            if owner is not None:
                return owner
        held = [key for key in self.holders.get((ns, short), ()) if key in self.order]
        # As in pod_owners: of several endpoints holding a pod, the last one listed.
        return (max(held, key=self.order.__getitem__), None) if held else None


def _by_name(records: Iterable[WorkloadRecord]) -> tuple[ByName, ByName]:
    """The Deployments' and the InferenceServices' keys by (namespace, name)."""
    deployments: ByName = {}
    isvcs: ByName = {}
    for record in records:
        named = deployments if record.row.kind == WorkloadKind.DEPLOYMENT else isvcs
        named[(record.row.namespace, record.row.name)] = record.key
    return deployments, isvcs


def _replicaset_owner(
    rs: Any, ns: str, deployments: ByName, isvcs: ByName, revisions: bool
) -> Owner | None:
    """The endpoint a ReplicaSet serves: the InferenceService it is labelled with, else the
    (last) Deployment among its owners; and its revision, with ``revisions``."""
    isvc = isvcs.get((ns, labels(rs).get(ISVC_LABEL) or ""))
    if isvc is not None:
        return isvc, pod_kserve_revision(rs) if revisions else None
    owner = None
    for ref in dig(rs, "metadata", "ownerReferences") or ():
        key = deployments.get((ns, str(ref.get("name"))))
        if ref.get("kind") == "Deployment" and key is not None:
            owner = key, str(rs_revision(rs)) if revisions else None
    return owner


def _owner(owners: Owners, namespace: str, pod: str) -> Owner | None:
    """By the pod's name, or its ReplicaSet's (``<replicaset>-<suffix>``) once it is gone."""
    return owners.get(f"{namespace}/{pod}") or owners.get(f"{namespace}/{pod.rsplit('-', 1)[0]}")


def is_endpoint(record: WorkloadRecord) -> bool:
    """Model Deployments (labelled with a model) and InferenceServices serve requests."""
    kind = record.row.kind
    return kind == WorkloadKind.INFERENCE_SERVICE or (
        kind == WorkloadKind.DEPLOYMENT and record.row.model is not None
    )


# per round: workload key -> revision -> pod -> its traffic that round
# One round's pods by endpoint and revision: workload key -> revision -> pod -> traffic.
RoundPods = dict[ObjectKey, dict[str | None, dict[str, TrafficLike]]]
# One round's figures: workload key -> (the endpoint's, each revision's).
RoundFigures = dict[ObjectKey, tuple[RequestStats, dict[str | None, RequestStats]]]
MEMO_KEY = "endpoint-figures"
NOTHING = RequestStats()


def build_endpoints(
    records: Iterable[WorkloadRecord],
    index: ClusterIndex,
    inference: InferenceLike | None,
    holders: Mapping[tuple[str, str], set[ObjectKey]],
    kept: Mapping[ObjectKey, EndpointHealth] | None = None,
) -> list[EndpointHealth]:
    """Every endpoint's health, worst first (see ``worst_first``).

    A round's figures are computed once, when a model first sees the round, and kept in the
    round's ``memo``: the history then costs a lookup per round, not a recomputation per model
    (a large fleet rebuilds its model every few seconds). ``kept`` holds the endpoints of a
    previous model with the same traffic whose records did not change: they are taken as they
    are, and only the others are computed (a change to one Deployment recomputes one endpoint,
    not the fleet's thousands)."""
    kept = kept or {}
    endpoints = [r for r in records if is_endpoint(r)]
    computed = [r for r in endpoints if r.key not in kept]
    rounds = list(inference.rounds) if inference is not None else []
    summary = inference.summary_rounds if inference is not None else 1
    # Which endpoint and revision each pod serves places a round's traffic; with no round yet
    # (the first models after a start, or the model servers' metrics off) nothing is placed.
    owners = pod_owners(computed, index) if rounds else {}
    every_owner: dict[str, Owner] | None = owners if len(computed) == len(endpoints) else None
    figures: list[RoundFigures] = []
    for round_ in rounds:
        memo = round_.memo.get(MEMO_KEY)
        if memo is None:
            if every_owner is None:
                every_owner = pod_owners(endpoints, index)
            memo = round_.memo[MEMO_KEY] = _round_figures(_round_pods(round_, every_owner))
        figures.append(memo)
    # The pods of the endpoints computed here, placed as among every endpoint's pods.
    claims: Owners | None = None
    if rounds and len(computed) < len(endpoints):
        claims = every_owner or Claims(endpoints, index, holders)
    recent = [_round_pods(r, owners, claims) for r in rounds[-summary:]] if computed else []
    measured = datetime.fromtimestamp(rounds[-1].at, UTC) if rounds else None
    out = [kept.get(r.key) or _endpoint(r, figures, recent, measured) for r in endpoints]
    out.sort(key=worst_first)
    return out


def _round_pods(
    round_: RoundLike,
    owners: Owners,
    claims: Owners | None = None,
) -> RoundPods:
    """The round's pods by endpoint and revision, as ``owners`` places them; with ``claims``
    (every endpoint's, when ``owners`` has only some of them) a pod is placed only if ``claims``
    gives it to the same endpoint, so a subset places a pod as the whole set would."""
    by_key: RoundPods = {}
    for (namespace, pod), traffic in round_.pods.items():
        owner = _owner(owners, namespace, pod)
        if claims is not None and owner is not None:
            claimed = _owner(claims, namespace, pod)
            owner = owner if claimed is not None and claimed[0] == owner[0] else None
        if owner is not None:
            by_key.setdefault(owner[0], {}).setdefault(owner[1], {})[pod] = traffic
    return by_key


def _round_figures(pods: RoundPods) -> RoundFigures:
    return {
        key: (
            request_stats(t for by_pod in revisions.values() for t in by_pod.values()),
            {name: request_stats(by_pod.values()) for name, by_pod in revisions.items()},
        )
        for key, revisions in pods.items()
    }


def _summary(per_round: Sequence[Mapping[str, TrafficLike]]) -> RequestStats:
    """Figures over several rounds: each pod's windows summed first."""
    by_pod: dict[str, list[TrafficLike]] = {}
    for pods in per_round:
        for pod, traffic in pods.items():
            by_pod.setdefault(pod, []).append(traffic)
    return summed_stats(by_pod.values())


def _endpoint(
    record: WorkloadRecord,
    figures: list[RoundFigures],
    recent: list[RoundPods],
    measured: datetime | None,
) -> EndpointHealth:
    row = record.row
    mine = [f.get(record.key, (NOTHING, {})) for f in figures]
    latest_pods = [r.get(record.key, {}) for r in recent]
    merged = [{pod: t for pods in r.values() for pod, t in pods.items()} for r in latest_pods]
    names = {name for _, by_revision in mine for name in by_revision if name is not None}
    split = traffic_split(record.obj) if row.kind == WorkloadKind.INFERENCE_SERVICE else None
    percents = {name: t.percent for name, t in revision_traffic(split).items()}
    revisions = []
    for name in sorted(names, key=trailing_number, reverse=True):
        revisions.append(
            RevisionHealth(
                **_summary([r.get(name, {}) for r in latest_pods]).model_dump(),
                revision=name,
                current=name == row.revision,
                traffic_percent=percents.get(name),
                history=_history([by_revision.get(name, NOTHING) for _, by_revision in mine]),
            )
        )
    return EndpointHealth(
        **_summary(merged).model_dump(),
        namespace=row.namespace,
        name=row.name,
        kind=row.kind,
        tenant=row.tenant,
        model=row.model,
        slo_p99_seconds=slo_p99_seconds(record.obj),
        measured_at=measured,
        history=_history([overall for overall, _ in mine]),
        revisions=revisions,
    )


def slo_p99_seconds(obj: Any) -> float | None:
    """The workload's p99 objective from its annotation; None when absent or not a positive
    number of seconds (an annotation anyone can write must not break the model)."""
    text = dig(obj, "metadata", "annotations", SLO_P99_ANNOTATION)
    try:
        value = float(text) if isinstance(text, str) else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def worst_first(endpoint: EndpointHealth) -> tuple[bool, float, float, str, str]:
    """Measured endpoints first; then the highest error rate, then the highest p99."""
    measured = endpoint.request_rate is not None and endpoint.request_rate > 0
    return (
        not measured,
        -(endpoint.error_rate or 0.0),
        -(endpoint.p99_seconds or 0.0),
        endpoint.namespace,
        endpoint.name,
    )


def worst_endpoints(endpoints: Iterable[EndpointHealth]) -> list[EndpointHealth]:
    """The overview's few: the worst endpoints with traffic, without their revisions."""
    shown = [e for e in endpoints if e.request_rate][:WORST_SHOWN]
    return [e.model_copy(update={"revisions": []}) for e in shown]
