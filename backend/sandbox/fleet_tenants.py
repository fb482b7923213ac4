"""Builders for the tenant side of a sandbox fleet; ``fleet.py`` calls them.

Public interface (stable; fleet.py depends on it):

    create_resource_flavors(store, clock, models=GPU_MODELS.values()) -> None
    make_tenant_specs(rng, count, flavor_gpus, *, cohort="gpu-platform",
                      resourcequota_tenants=1, prefix="team") -> list[TenantSpec]
    create_tenants(store, clock, tenants: Sequence[TenantSpec]) -> None
    create_inference_services(store, clock, specs: Sequence[InferenceServiceSpec]) -> None
    create_dcgm_exporter_pods(store, clock, nodes: Iterable[dict]) -> None
    tenant_namespace(tenant, i) -> str            # "<tenant>" or "<tenant>-<i>"
    LOCAL_QUEUE_NAME = "gpu-queue"                # LocalQueue name in every Kueue namespace
    QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

Workloads opt into Kueue with ``labels[QUEUE_LABEL] = LOCAL_QUEUE_NAME`` (on the Job or on the pod
template); tenants in ResourceQuota mode get a ``ResourceQuota`` named ``gpu-quota`` instead of a
LocalQueue. Objects are backdated from ``clock.now()`` so that ages look like a real cluster's.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from backend.conventions import GPU_PRODUCT_LABEL, GPU_RESOURCE, QUEUE_LABEL, TENANT_LABEL
from backend.k8s.names import stable_suffix
from backend.sandbox.clock import Clock
from backend.sandbox.controllers.kserve import (
    PREDICTOR_LABEL,
    revision_deployment,
    revision_name,
)
from backend.sandbox.defaults import apply_defaults
from backend.sandbox.gpusim import GPU_MODELS, GpuModel, stable_hash
from backend.sandbox.store import (
    CLUSTER_QUEUE,
    DEPLOYMENT,
    INFERENCE_SERVICE,
    LOCAL_QUEUE,
    NAMESPACE,
    POD,
    RESOURCE_FLAVOR,
    RESOURCE_QUOTA,
    JsonObject,
    Store,
)

LOCAL_QUEUE_NAME = "gpu-queue"
RESOURCE_QUOTA_NAME = "gpu-quota"
KUEUE_MODE = "kueue"
RESOURCEQUOTA_MODE = "resourcequota"
DCGM_NAMESPACE = "gpu-operator"
DCGM_IMAGE = "nvidia/k8s/dcgm-exporter:3.3.5-3.4.1-ubuntu22.04"


@dataclass(frozen=True)
class TenantSpec:
    """A team sharing the platform: its namespaces and GPU quota per Kueue flavor."""

    name: str
    namespaces: tuple[str, ...]
    quota: dict[str, int]  # flavor name (h100, a100, l40s) -> nominal GPUs
    borrowing_limit: int | None = None  # None = may borrow without limit within the cohort
    lending_limit: int | None = None  # None = all unused nominal quota is lendable
    cohort: str | None = "gpu-platform"
    mode: str = KUEUE_MODE  # or RESOURCEQUOTA_MODE
    age_days: float = 120.0


@dataclass(frozen=True)
class InferenceServiceSpec:
    """A KServe model server; ``storage_uris`` is its revision history, oldest first.

    With ``canary_percent`` set and two or more URIs, the last URI is the canary and the one
    before it the rolled-out revision (the state right after ``kubectl apply`` of a canary).
    """

    namespace: str
    name: str
    tenant: str
    storage_uris: tuple[str, ...]
    gpu_product: str = "NVIDIA-L40S"
    gpus: int = 1
    min_replicas: int = 1
    max_replicas: int = 3
    canary_percent: int | None = None
    model_format: str = "pytorch"
    model: str = ""  # opsconsole.io/model label; defaults to the name
    stage: str = "production"
    queued: bool = False  # label the predictor pods for Kueue
    age_days: float = 30.0
    labels: dict[str, str] = field(default_factory=dict)


def tenant_namespace(tenant: str, i: int) -> str:
    """A tenant's first namespace is named after it; further ones get a suffix."""
    return tenant if i == 0 else f"{tenant}-{i}"


