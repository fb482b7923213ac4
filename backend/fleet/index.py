"""One linear pass over the cluster's objects, building the lookups every builder needs.

The builders (tenants, workloads, nodes, GPUs) join objects to each other: pods to nodes and to
their owners, ReplicaSets to Deployments, events to what they are about, Kueue Workloads to the
Job or ReplicaSet they admit. Doing each join by scanning would be quadratic on a large fleet;
this index makes each one a dict lookup, so the whole model builds in linear time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
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
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


@dataclass(slots=True)
class ClusterIndex:
    """Lookups over one consistent set of cluster objects (built once per model)."""

    namespace_tenant: dict[str, str] = field(default_factory=dict)
    tenant_namespaces: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    nodes: dict[str, Obj] = field(default_factory=dict)
    hostnames: dict[str, str] = field(default_factory=dict)  # kubernetes.io/hostname -> node
    pods: dict[tuple[str, str], Obj] = field(default_factory=dict)
    pods_by_node: dict[str, list[Obj]] = field(default_factory=lambda: defaultdict(list))
    pods_by_owner: dict[ObjectKey, list[Obj]] = field(default_factory=lambda: defaultdict(list))
    replicasets: dict[tuple[str, str], Obj] = field(default_factory=dict)
    rs_by_deployment: dict[tuple[str, str], list[Obj]] = field(
        default_factory=lambda: defaultdict(list)
    )
    events_by_object: dict[ObjectKey, list[Obj]] = field(default_factory=lambda: defaultdict(list))
    kueue_by_owner: dict[ObjectKey, list[Obj]] = field(default_factory=lambda: defaultdict(list))
    kueue_workloads: list[Obj] = field(default_factory=list)
    flavor_models: dict[str, str | None] = field(default_factory=dict)
    cluster_queues: dict[str, list[Obj]] = field(default_factory=lambda: defaultdict(list))
    quotas_by_namespace: dict[str, list[Obj]] = field(default_factory=lambda: defaultdict(list))
    pod_gpus: dict[int, int] = field(default_factory=dict)  # id(pod) -> GPUs it requests
    node_usage: dict[str, tuple[int, int]] = field(default_factory=dict)  # live pods, GPUs

    def tenant_of(self, namespace: str | None) -> str | None:
        return self.namespace_tenant.get(namespace or "")

    def gpus_of(self, pod: Obj) -> int:
        """GPUs a pod requests (computed once per pod while indexing)."""
        gpus = self.pod_gpus.get(id(pod))
        return pod_spec_gpus(pod.get("spec")) if gpus is None else gpus


def _objects(cluster: ClusterObjects, kind: str) -> list[Obj]:
    """The objects of one kind, skipping anything that is not a mapping."""
    try:
        values = mapping(cluster).get(kind)
        items = values.values() if isinstance(values, Mapping) else ()
    except AttributeError:
        return []
    return [obj for obj in items if (type(obj) is dict or isinstance(obj, Mapping))]


def build_index(cluster: ClusterObjects) -> ClusterIndex:
    """Index every kind the fleet model reads (unknown or missing kinds are simply empty)."""
    index = ClusterIndex()
    _index_namespaces(index, cluster)
    _index_nodes(index, cluster)
    _index_workload_objects(index, cluster)
    _index_pods(index, cluster)
    _index_events(index, cluster)
    _index_kueue(index, cluster)
    for quota in _objects(cluster, "resourcequotas"):
        index.quotas_by_namespace[namespace_of(quota)].append(quota)
    return index


def _index_namespaces(index: ClusterIndex, cluster: ClusterObjects) -> None:
    for ns in _objects(cluster, "namespaces"):
        tenant = text(labels(ns).get(TENANT_LABEL))
        name = name_of(ns)
        if tenant and name:
            index.namespace_tenant[name] = tenant
            index.tenant_namespaces[tenant].append(name)
    for names in index.tenant_namespaces.values():
        names.sort()


def _index_nodes(index: ClusterIndex, cluster: ClusterObjects) -> None:
    for node in _objects(cluster, "nodes"):
        name = name_of(node)
        if not name:
            continue
        index.nodes[name] = node
        hostname = text(labels(node).get("kubernetes.io/hostname"))
        if hostname:
            index.hostnames[hostname] = name


def _index_workload_objects(index: ClusterIndex, cluster: ClusterObjects) -> None:
    for rs in _objects(cluster, "replicasets"):
        ns, name = namespace_of(rs), name_of(rs)
        index.replicasets[(ns, name)] = rs
        deployment = owner_named(rs, "Deployment")
        if deployment:
            index.rs_by_deployment[(ns, deployment)].append(rs)


def _index_pods(index: ClusterIndex, cluster: ClusterObjects) -> None:
    for pod in _objects(cluster, "pods"):
        ns, name = namespace_of(pod), name_of(pod)
        index.pods[(ns, name)] = pod
        gpus = index.pod_gpus[id(pod)] = pod_spec_gpus(pod.get("spec"))
        node = text(dig(pod, "spec", "nodeName"))
        if node:
            index.pods_by_node[node].append(pod)
            if not pod_terminated(pod):
                live, used = index.node_usage.get(node, (0, 0))
                index.node_usage[node] = (live + 1, used + gpus)
        for key in _pod_owner_keys(pod, ns):
            index.pods_by_owner[key].append(pod)


def _pod_owner_keys(pod: Obj, ns: str) -> set[ObjectKey]:
    """Every (namespace, kind, name) a pod belongs to: owner references and well-known labels."""
    keys = {(ns, kind, name) for kind, name in owners(pod)}
    pod_labels = labels(pod)
    for label in JOB_NAME_LABELS:
        job = text(pod_labels.get(label))
        if job:
            keys.add((ns, "Job", job))
    isvc = text(pod_labels.get(ISVC_LABEL))
    if isvc:
        keys.add((ns, "InferenceService", isvc))
    return keys


def _index_events(index: ClusterIndex, cluster: ClusterObjects) -> None:
    for event in _objects(cluster, "events"):
        regarding = mapping(event.get("involvedObject") or event.get("regarding"))
        kind, name = text(regarding.get("kind")), text(regarding.get("name"))
        if kind and name:
            ns = text(regarding.get("namespace")) or namespace_of(event)
            index.events_by_object[(ns, kind, name)].append(event)


def _index_kueue(index: ClusterIndex, cluster: ClusterObjects) -> None:
    for flavor in _objects(cluster, "resourceflavors"):
        node_labels = mapping(dig(flavor, "spec", "nodeLabels"))
        index.flavor_models[name_of(flavor)] = text(node_labels.get(GPU_PRODUCT_LABEL))
    for queue in _objects(cluster, "clusterqueues"):
        tenant = text(labels(queue).get(TENANT_LABEL))
        if tenant:
            index.cluster_queues[tenant].append(queue)
    for queues in index.cluster_queues.values():
        queues.sort(key=name_of)
    for workload in _objects(cluster, "workloads"):
        index.kueue_workloads.append(workload)
        ns = namespace_of(workload)
        for kind, name in owners(workload):
            index.kueue_by_owner[(ns, kind, name)].append(workload)
