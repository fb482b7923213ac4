"""The lookups every builder needs, kept current object by object.

The builders (tenants, workloads, nodes, GPUs) join objects to each other: pods to nodes and to
their owners, ReplicaSets to Deployments, events to what they are about, Kueue Workloads to the
Job or ReplicaSet they admit. Doing each join by scanning would be quadratic on a large fleet;
this index makes each one a dict lookup, so the whole model builds in linear time.

Every object enters and leaves the index through one pair of functions per kind, whether the
index is built from a full list (``build_index``) or updated with a few changed objects
(``update_index``). An update never mutates the index it starts from (a model that readers still
use holds it): it copies the top-level maps, which is cheap, and replaces, never mutates, the
lists it changes. Lists are kept sorted by (namespace, name), so an index reached through any
sequence of changes equals the one built from the resulting objects.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from backend.conventions import GPU_PRODUCT_LABEL, ISVC_LABEL, TENANT_LABEL
from backend.fleet.inputs import ClusterObjects
from backend.fleet.objects import (
    dig,
    labels,
    mapping,
    name_of,
    namespace_of,
    owner_named,
    owners,
    pod_spec_gpus,
    pod_terminated,
    text,
)

Obj = Mapping[str, Any]
ObjectKey = tuple[str, str, str]  # (namespace, kind, name)
# Labels that name a pod's owner besides its owner references: (label, the owner's kind).
OWNER_LABELS = (
    ("batch.kubernetes.io/job-name", "Job"),
    ("job-name", "Job"),
    (ISVC_LABEL, "InferenceService"),
)
INDEXED_KINDS = (
    "namespaces",
    "nodes",
    "replicasets",
    "pods",
    "events",
    "resourceflavors",
    "clusterqueues",
    "workloads",
    "resourcequotas",
)


@dataclass(slots=True)
class ClusterIndex:
    """Lookups over one consistent set of cluster objects (read-only once a model holds it)."""

    namespace_tenant: dict[str, str] = field(default_factory=dict)
    tenant_namespaces: dict[str, list[str]] = field(default_factory=dict)
    nodes: dict[str, Obj] = field(default_factory=dict)
    hostnames: dict[str, list[str]] = field(default_factory=dict)  # kubernetes.io/hostname
    pods: dict[tuple[str, str], Obj] = field(default_factory=dict)
    pods_by_node: dict[str, list[Obj]] = field(default_factory=dict)
    pods_by_owner: dict[ObjectKey, list[Obj]] = field(default_factory=dict)
    replicasets: dict[tuple[str, str], Obj] = field(default_factory=dict)
    rs_by_deployment: dict[tuple[str, str], list[Obj]] = field(default_factory=dict)
    events_by_object: dict[ObjectKey, list[Obj]] = field(default_factory=dict)
    kueue_by_owner: dict[ObjectKey, list[Obj]] = field(default_factory=dict)
    kueue_workloads: dict[tuple[str, str], Obj] = field(default_factory=dict)
    flavor_models: dict[str, str | None] = field(default_factory=dict)
    cluster_queues: dict[str, list[Obj]] = field(default_factory=dict)
    quotas_by_namespace: dict[str, list[Obj]] = field(default_factory=dict)
    pod_gpus: dict[int, int] = field(default_factory=dict)  # id(pod) -> GPUs it requests
    node_usage: dict[str, tuple[int, int]] = field(default_factory=dict)  # live pods, GPUs
    live_pods: int = 0
    # While ``build_index`` fills a new index: each kind's objects come in (namespace, name)
    # order, so they are appended to its lists rather than inserted in order. How the index
    # is being made, not what it holds: left out of equality.
    filling: bool = field(default=False, compare=False)

    def tenant_of(self, namespace: str | None) -> str | None:
        return self.namespace_tenant.get(namespace or "")

    def gpus_of(self, pod: Obj) -> int:
        """GPUs a pod requests (computed once per pod while indexing)."""
        gpus = self.pod_gpus.get(id(pod))
        return pod_spec_gpus(pod.get("spec")) if gpus is None else gpus

    def node_of_host(self, host: str) -> str:
        """The node an exporter's host name means: a node of that name, else the node labelled
        with that hostname (the first by name if several are), else the host name itself."""
        if host in self.nodes:
            return host
        named = self.hostnames.get(host)
        return named[0] if named else host

    def copy(self) -> ClusterIndex:
        """A copy whose maps can change without touching this one (lists are shared: they are
        replaced on change, never mutated)."""
        copied = ClusterIndex()
        for f in fields(self):
            value = getattr(self, f.name)
            setattr(copied, f.name, dict(value) if isinstance(value, dict) else value)
        return copied


Change = tuple[str, Obj | None, Obj | None]  # kind plural, the object before, after


def _objects(cluster: ClusterObjects, kind: str) -> list[Obj]:
    """The objects of one kind, skipping anything that is not a mapping."""
    try:
        values = mapping(cluster).get(kind)
        items = values.values() if isinstance(values, Mapping) else ()
    except AttributeError:
        return []
    return [obj for obj in items if (type(obj) is dict or isinstance(obj, Mapping))]


def build_index(cluster: ClusterObjects) -> ClusterIndex:
    """Index every kind the fleet model reads (unknown or missing kinds are simply empty).

    Each sorted list holds one kind, so sorting each kind's objects once (a cache holds them
    in the API server's order, which already is (namespace, name): a pass that finds them
    sorted) leaves every list sorted as it is filled."""
    index = ClusterIndex(filling=True)
    for kind in INDEXED_KINDS:
        add = _INDEXERS[kind][0]
        for obj in sorted(_objects(cluster, kind), key=_position):
            add(index, obj)
    index.filling = False
    return index


def update_index(index: ClusterIndex, changes: Iterable[Change]) -> ClusterIndex:
    """A new index: ``index`` with each (kind, before, after) applied; ``index`` is unchanged.
    Kinds the index does not read are ignored; without a change to a kind it reads, the result
    is ``index`` itself (so that what is derived from it can be kept by identity)."""
    changes = [change for change in changes if change[0] in _INDEXERS]
    if not changes:
        return index
    updated = index.copy()
    for kind, before, after in changes:
        indexer = _INDEXERS.get(kind)
        if indexer is None:
            continue
        if before is not None:
            indexer[1](updated, before)
        if after is not None:
            indexer[0](updated, after)
    return updated


def pod_owner_keys(pod: Obj, ns: str) -> set[ObjectKey]:
    """Every (namespace, kind, name) a pod belongs to: owner references and well-known labels."""
    keys = {(ns, kind, name) for kind, name in owners(pod)}
    pod_labels = labels(pod)
    for label, kind in OWNER_LABELS:
        value = pod_labels.get(label)
        if value is not None and (owner := text(value)):
            keys.add((ns, kind, owner))
    return keys


def event_subject(event: Obj) -> ObjectKey | None:
    """The (namespace, kind, name) an event is about."""
    regarding = mapping(event.get("involvedObject") or event.get("regarding"))
    kind, name = text(regarding.get("kind")), text(regarding.get("name"))
    if not (kind and name):
        return None
    return (text(regarding.get("namespace")) or namespace_of(event), kind, name)


# -- sorted lists, replaced rather than mutated ----------------------------------------------------


def _position(obj: Obj) -> tuple[str, str]:
    """(namespace, name), the order of the sorted lists (a whole build sorts 30,000 objects)."""
    found = obj.get("metadata") if type(obj) is dict else None
    if type(found) is dict:
        namespace, name = found.get("namespace", ""), found.get("name")
        if type(namespace) is str and type(name) is str:
            return namespace, name
    return namespace_of(obj), name_of(obj)


def _insert(index: ClusterIndex, table: dict[Any, list[Obj]], key: Any, obj: Obj) -> None:
    if index.filling:
        table.setdefault(key, []).append(obj)
        return
    items = list(table.get(key, ()))
    bisect.insort(items, obj, key=_position)
    table[key] = items


def _discard(table: dict[Any, list[Any]], key: Any, obj: Obj) -> None:
    position = _position(obj)
    items = [o for o in table.get(key, ()) if _position(o) != position]
    if items:
        table[key] = items
    else:
        table.pop(key, None)


def _insert_name(table: dict[str, list[str]], key: str, name: str) -> None:
    items = list(table.get(key, ()))
    bisect.insort(items, name)
    table[key] = items


def _discard_name(table: dict[str, list[str]], key: str, name: str) -> None:
    items = [n for n in table.get(key, ()) if n != name]
    if items:
        table[key] = items
    else:
        table.pop(key, None)


# -- one pair of functions per kind ---------------------------------------------------------------


def _namespace_tenant(ns: Obj) -> tuple[str, str | None]:
    return name_of(ns), text(labels(ns).get(TENANT_LABEL))


def _add_namespace(index: ClusterIndex, ns: Obj) -> None:
    name, tenant = _namespace_tenant(ns)
    if tenant and name:
        index.namespace_tenant[name] = tenant
        _insert_name(index.tenant_namespaces, tenant, name)


def _remove_namespace(index: ClusterIndex, ns: Obj) -> None:
    name, tenant = _namespace_tenant(ns)
    if tenant and name:
        index.namespace_tenant.pop(name, None)
        _discard_name(index.tenant_namespaces, tenant, name)


def _add_node(index: ClusterIndex, node: Obj) -> None:
    name = name_of(node)
    if not name:
        return
    index.nodes[name] = node
    hostname = text(labels(node).get("kubernetes.io/hostname"))
    if hostname:
        _insert_name(index.hostnames, hostname, name)


def _remove_node(index: ClusterIndex, node: Obj) -> None:
    name = name_of(node)
    if not name:
        return
    index.nodes.pop(name, None)
    hostname = text(labels(node).get("kubernetes.io/hostname"))
    if hostname:
        _discard_name(index.hostnames, hostname, name)


def _add_replicaset(index: ClusterIndex, rs: Obj) -> None:
    ns, name = namespace_of(rs), name_of(rs)
    index.replicasets[(ns, name)] = rs
    deployment = owner_named(rs, "Deployment")
    if deployment:
        _insert(index, index.rs_by_deployment, (ns, deployment), rs)


def _remove_replicaset(index: ClusterIndex, rs: Obj) -> None:
    ns, name = namespace_of(rs), name_of(rs)
    index.replicasets.pop((ns, name), None)
    deployment = owner_named(rs, "Deployment")
    if deployment:
        _discard(index.rs_by_deployment, (ns, deployment), rs)


def _add_pod(index: ClusterIndex, pod: Obj) -> None:
    ns, name = namespace_of(pod), name_of(pod)
    index.pods[(ns, name)] = pod
    gpus = index.pod_gpus[id(pod)] = pod_spec_gpus(pod.get("spec"))
    live = not pod_terminated(pod)
    index.live_pods += live
    node = text(dig(pod, "spec", "nodeName"))
    if node:
        _insert(index, index.pods_by_node, node, pod)
        if live:
            _count_on_node(index, node, 1, gpus)
    for key in pod_owner_keys(pod, ns):
        _insert(index, index.pods_by_owner, key, pod)


def _remove_pod(index: ClusterIndex, pod: Obj) -> None:
    ns, name = namespace_of(pod), name_of(pod)
    index.pods.pop((ns, name), None)
    index.pod_gpus.pop(id(pod), None)
    live = not pod_terminated(pod)
    index.live_pods -= live
    node = text(dig(pod, "spec", "nodeName"))
    if node:
        _discard(index.pods_by_node, node, pod)
        if live:
            _count_on_node(index, node, -1, -pod_spec_gpus(pod.get("spec")))
    for key in pod_owner_keys(pod, ns):
        _discard(index.pods_by_owner, key, pod)


def _add_event(index: ClusterIndex, event: Obj) -> None:
    subject = event_subject(event)
    if subject is not None:
        _insert(index, index.events_by_object, subject, event)


def _remove_event(index: ClusterIndex, event: Obj) -> None:
    subject = event_subject(event)
    if subject is not None:
        _discard(index.events_by_object, subject, event)


def _add_flavor(index: ClusterIndex, flavor: Obj) -> None:
    node_labels = mapping(dig(flavor, "spec", "nodeLabels"))
    index.flavor_models[name_of(flavor)] = text(node_labels.get(GPU_PRODUCT_LABEL))


def _remove_flavor(index: ClusterIndex, flavor: Obj) -> None:
    index.flavor_models.pop(name_of(flavor), None)


def _add_cluster_queue(index: ClusterIndex, queue: Obj) -> None:
    tenant = text(labels(queue).get(TENANT_LABEL))
    if tenant:
        _insert(index, index.cluster_queues, tenant, queue)


def _remove_cluster_queue(index: ClusterIndex, queue: Obj) -> None:
    tenant = text(labels(queue).get(TENANT_LABEL))
    if tenant:
        _discard(index.cluster_queues, tenant, queue)


def _add_kueue_workload(index: ClusterIndex, workload: Obj) -> None:
    ns = namespace_of(workload)
    index.kueue_workloads[(ns, name_of(workload))] = workload
    for kind, name in owners(workload):
        _insert(index, index.kueue_by_owner, (ns, kind, name), workload)


def _remove_kueue_workload(index: ClusterIndex, workload: Obj) -> None:
    ns = namespace_of(workload)
    index.kueue_workloads.pop((ns, name_of(workload)), None)
    for kind, name in owners(workload):
        _discard(index.kueue_by_owner, (ns, kind, name), workload)


def _add_quota(index: ClusterIndex, quota: Obj) -> None:
    _insert(index, index.quotas_by_namespace, namespace_of(quota), quota)


def _remove_quota(index: ClusterIndex, quota: Obj) -> None:
    _discard(index.quotas_by_namespace, namespace_of(quota), quota)


_Indexer = Callable[[ClusterIndex, Obj], None]
_INDEXERS: dict[str, tuple[_Indexer, _Indexer]] = {
    "namespaces": (_add_namespace, _remove_namespace),
    "nodes": (_add_node, _remove_node),
    "replicasets": (_add_replicaset, _remove_replicaset),
    "pods": (_add_pod, _remove_pod),
    "events": (_add_event, _remove_event),
    "resourceflavors": (_add_flavor, _remove_flavor),
    "clusterqueues": (_add_cluster_queue, _remove_cluster_queue),
    "workloads": (_add_kueue_workload, _remove_kueue_workload),
    "resourcequotas": (_add_quota, _remove_quota),
}


def _count_on_node(index: ClusterIndex, node: str, pods: int, gpus: int) -> None:
    """Add a live pod's count and GPUs to its node's usage (negative when it leaves); a node
    without live pods has no entry."""
    held_pods, held_gpus = index.node_usage.get(node, (0, 0))
    if held_pods + pods > 0:
        index.node_usage[node] = (held_pods + pods, held_gpus + gpus)
    else:
        index.node_usage.pop(node, None)
