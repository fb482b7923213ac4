"""The fleet model: one immutable picture of the fleet, kept current as its inputs change.

``build_fleet_model`` is a pure function of the cluster objects and a telemetry snapshot (and the
time): one indexing pass, then tenants, workloads, nodes, GPUs, problems and the overview, each in
linear time. ``update_fleet_model`` gives the same model from the previous one and the keys of
the objects that changed (and a new telemetry snapshot), recomputing only what those touch
(``backend.fleet.parts``); the previous model is left as it was, for the readers that hold it.
Every read endpoint answers from the result, so reads never touch Kubernetes and cost a lookup
plus one page of (cached) JSON.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

import orjson

from backend.fleet.detail import workload_detail
from backend.fleet.endpoints import InferenceLike, build_endpoints, is_endpoint, worst_endpoints
from backend.fleet.index import ObjectKey
from backend.fleet.inputs import ClusterObjects, NoTelemetry, TelemetryLike
from backend.fleet.nodes import GpuRules
from backend.fleet.objects import normalized_model
from backend.fleet.parts import ChangedKey, FleetParts, build_parts, update_parts
from backend.fleet.problems import (
    MAX_PROBLEMS,
    build_problems,
    fleet_hottest,
    fleet_idlest,
    fleet_totals,
    gpu_model_summaries,
    hottest,
    idlest,
    merge_problems,
    sort_problems,
    tenants_by_usage,
    workloads_by_status,
)
from backend.fleet.query import Filter, Table
from backend.fleet.quotas import model_totals
from backend.fleet.revisions import RevisionTemplates, revision_templates
from backend.fleet.workloads import WorkloadRecord
from backend.reads_first import give_way
from backend.schemas import (
    DataFreshness,
    EndpointHealth,
    Gpu,
    Node,
    Overview,
    Problem,
    QuotaModelTotal,
    QuotaRow,
    Tenant,
    Workload,
    WorkloadDetail,
    WorkloadKind,
    WorkloadStatus,
)

WORKLOAD_KINDS = {kind.value.lower(): kind for kind in WorkloadKind}
MAX_ANSWERS = 64


def _same(value: str) -> str:
    return value


class FleetModel:
    """Tenants, workloads, nodes and GPUs with their indexes; read-only once built."""

    def __init__(
        self,
        parts: FleetParts,
        *,
        built_at: float,
        previous: FleetModel | None = None,
        inference: InferenceLike | None = None,
    ) -> None:
        """The model of ``parts`` and the model servers' traffic (``inference``); ``previous``,
        a model of earlier parts, lends its tables the search text, filter keys and JSON of the
        rows the two share."""
        self.built_at = built_at
        self.rules = parts.rules
        self.parts = parts
        self._index = parts.index
        tenants = list(parts.tenants.values())
        records = list(parts.records.values())
        nodes, gpus = parts.node_rows, parts.gpus
        problems = self.problems = sort_problems(parts.problems)
        rows = [r.row for r in records]
        self.tenants: Table[Tenant] = _tenant_table(tenants, previous.tenants if previous else None)
        self.workloads: Table[Workload] = _workload_table(
            rows, previous.workloads if previous else None
        )
        self.nodes: Table[Node] = _node_table(nodes, previous.nodes if previous else None)
        give_way()
        self.gpus: Table[Gpu] = _gpu_table(gpus, previous.gpus if previous else None)
        give_way()
        self.inference = inference
        self.endpoints: Table[EndpointHealth]
        self._endpoints_by_key: dict[tuple[str, str, str], EndpointHealth]
        if previous is not None and _same_endpoints(previous, parts, inference):
            self.endpoints, self._endpoints_by_key = previous.endpoints, previous._endpoints_by_key
        else:
            kept = _kept_endpoints(previous, parts, inference)
            endpoints = build_endpoints(records, parts.index, inference, parts.holders, kept)
            self.endpoints = _endpoint_table(endpoints)
            self._endpoints_by_key = {(e.namespace, e.kind.value, e.name): e for e in endpoints}
            give_way()
        self._tenants_by_name = parts.tenants
        self._nodes_by_name = {n.name: n for n in nodes}
        self._records = parts.records
        # Details are built on first request and kept for the model's life (it is immutable).
        self._detail_json: dict[tuple[str, str, str], bytes | None] = {}
        sums = [part.sums for part in parts.nodes.values()]
        models = gpu_model_summaries(sums)
        pods = parts.index.live_pods
        self._overview: dict[str, Any] = {
            "totals": fleet_totals(nodes, sums, models, len(tenants), len(records), pods),
            "gpu_models": models,
            "tenants": tenants_by_usage(tenants),
            "workloads_by_status": workloads_by_status(rows),
            "hottest": fleet_hottest(sums),
            "idlest": fleet_idlest(sums),
            "problems": problems[:MAX_PROBLEMS],
            "worst_endpoints": worst_endpoints(self.endpoints.items),
        }
        self._overview_json: tuple[tuple[Problem, ...], bytes] | None = None
        self._scoped: dict[frozenset[str], ScopedFleet] = {}
        self._quota_rows = [row for rows_ in parts.quota_rows.values() for row in rows_]
        self._answers: dict[Hashable, bytes] = {}
        self._answers_lock = threading.Lock()  # answers are also rendered in worker threads
        self._asked: set[Hashable] = set()

    @classmethod
    def empty(cls, now: float | None = None) -> FleetModel:
        """The model of a cluster not listed yet (what the backend serves before its first sync)."""
        return build_fleet_model({}, None, now=now)

    def overview(self, freshness: DataFreshness) -> Overview:
        return Overview(**self._overview, freshness=freshness)

    def overview_json(self, freshness: DataFreshness, alerts: tuple[Problem, ...] = ()) -> bytes:
        """The overview's JSON with ``alerts`` (firing alerts) among its problems; everything
        but the freshness is serialised once per model and alerts tuple."""
        if self._overview_json is None or self._overview_json[0] is not alerts:
            body = _overview_json(_with_alerts(self._overview, self.problems, alerts))
            self._overview_json = (alerts, body)
        return _with_freshness(self._overview_json[1], freshness)

    def scoped(self, tenants: frozenset[str] | None) -> FleetModel | ScopedFleet:
        """What an actor limited to ``tenants`` may read (None: everything); built once per
        scope and model."""
        if tenants is None:
            return self
        view = self._scoped.get(tenants)
        if view is None:
            view = self._scoped[tenants] = ScopedFleet(self, tenants)
        return view

    def answer_json(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        """An answer derived from this model and ``key`` (what else it depends on), rendered
        once: many operators poll the same views. A few keys are kept (the newest)."""
        self._asked.add(key)
        return self._answers.get(key) or self._keep(key, render())

    def prerender(self, key: Hashable, render: Callable[[], bytes]) -> None:
        """Render an answer before any request asks for it (not counted as asked)."""
        if key not in self._answers:
            self._keep(key, render())

    def asked(self) -> list[Hashable]:
        """The keys requests asked ``answer_json`` for: the next model renders them again
        before it is published, while operators poll them."""
        return list(self._asked)

    def _keep(self, key: Hashable, body: bytes) -> bytes:
        with self._answers_lock:
            if len(self._answers) >= MAX_ANSWERS:
                self._answers.pop(next(iter(self._answers)))
            self._answers[key] = body
        return body

    def quota_waiting(self, namespace: str) -> list[tuple[Workload, int]]:
        """The namespace's workloads waiting for GPU quota and the GPUs each waits for, oldest
        first (the order in which their controllers' retries were refused)."""
        waiting = [
            (r.row, r.quota_pending_gpus)
            for r in self._records.values()
            if r.row.namespace == namespace and r.quota_pending_gpus > 0
        ]
        waiting.sort(key=lambda w: (w[0].created.isoformat() if w[0].created else "", w[0].name))
        return waiting

    def quota_rows(self) -> list[QuotaRow]:
        """The quota review's rows: tenant x GPU model."""
        return self._quota_rows

    def quota_models(self, oversubscription: float) -> list[QuotaModelTotal]:
        """Per GPU model: capacity, granted Kueue nominal quota and the limit."""
        return model_totals(self._index, self.quota_rows(), self.nodes.items, oversubscription)

    def tenant(self, name: str) -> Tenant | None:
        return self._tenants_by_name.get(name)

    def node(self, name: str) -> Node | None:
        return self._nodes_by_name.get(name)

    def workload(self, namespace: str, kind: str, name: str) -> WorkloadDetail | None:
        """A workload's detail; ``kind`` is case-insensitive (deployment, inferenceservice, job)."""
        workload_kind = WORKLOAD_KINDS.get(kind.lower())
        if workload_kind is None:
            return None
        record = self._records.get((namespace, workload_kind.value, name))
        if record is None:
            return None
        return workload_detail(record, self._index, self._endpoints_by_key.get(record.key))

    def revision_templates(
        self, namespace: str, kind: str, name: str, revision: str
    ) -> RevisionTemplates | None:
        """A workload's ``revision`` and current revision, as pod templates (None: no such
        workload or revision)."""
        workload_kind = WORKLOAD_KINDS.get(kind.lower())
        record = (
            self._records.get((namespace, workload_kind.value, name)) if workload_kind else None
        )
        return None if record is None else revision_templates(record, self.parts.cluster, revision)

    def workload_json(self, namespace: str, kind: str, name: str) -> bytes | None:
        """``workload()`` serialised, cached: operators poll the detail they are looking at."""
        key = (namespace, kind.lower(), name)
        if key not in self._detail_json:
            detail = self.workload(namespace, kind, name)
            self._detail_json[key] = (
                None if detail is None else detail.__pydantic_serializer__.to_json(detail)
            )
        return self._detail_json[key]


class ScopedFleet:
    """A model as an actor limited to some tenants sees it: the fleet's totals, nodes and GPU
    models, but only its tenants, their workloads, the GPUs that are free or held by them, and
    the problems of those. Reads like a FleetModel."""

    def __init__(self, model: FleetModel, tenants: frozenset[str]) -> None:
        self._model = model
        self.nodes = model.nodes
        mine = [t for t in model.tenants.items if t.name in tenants]
        self.tenants = _tenant_table(mine)
        self.workloads = _workload_table([w for w in model.workloads.items if w.tenant in tenants])
        gpus = [g for g in model.gpus.items if g.tenant in tenants or not g.allocated]
        self.gpus = _gpu_table(gpus)
        self.endpoints = _endpoint_table([e for e in model.endpoints.items if e.tenant in tenants])
        self._tenants_by_name = {t.name: t for t in mine}
        self._namespaces = {namespace for t in mine for namespace in t.namespaces}
        self._problems = build_problems(self.workloads.items, gpus, model.nodes.items, model.rules)
        self._overview = {
            **model._overview,
            "tenants": tenants_by_usage(mine),
            "hottest": hottest(gpus),
            "idlest": idlest(gpus),
            "problems": self._problems[:MAX_PROBLEMS],
            "worst_endpoints": worst_endpoints(self.endpoints.items),
        }
        self._overview_json: tuple[tuple[Problem, ...], bytes] = (
            (),
            _overview_json(self._overview),
        )

    def overview_json(self, freshness: DataFreshness, alerts: tuple[Problem, ...] = ()) -> bytes:
        if self._overview_json[0] is not alerts:
            body = _overview_json(_with_alerts(self._overview, self._problems, alerts))
            self._overview_json = (alerts, body)
        return _with_freshness(self._overview_json[1], freshness)

    def tenant(self, name: str) -> Tenant | None:
        return self._tenants_by_name.get(name)

    def node(self, name: str) -> Node | None:
        return self._model.node(name)

    def workload_json(self, namespace: str, kind: str, name: str) -> bytes | None:
        """The detail of one of its tenants' workloads; None for anyone else's."""
        if namespace not in self._namespaces:
            return None
        return self._model.workload_json(namespace, kind, name)

    def revision_templates(
        self, namespace: str, kind: str, name: str, revision: str
    ) -> RevisionTemplates | None:
        """Those of one of its tenants' workloads; None for anyone else's."""
        if namespace not in self._namespaces:
            return None
        return self._model.revision_templates(namespace, kind, name, revision)


def _same_endpoints(
    previous: FleetModel, parts: FleetParts, inference: InferenceLike | None
) -> bool:
    """Whether ``previous``'s endpoints are these parts' too: the same traffic round and the
    same workload records and ReplicaSets (an update shares what it did not change), as when a
    telemetry round enters the model in slices."""
    return (
        previous.inference is inference
        and previous.parts.records is parts.records
        and previous.parts.index.replicasets is parts.index.replicasets
    )


def _kept_endpoints(
    previous: FleetModel | None, parts: FleetParts, inference: InferenceLike | None
) -> dict[ObjectKey, EndpointHealth]:
    """The previous model's endpoints that hold here too: the same traffic, a record the update
    did not replace (a change to a Deployment, its ReplicaSets or its pods replaces its record),
    no ReplicaSet of its namespace changed (a pod's revision, and the endpoint of a pod
    already gone, are read from ReplicaSets, which an InferenceService's record does not
    hold), and no endpoint of its namespace came, went or was replaced (which endpoint serves
    a pod is decided among its namespace's endpoints)."""
    if previous is None or previous.inference is not inference:
        return {}
    before = previous.parts.records
    moved = _replicaset_namespaces(previous.parts.index.replicasets, parts.index.replicasets)
    moved |= _endpoint_namespaces(before, parts.records)
    return {
        key: endpoint
        for key, endpoint in previous._endpoints_by_key.items()
        if before.get(key) is parts.records.get(key, key) and key[0] not in moved
    }


def _endpoint_namespaces(
    before: Mapping[ObjectKey, WorkloadRecord], after: Mapping[ObjectKey, WorkloadRecord]
) -> set[str]:
    """The namespaces with an endpoint's record added, replaced or removed (or a record that
    became or stopped being an endpoint's)."""
    if before is after:
        return set()
    changed = {
        key[0]
        for key, record in after.items()
        if (old := before.get(key)) is not record
        and (is_endpoint(record) or (old is not None and is_endpoint(old)))
    }
    return changed | {key[0] for key in before.keys() - after.keys() if is_endpoint(before[key])}


def _replicaset_namespaces(
    before: Mapping[tuple[str, str], Any], after: Mapping[tuple[str, str], Any]
) -> set[str]:
    """The namespaces with a ReplicaSet added, replaced or removed between two indexes."""
    if before is after:
        return set()
    changed = {key[0] for key, rs in after.items() if before.get(key) is not rs}
    return changed | {key[0] for key in before.keys() - after.keys()}


def _overview_json(overview: dict[str, Any]) -> bytes:
    """An overview without its freshness (added per request by ``_with_freshness``)."""
    body = Overview(**overview, freshness=DataFreshness(synced=False)).model_dump(mode="json")
    body.pop("freshness")
    return orjson.dumps(body)


def _with_alerts(
    overview: dict[str, Any], problems: list[Problem], alerts: tuple[Problem, ...]
) -> dict[str, Any]:
    """The overview with the firing alerts among its problems."""
    if not alerts:
        return overview
    return {**overview, "problems": merge_problems(problems, alerts)[:MAX_PROBLEMS]}


def _with_freshness(overview_json: bytes, freshness: DataFreshness) -> bytes:
    fresh = orjson.dumps(freshness.model_dump(mode="json"))
    return overview_json[:-1] + b',"freshness":' + fresh + b"}"


def _tenant_table(tenants: list[Tenant], previous: Table[Tenant] | None = None) -> Table[Tenant]:
    return Table(
        tenants,
        Tenant,
        search=lambda t: (t.name, *t.namespaces, t.cluster_queue),
        previous=previous,
    )


def _workload_table(
    rows: list[Workload], previous: Table[Workload] | None = None
) -> Table[Workload]:
    return Table(
        rows,
        Workload,
        search=lambda w: (w.namespace, w.name, w.kind.value, w.model, w.tenant, w.queue),
        filters={
            "tenant": Filter(lambda w: w.tenant, _same),
            "namespace": Filter(lambda w: w.namespace, _same),
            "kind": Filter(lambda w: w.kind, choices=[k.value for k in WorkloadKind]),
            "status": Filter(lambda w: w.status, choices=[s.value for s in WorkloadStatus]),
        },
        previous=previous,
    )


def _endpoint_table(endpoints: list[EndpointHealth]) -> Table[EndpointHealth]:
    """Worst first unless sorted otherwise."""
    return Table(
        endpoints,
        EndpointHealth,
        search=lambda e: (e.namespace, e.name, e.model, e.tenant),
        filters={
            "tenant": Filter(lambda e: e.tenant, _same),
            "namespace": Filter(lambda e: e.namespace, _same),
            "kind": Filter(lambda e: e.kind, choices=[k.value for k in WorkloadKind]),
        },
    )


def _node_table(nodes: list[Node], previous: Table[Node] | None = None) -> Table[Node]:
    return Table(
        nodes,
        Node,
        search=lambda n: (n.name, n.gpu_model),
        filters={"gpu_model": Filter(lambda n: n.gpu_model, normalized_model)},
        previous=previous,
    )


def _gpu_table(gpus: list[Gpu], previous: Table[Gpu] | None = None) -> Table[Gpu]:
    return Table(
        gpus,
        Gpu,
        search=lambda g: (g.node, g.uuid, g.model, g.pod, g.namespace, g.tenant, g.workload),
        filters={
            "node": Filter(lambda g: g.node, _same),
            "tenant": Filter(lambda g: g.tenant, _same),
            "namespace": Filter(lambda g: g.namespace, _same),
            "model": Filter(lambda g: g.model, normalized_model),
            "idle": Filter(lambda g: g.idle, choices=["true", "false"]),
        },
        previous=previous,
    )


def build_fleet_model(
    cluster: ClusterObjects,
    telemetry: TelemetryLike | None,
    *,
    now: float | None = None,
    rules: GpuRules | None = None,
    inference: InferenceLike | None = None,
) -> FleetModel:
    """The whole fleet model from one consistent set of inputs (pure: no I/O, no clock but now)."""
    parts = build_parts(
        cluster or {}, telemetry if telemetry is not None else NoTelemetry(), rules or GpuRules()
    )
    return FleetModel(parts, built_at=time.time() if now is None else now, inference=inference)


def update_fleet_model(
    previous: FleetModel,
    cluster: ClusterObjects,
    changed: Iterable[ChangedKey] | None,
    telemetry: TelemetryLike | None,
    *,
    now: float | None = None,
    inference: InferenceLike | None = None,
) -> FleetModel:
    """The model of ``cluster``, ``telemetry`` and ``inference``, equal to ``build_fleet_model`` of them, from
    ``previous`` and the keys of the objects ``changed`` since its inputs: only what those
    objects and the new telemetry touch is recomputed (``backend.fleet.parts``). ``changed`` None
    (not known), or a change that reaches nearly everything, builds the whole model."""
    telemetry = telemetry if telemetry is not None else NoTelemetry()
    built_at = time.time() if now is None else now
    parts = None
    if changed is not None:
        parts = update_parts(previous.parts, cluster, changed, telemetry)
    if parts is None:
        parts = build_parts(cluster, telemetry, previous.rules)
    return FleetModel(parts, built_at=built_at, previous=previous, inference=inference)
