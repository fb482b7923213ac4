"""The fleet model's parts, each kept with what it is derived from, so that a change recomputes
only the parts it touches.

``build_parts`` derives every part from the cluster objects and a telemetry snapshot.
``update_parts`` starts from the parts of the previous model and the keys of the objects that
changed since (a watch event, a write through the change path) or a new telemetry snapshot, and
recomputes only:

- the workload records the changed objects take part in (a pod's owners, a ReplicaSet's
  Deployment, an event's or a Kueue Workload's subject), and their problems;
- the nodes (with their GPUs and problems) whose node object, pods, samples or pod-to-workload
  joins changed; a telemetry round changes the nodes whose samples or history changed;
- the tenants, and their quota rows, of any record, GPU, ClusterQueue, ResourceQuota or Kueue
  Workload that changed.

Everything else is the previous parts' objects, shared (parts are never mutated once built). A
change of a namespace or a ResourceFlavor reaches nearly everything (the tenant of every object
in the namespace, the GPU model of every quota): those fall back to ``build_parts``. By
construction the result equals ``build_parts`` on the same inputs; the property-based tests
check it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backend.conventions import TENANT_LABEL
from backend.fleet.index import (
    ClusterIndex,
    Obj,
    ObjectKey,
    build_index,
    event_subject,
    update_index,
)
from backend.fleet.inputs import ClusterObjects, TelemetryLike
from backend.fleet.nodes import GpuRules, group_samples, node_and_gpus, node_order
from backend.fleet.objects import dig, labels, mapping, name_of, namespace_of, owners, text
from backend.fleet.problems import NodeSums, node_problems, node_sums, workload_problem
from backend.fleet.quotas import quota_rows_by_tenant
from backend.fleet.tenants import tenant_names, tenant_rows
from backend.fleet.workloads import (
    KIND_PLURALS,
    WorkloadRecord,
    build_workloads,
    holder_label,
    pod_holders,
    workload_object,
    workload_record,
    workloads_of,
)
from backend.reads_first import give_way
from backend.schemas import Gpu, Node, Problem, QuotaRow, Tenant

ChangedKey = tuple[str, tuple[str, str]]  # kind plural, (namespace, name)
PodKey = tuple[str, str]  # (namespace, name)
FULL_BUILD_KINDS = frozenset({"namespaces", "resourceflavors"})
NODES_BETWEEN_PAUSES = 16  # ~3-5 ms of work on the large fleet between two ``give_way``
_WORKLOAD_KINDS = {plural: kind.value for kind, plural in KIND_PLURALS.items()}


@dataclass(frozen=True, slots=True)
class NodeParts:
    """One node's row (None for a host only telemetry names), its GPUs and their problems."""

    node: Node | None
    gpus: list[Gpu]
    problems: list[Problem]
    sums: NodeSums  # its share of the overview


@dataclass(frozen=True, slots=True)
class FleetParts:
    """Everything the model is made of; dicts are in the order the model lists them."""

    cluster: ClusterObjects
    telemetry: TelemetryLike
    rules: GpuRules
    index: ClusterIndex
    records: dict[ObjectKey, WorkloadRecord]  # by (namespace, kind, name)
    workload_problems: dict[ObjectKey, Problem]  # the records that have one, in record order
    holders: dict[PodKey, set[ObjectKey]]  # (namespace, pod) -> the records holding it
    pod_workloads: dict[PodKey, str]  # (namespace, pod) -> "Kind/name" of its workload
    samples: dict[str, list[Any]]  # telemetry samples by node name
    sample_pods: dict[PodKey, set[str]]  # (namespace, pod) -> nodes with its samples
    nodes: dict[str, NodeParts]  # in natural node order
    gpus: list[Gpu]  # every node's GPUs, in node order
    tenants: dict[str, Tenant]  # by name
    quota_rows: dict[str, list[QuotaRow]]  # by tenant, in tenant order

    @property
    def node_rows(self) -> list[Node]:
        return [part.node for part in self.nodes.values() if part.node is not None]

    @property
    def problems(self) -> list[Problem]:
        """Unsorted: workloads' problems in record order, then nodes' in node order."""
        found = list(self.workload_problems.values())
        for part in self.nodes.values():
            found.extend(part.problems)
        return found