def _ago(clock: Clock, days: float) -> str:
    return (clock.now() - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _create(store: Store, rt, obj: JsonObject) -> None:
    """Store ``obj`` unless it exists, with the defaults the API server would have filled in."""
    if store.find(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]) is None:
        apply_defaults(rt, obj)
        store.create(rt, obj)


# -- Kueue flavors and tenants ------------------------------------------------------------------
def create_resource_flavors(
    store: Store, clock: Clock, models: Iterable[GpuModel] = GPU_MODELS.values()
) -> None:
    """One ResourceFlavor per GPU model, selecting nodes by their product label."""
    for model in models:
        flavor = {
            "metadata": {"name": model.flavor, "creationTimestamp": _ago(clock, 200)},
            "spec": {"nodeLabels": {GPU_PRODUCT_LABEL: model.product}},
        }
        _create(store, RESOURCE_FLAVOR, flavor)


def make_tenant_specs(
    rng: random.Random,
    count: int,
    flavor_gpus: dict[str, int],
    *,
    cohort: str = "gpu-platform",
    resourcequota_tenants: int = 1,
    prefix: str = "team",
) -> list[TenantSpec]:
    """``count`` tenants sharing ``flavor_gpus`` (flavor -> GPUs in the fleet) as nominal quota.

    Each tenant gets one or two flavors; quotas add up to a bit less than the fleet so that the
    cohort has room to lend. The last ``resourcequota_tenants`` tenants use ResourceQuota mode.
    """
    flavors = sorted(flavor_gpus)
    names = [
        f"{prefix}-{chr(ord('a') + i)}" if count <= 26 else f"{prefix}-{i:03d}"
        for i in range(count)
    ]
    picks: list[list[str]] = []
    for i in range(count):
        first = flavors[i % len(flavors)]
        second = rng.choice(flavors)
        picks.append([first] if second == first or rng.random() < 0.5 else [first, second])
    holders = {f: sum(1 for p in picks if f in p) for f in flavors}
    specs = []
    for i, name in enumerate(names):
        quota = {}
        for f in picks[i]:
            share = flavor_gpus[f] * 0.85 / max(1, holders[f])
            quota[f] = max(1, round(share * rng.uniform(0.6, 1.4)))
        n_ns = 2 if rng.random() < 0.25 else 1
        rq = i >= count - resourcequota_tenants
        specs.append(
            TenantSpec(
                name=name,
                namespaces=tuple(tenant_namespace(name, j) for j in range(n_ns)),
                quota=quota,
                borrowing_limit=None if rng.random() < 0.5 else max(quota.values()),
                lending_limit=None,
                cohort=None if rq else cohort,
                mode=RESOURCEQUOTA_MODE if rq else KUEUE_MODE,
                age_days=rng.uniform(30, 400),
            )
        )
    return specs


def create_tenants(store: Store, clock: Clock, tenants: Sequence[TenantSpec]) -> None:
    """Namespaces, and per mode: a ClusterQueue + LocalQueues, or ResourceQuotas."""
    for tenant in tenants:
        for ns in tenant.namespaces:
            _create(store, NAMESPACE, _namespace(clock, tenant, ns))
        if tenant.mode == RESOURCEQUOTA_MODE:
            for ns in tenant.namespaces:
                _create(store, RESOURCE_QUOTA, _resource_quota(clock, tenant, ns))
            continue
        _create(store, CLUSTER_QUEUE, cluster_queue(clock, tenant))
        for ns in tenant.namespaces:
            _create(store, LOCAL_QUEUE, _local_queue(clock, tenant, ns))