def build_parts(cluster: ClusterObjects, telemetry: TelemetryLike, rules: GpuRules) -> FleetParts:
    """Every part, derived from the inputs (pure: no I/O)."""
    index = build_index(cluster)
    records = {record.key: record for record in build_workloads(cluster, index)}
    samples, sample_pods = _group(index, telemetry)
    holders = pod_holders(records.values())
    owners_of = {pod: holder_label(keys) for pod, keys in holders.items()}
    history = mapping(getattr(telemetry, "history", None))
    nodes = {}
    for done, name in enumerate(node_order(set(index.nodes) | set(samples)), 1):
        if done % NODES_BETWEEN_PAUSES == 0:
            give_way()
        nodes[name] = _node_parts(name, index, samples.get(name, []), owners_of, history, rules)
    gpus = [gpu for part in nodes.values() for gpu in part.gpus]
    tenants = _sorted(tenant_rows(index, records.values(), gpus, tenant_names(index)))
    return FleetParts(
        cluster=cluster,
        telemetry=telemetry,
        rules=rules,
        index=index,
        records=records,
        workload_problems=_problems_of(records),
        holders=holders,
        pod_workloads=owners_of,
        samples=samples,
        sample_pods=sample_pods,
        nodes=nodes,
        gpus=gpus,
        tenants=tenants,
        quota_rows=quota_rows_by_tenant(index, list(tenants.values()), gpus),
    )


def update_parts(
    previous: FleetParts,
    cluster: ClusterObjects,
    changed: Iterable[ChangedKey],
    telemetry: TelemetryLike,
) -> FleetParts | None:
    """``previous`` brought up to ``cluster`` (in which the objects ``changed`` are new, gone
    or replaced) and ``telemetry``; None when the change needs ``build_parts``."""
    changes: list[tuple[str, Obj | None, Obj | None]] = []
    for kind, key in changed:
        if kind in FULL_BUILD_KINDS:
            return None
        before, after = _object(previous.cluster, kind, key), _object(cluster, kind, key)
        if before is not after:
            changes.append((kind, before, after))
    index = update_index(previous.index, changes)
    step = _Step(previous, cluster, telemetry, index)
    for kind, before, after in changes:
        for obj in (before, after):
            if obj is not None:
                step.touched(kind, obj)
    step.update_records()
    give_way()
    step.update_telemetry()
    give_way()
    step.update_nodes()
    give_way()
    step.update_tenants()
    give_way()
    return step.parts()


class _Step:
    """One update: what is dirty, then the parts recomputed for it."""

    def __init__(
        self,
        previous: FleetParts,
        cluster: ClusterObjects,
        telemetry: TelemetryLike,
        index: ClusterIndex,
    ) -> None:
        self.previous = previous
        self.cluster = cluster
        self.telemetry = telemetry
        self.index = index
        self.indexes = (previous.index, index)
        self.records = previous.records
        self.workload_problems = previous.workload_problems
        self.holders, self.pod_workloads = previous.holders, previous.pod_workloads
        self.samples, self.sample_pods = previous.samples, previous.sample_pods
        self.nodes = previous.nodes
        self.gpus = previous.gpus
        self.tenants = previous.tenants
        self.quota_rows = previous.quota_rows
        self.dirty_workloads: set[ObjectKey] = set()
        self.dirty_nodes: set[str] = set()
        self.dirty_tenants: set[str] = set()
        self.dirty_pods: set[tuple[str, str]] = set()
        self.regroup = telemetry is not previous.telemetry
        self.regroup_all = False  # a node changed: every sample is placed again

    def touched(self, kind: str, obj: Obj) -> None:
        """Mark what one object (before or after the change) takes part in."""
        ns, name = namespace_of(obj), name_of(obj)
        if kind in _WORKLOAD_KINDS:
            self.dirty_workloads.add((ns, _WORKLOAD_KINDS[kind], name))
        elif kind == "replicasets":
            self.dirty_workloads |= workloads_of((ns, "ReplicaSet", name), self.indexes)
        elif kind == "pods":
            self.dirty_workloads |= workloads_of((ns, "Pod", name), self.indexes)
            self.dirty_pods.add((ns, name))
            node = text(dig(obj, "spec", "nodeName"))
            if node:
                self.dirty_nodes.add(node)
        elif kind == "events":
            subject = event_subject(obj)
            if subject is not None:
                self.dirty_workloads |= workloads_of(subject, self.indexes)
        elif kind == "workloads":
            for owner_kind, owner in owners(obj):
                self.dirty_workloads |= workloads_of((ns, owner_kind, owner), self.indexes)
            self._tenant_of_namespace(ns)
        elif kind == "resourcequotas":
            self._tenant_of_namespace(ns)
        elif kind == "clusterqueues":
            tenant = text(labels(obj).get(TENANT_LABEL))
            if tenant:
                self.dirty_tenants.add(tenant)
        elif kind == "nodes":
            self.dirty_nodes.add(name)
            self.regroup = self.regroup_all = True  # a node's name or hostname places samples

    def _tenant_of_namespace(self, ns: str) -> None:
        tenant = self.index.tenant_of(ns)
        if tenant:
            self.dirty_tenants.add(tenant)

    def update_records(self) -> None:
        if not self.dirty_workloads:
            return
        records = dict(self.records)
        problems = dict(self.workload_problems)
        self.holders, self.pod_workloads = dict(self.holders), dict(self.pod_workloads)
        held: set[PodKey] = set()  # the pods whose holders may have changed
        added = False
        for key in self.dirty_workloads:
            before = records.get(key)
            found = workload_object(self.cluster, key)
            after = workload_record(*found, self.index) if found else None
            for record in (before, after):
                if record is not None:
                    self.dirty_tenants.add(record.row.tenant or "")
                    held.update((key[0], name_of(p)) for p in record.pods)
            self._hold(key, before, after)
            problem = workload_problem(after.row) if after is not None else None
            if problem is None:
                problems.pop(key, None)
            else:
                added = added or key not in problems
                problems[key] = problem  # an existing key keeps its place
            if after is None:
                records.pop(key, None)
            else:
                added = added or before is None
                records[key] = after
        for pod in held:
            holders = self.holders.get(pod)
            if holders:
                self.pod_workloads[pod] = holder_label(holders)
            else:
                self.holders.pop(pod, None)
                self.pod_workloads.pop(pod, None)
        self.dirty_pods |= held
        # Keys are kept in record order: only a new key needs the order restored.
        self.records = _sorted(records) if added else records
        self.workload_problems = _sorted(problems) if added else problems

    def _hold(
        self, key: ObjectKey, before: WorkloadRecord | None, after: WorkloadRecord | None
    ) -> None:
        """Move ``key`` from the holders of ``before``'s pods to those of ``after``'s (the
        sets are replaced: the previous parts share them)."""
        for record, holds in ((before, False), (after, True)):
            for pod in record.pods if record is not None else ():
                pod_key = (key[0], name_of(pod))
                holders = set(self.holders.get(pod_key, ()))
                if holds:
                    holders.add(key)
                else:
                    holders.discard(key)
                self.holders[pod_key] = holders

    def update_telemetry(self) -> None:
        if not self.regroup:
            return
        old_history = mapping(getattr(self.previous.telemetry, "history", None))
        new_history = mapping(getattr(self.telemetry, "history", None))
        if self.regroup_all:
            self.samples, self.sample_pods = _group(self.index, self.telemetry)
            placed = set(self.previous.samples) | set(self.samples)
        else:
            placed = self._regroup_moved(old_history, new_history)
        old_samples = self.previous.samples
        for name in placed:
            before, after = old_samples.get(name, []), self.samples.get(name, [])
            if _samples_differ(before, after, old_history, new_history):
                self.dirty_nodes.add(name)

    def _regroup_moved(
        self,
        old_history: Mapping[str, Sequence[float | None]],
        new_history: Mapping[str, Sequence[float | None]],
    ) -> set[str]:
        """Place again only the samples that are new, gone or replaced, or whose history is
        (a telemetry round enters the model a slice at a time: regrouping the whole fleet's
        GPUs for every slice cost more than the slice); returns the nodes they were or are on.
        The lists and sets of other nodes and pods are shared with the previous parts."""
        old = mapping(getattr(self.previous.telemetry, "samples", None))
        new = mapping(getattr(self.telemetry, "samples", None))
        moved = {
            uuid
            for uuid in old.keys() | new.keys()
            if old.get(uuid) is not new.get(uuid)
            or old_history.get(uuid) is not new_history.get(uuid)
        }
        leaving: dict[str, list[Any]] = {}
        arriving: dict[str, list[Any]] = {}
        for uuid in moved:
            for telemetry, placed in ((old, leaving), (new, arriving)):
                if uuid in telemetry:
                    sample = telemetry[uuid]
                    placed.setdefault(_node_of(self.index, sample), []).append(sample)
        nodes = set(leaving) | set(arriving)
        samples = dict(self.samples)
        for node in nodes:
            kept = _without(samples.get(node, []), leaving.get(node, []))
            samples[node] = kept + arriving.get(node, [])
            if not samples[node]:
                del samples[node]
        self.sample_pods = _pods_after(self.sample_pods, self.samples, samples, nodes)
        self.samples = samples
        return nodes

    def update_nodes(self) -> None:
        for pod in self.dirty_pods:
            self.dirty_nodes |= self.sample_pods.get(pod, set())
        if not self.dirty_nodes:
            return
        nodes = dict(self.nodes)
        history = mapping(getattr(self.telemetry, "history", None))
        added = False
        for done, name in enumerate(self.dirty_nodes, 1):
            if done % NODES_BETWEEN_PAUSES == 0:
                give_way()
            before = nodes.get(name)
            samples = self.samples.get(name, [])
            after = None
            if name in self.index.nodes or samples:
                after = nodes[name] = _node_parts(  # an existing name keeps its place
                    name, self.index, samples, self.pod_workloads, history, self.previous.rules
                )
                added = added or before is None
            else:
                nodes.pop(name, None)
            self._changed_gpus(before, after)
        self.nodes = {name: nodes[name] for name in node_order(nodes)} if added else nodes
        self.gpus = [gpu for part in self.nodes.values() for gpu in part.gpus]

    def _changed_gpus(self, before: NodeParts | None, after: NodeParts | None) -> None:
        """Mark the tenants of the GPUs that read differently now (utilization, holder)."""
        old = before.gpus if before is not None else []
        new = after.gpus if after is not None else []
        if len(old) == len(new):
            pairs = zip(old, new, strict=True)
            changed = [
                gpu for a, b in pairs if _tenant_facts(a) != _tenant_facts(b) for gpu in (a, b)
            ]
        else:
            changed = old + new
        self.dirty_tenants.update(gpu.tenant or "" for gpu in changed)

    def update_tenants(self) -> None:
        self.dirty_tenants.discard("")
        if not self.dirty_tenants:
            return
        names = tenant_names(self.index)
        rows = tenant_rows(self.index, self.records.values(), self.gpus, self.dirty_tenants & names)
        tenants = {k: v for k, v in self.tenants.items() if k not in self.dirty_tenants}
        tenants.update(rows)
        self.tenants = _sorted(tenants)
        quota_rows = dict(self.quota_rows)
        for name in self.dirty_tenants:
            quota_rows.pop(name, None)
        quota_rows.update(quota_rows_by_tenant(self.index, list(rows.values()), self.gpus))
        self.quota_rows = {name: quota_rows[name] for name in self.tenants}

    def parts(self) -> FleetParts:
        return FleetParts(
            cluster=self.cluster,
            telemetry=self.telemetry,
            rules=self.previous.rules,
            index=self.index,
            records=self.records,
            workload_problems=self.workload_problems,
            holders=self.holders,
            pod_workloads=self.pod_workloads,
            samples=self.samples,
            sample_pods=self.sample_pods,
            nodes=self.nodes,
            gpus=self.gpus,
            tenants=self.tenants,
            quota_rows=self.quota_rows,
        )