def _namespace(clock: Clock, tenant: TenantSpec, ns: str) -> JsonObject:
    return {
        "metadata": {
            "name": ns,
            "labels": {"kubernetes.io/metadata.name": ns, TENANT_LABEL: tenant.name},
            "creationTimestamp": _ago(clock, tenant.age_days),
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def cluster_queue(clock: Clock, tenant: TenantSpec) -> JsonObject:
    """The tenant's ClusterQueue: GPU quota per flavor, in the cohort, for its namespaces."""
    flavors = []
    for flavor, nominal in sorted(tenant.quota.items()):
        resource: JsonObject = {"name": GPU_RESOURCE, "nominalQuota": nominal}
        if tenant.borrowing_limit is not None:
            resource["borrowingLimit"] = tenant.borrowing_limit
        if tenant.lending_limit is not None:
            resource["lendingLimit"] = tenant.lending_limit
        flavors.append({"name": flavor, "resources": [resource]})
    spec: JsonObject = {
        "namespaceSelector": {"matchLabels": {TENANT_LABEL: tenant.name}},
        "queueingStrategy": "BestEffortFIFO",
        "resourceGroups": [{"coveredResources": [GPU_RESOURCE], "flavors": flavors}],
        "stopPolicy": "None",
    }
    if tenant.cohort:
        spec["cohortName"] = tenant.cohort
    return {
        "metadata": {
            "name": tenant.name,
            "labels": {TENANT_LABEL: tenant.name},
            "creationTimestamp": _ago(clock, tenant.age_days),
        },
        "spec": spec,
    }


def _local_queue(clock: Clock, tenant: TenantSpec, ns: str) -> JsonObject:
    return {
        "metadata": {
            "name": LOCAL_QUEUE_NAME,
            "namespace": ns,
            "labels": {TENANT_LABEL: tenant.name},
            "creationTimestamp": _ago(clock, tenant.age_days),
        },
        "spec": {"clusterQueue": tenant.name},
    }


def _resource_quota(clock: Clock, tenant: TenantSpec, ns: str) -> JsonObject:
    """ResourceQuota mode: the tenant's GPUs (all models together) split over its namespaces."""
    total = sum(tenant.quota.values())
    share = max(1, total // len(tenant.namespaces))
    return {
        "metadata": {
            "name": RESOURCE_QUOTA_NAME,
            "namespace": ns,
            "labels": {TENANT_LABEL: tenant.name},
            "creationTimestamp": _ago(clock, tenant.age_days),
        },
        "spec": {"hard": {f"requests.{GPU_RESOURCE}": str(share), "pods": "100"}},
    }


# -- InferenceServices --------------------------------------------------------------------------
def inference_service(clock: Clock, spec: InferenceServiceSpec, storage_uri: str) -> JsonObject:
    """The InferenceService object as a user applies it (predictor serving ``storage_uri``)."""
    labels = {
        TENANT_LABEL: spec.tenant,
        "opsconsole.io/model": spec.model or spec.name,
        "opsconsole.io/stage": spec.stage,
        **spec.labels,
    }
    predictor: JsonObject = {
        "minReplicas": spec.min_replicas,
        "maxReplicas": spec.max_replicas,
        "nodeSelector": {GPU_PRODUCT_LABEL: spec.gpu_product},
        "model": {
            "modelFormat": {"name": spec.model_format},
            "storageUri": storage_uri,
            "resources": {
                "requests": {"cpu": "4", "memory": "32Gi", GPU_RESOURCE: str(spec.gpus)},
                "limits": {"cpu": "8", "memory": "48Gi", GPU_RESOURCE: str(spec.gpus)},
            },
        },
    }
    if spec.queued:
        predictor["labels"] = {QUEUE_LABEL: LOCAL_QUEUE_NAME}
    return {
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": labels,
            "annotations": {"serving.kserve.io/enable-tag-routing": "true"},
            "creationTimestamp": _ago(clock, spec.age_days),
        },
        "spec": {"predictor": predictor},
    }


def create_inference_services(
    store: Store, clock: Clock, specs: Sequence[InferenceServiceSpec]
) -> None:
    """Create each InferenceService with its earlier revisions already rolled out.

    Revisions before the current spec are created as the revision Deployments the controller
    would have made; the status records the last of them as rolled out, so the controller then
    creates the newest revision and (with ``canary_percent``) splits traffic as KServe does.
    """
    for spec in specs:
        current = inference_service(clock, spec, spec.storage_uris[-1])
        if spec.canary_percent is not None:
            current["spec"]["predictor"]["canaryTrafficPercent"] = spec.canary_percent
        history = spec.storage_uris[:-1]
        if history:
            _create_history(store, clock, spec, current, history)
        _create(store, INFERENCE_SERVICE, current)


def _create_history(
    store: Store,
    clock: Clock,
    spec: InferenceServiceSpec,
    current: JsonObject,
    history: Sequence[str],
) -> None:
    """Revision Deployments for the older URIs; the newest of them is rolled out."""
    n = len(history)
    for number, uri in enumerate(history, start=1):
        old = inference_service(clock, spec, uri)
        old["metadata"]["uid"] = current["metadata"].setdefault("uid", _uid(spec))
        replicas = spec.min_replicas if number == n else 0
        days = spec.age_days * (n - number + 1) / (n + 1)
        deploy = revision_deployment(old, number, replicas, created=_ago(clock, days))
        _create(store, DEPLOYMENT, deploy)
    rolled = revision_name(spec.name, n)
    previous = revision_name(spec.name, n - 1) if n > 1 else None
    predictor: JsonObject = {
        "latestCreatedRevision": rolled,
        "latestReadyRevision": rolled,
        "latestRolledoutRevision": rolled,
    }
    if previous:
        predictor["previousRolledoutRevision"] = previous
    current["status"] = {"components": {PREDICTOR_LABEL: predictor}}


def _uid(spec: InferenceServiceSpec) -> str:
    """A stable uid, so the revision Deployments can name their owner before it is stored."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"isvc/{spec.namespace}/{spec.name}"))


# -- DCGM exporters ------------------------------------------------------------------------------
def create_dcgm_exporter_pods(store: Store, clock: Clock, nodes: Iterable[JsonObject]) -> None:
    """One running ``nvidia-dcgm-exporter-<suffix>`` pod per GPU node, as the DaemonSet makes."""
    ds_uid = "5f0c1d9e-6a53-4c3e-9b0a-dcgm00000001"
    for i, node in enumerate(nodes):
        labels = node["metadata"].get("labels", {})
        if GPU_PRODUCT_LABEL not in labels:
            continue
        _create(store, POD, dcgm_exporter_pod(clock, node["metadata"]["name"], i, ds_uid))


def dcgm_exporter_pod(clock: Clock, node: str, i: int, ds_uid: str) -> JsonObject:
    """The exporter pod on ``node`` (the ``i``-th GPU node), running for two weeks."""
    h = stable_hash("dcgm", node)
    suffix = stable_suffix(h)
    started = _ago(clock, 14)
    ip = f"10.{128 + (i >> 8) % 128}.{i % 256}.9"
    ready = {"lastProbeTime": None, "lastTransitionTime": started, "status": "True"}
    return {
        "metadata": {
            "name": f"nvidia-dcgm-exporter-{suffix}",
            "namespace": DCGM_NAMESPACE,
            "labels": {
                "app": "nvidia-dcgm-exporter",
                "app.kubernetes.io/name": "dcgm-exporter",
                "controller-revision-hash": "6b9d7c5f8",
                "pod-template-generation": "1",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "name": "nvidia-dcgm-exporter",
                    "uid": ds_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "creationTimestamp": started,
        },
        "spec": {
            "nodeName": node,
            "serviceAccountName": "nvidia-dcgm-exporter",
            "priorityClassName": "system-node-critical",
            "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [
                {
                    "name": "nvidia-dcgm-exporter",
                    "image": DCGM_IMAGE,
                    "ports": [{"name": "metrics", "containerPort": 9400, "protocol": "TCP"}],
                    "env": [{"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"}],
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": f"172.16.{(i >> 8) % 256}.{i % 256}",
            "startTime": started,
            "qosClass": "BestEffort",
            "conditions": [
                {**ready, "type": t}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": "nvidia-dcgm-exporter",
                    "image": DCGM_IMAGE,
                    "imageID": f"{DCGM_IMAGE}@sha256:{'3f1c' * 16}",
                    "containerID": f"containerd://{h:016x}{'0' * 48}",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": started}},
                }
            ],
        },
    }