def _tenant_facts(gpu: Gpu) -> tuple[Any, ...]:
    """What the tenant's row and quota rows read of a GPU."""
    return gpu.tenant, gpu.utilization, gpu.allocated, gpu.idle, gpu.model


def _object(cluster: ClusterObjects, kind: str, key: tuple[str, str]) -> Obj | None:
    objects = cluster.get(kind)
    obj = objects.get(key) if isinstance(objects, Mapping) else None
    return obj if isinstance(obj, Mapping) else None


def _sorted(by_key: dict[Any, Any]) -> dict[Any, Any]:
    return {key: by_key[key] for key in sorted(by_key)}


def _problems_of(records: dict[ObjectKey, WorkloadRecord]) -> dict[ObjectKey, Problem]:
    found = {key: workload_problem(record.row) for key, record in records.items()}
    return {key: problem for key, problem in found.items() if problem is not None}


def _group(
    index: ClusterIndex, telemetry: TelemetryLike
) -> tuple[dict[str, list[Any]], dict[tuple[str, str], set[str]]]:
    """Samples by node, and the nodes whose samples name each (namespace, pod)."""
    samples = dict(group_samples(index, telemetry))
    pods: dict[tuple[str, str], set[str]] = {}
    for node, node_samples in samples.items():
        for sample in node_samples:
            pod = _sample_pod(sample)
            if pod is not None:
                pods.setdefault(pod, set()).add(node)
    return samples, pods


def _without(items: list[Any], gone: list[Any]) -> list[Any]:
    """``items`` less one occurrence of each object in ``gone`` (by identity)."""
    left = Counter(id(item) for item in gone)
    kept = []
    for item in items:
        if left[id(item)]:
            left[id(item)] -= 1
        else:
            kept.append(item)
    return kept


def _node_of(index: ClusterIndex, sample: Any) -> str:
    """The node a sample is placed on, as ``group_samples`` places it."""
    return index.node_of_host(text(getattr(sample, "node", None)) or "") or "unknown"


def _sample_pod(sample: Any) -> tuple[str, str] | None:
    pod = text(getattr(sample, "pod", None))
    return ((text(getattr(sample, "namespace", None)) or ""), pod) if pod else None


def _pods_after(
    before: dict[tuple[str, str], set[str]],
    before_samples: Mapping[str, list[Any]],
    samples: Mapping[str, list[Any]],
    nodes: set[str],
) -> dict[tuple[str, str], set[str]]:
    """``before`` (pod -> nodes with its samples) with ``nodes`` placed again: from
    ``before_samples`` to ``samples``. Sets are replaced, never changed (the previous parts
    share them)."""
    pods = dict(before)
    for node in nodes:
        for sample in before_samples.get(node, ()):
            pod = _sample_pod(sample)
            if pod in pods:
                rest = pods[pod] - nodes
                if rest:
                    pods[pod] = rest
                else:
                    del pods[pod]
    for node in nodes:
        for sample in samples.get(node, ()):
            pod = _sample_pod(sample)
            if pod is not None:
                pods[pod] = pods.get(pod, set()) | {node}
    return pods


def _samples_differ(
    before: list[Any],
    after: list[Any],
    old_history: Mapping[str, Sequence[float | None]],
    new_history: Mapping[str, Sequence[float | None]],
) -> bool:
    """Whether a node's GPUs may read differently: other samples, or other history."""
    if len(before) != len(after):
        return True
    for old, new in zip(before, after, strict=True):
        if old is not new and old != new:
            return True
        uuid = getattr(new, "uuid", None)
        if not isinstance(uuid, str) or old_history.get(uuid) != new_history.get(uuid):
            return True
    return False


def _node_parts(
    name: str,
    index: ClusterIndex,
    samples: list[Any],
    owners_of: Mapping[PodKey, str],
    history: Mapping[str, Sequence[float | None]],
    rules: GpuRules,
) -> NodeParts:
    node, gpus = node_and_gpus(name, index, samples, owners_of, history, rules)
    return NodeParts(node, gpus, node_problems(node, gpus, rules), node_sums(node, gpus))
