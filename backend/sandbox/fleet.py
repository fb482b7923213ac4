"""The sandbox's fleets: ``empty``, ``demo`` (about 12 GPU nodes) and ``large`` (1,000 nodes).

A fleet is built as a cluster's history would have built it: nodes and tenants first, then each
workload created and changed over past weeks *through the controllers* (a history clock moves
backwards in time so that ages look real), so that ReplicaSets, revisions, change-causes, Kueue
admissions, pending pods and events are exactly what the controllers make of them. The ``large``
fleet lays down old, empty ReplicaSets directly (built by the Deployment controller's own
``build_replica_set``, so the controller agrees with them) and lets the controllers create only
the current generation, which keeps 20,000 pods fast.

Everything is decided by ``random.Random(seed)``: one seed, one fleet.
"""

from __future__ import annotations

import gc
import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from backend.conventions import GPU_RESOURCE, MODEL_LABEL, QUEUE_LABEL, STAGE_LABEL
from backend.k8s.annotations import CHANGE_CAUSE_ANNOTATION
from backend.k8s.rollout import RollbackError, plan_undo
from backend.sandbox import fleet_tenants as tenants_mod
from backend.sandbox.clock import Clock
from backend.sandbox.controllers import Controllers, manager_for
from backend.sandbox.controllers.deployments import build_replica_set
from backend.sandbox.controllers.podstatus import RUNTIME_ANNOTATION
from backend.sandbox.defaults import apply_defaults
from backend.sandbox.gpusim import A100, H100, L40S, GpuModel
from backend.sandbox.patch import json_patch
from backend.sandbox.store import (
    CLUSTER_QUEUE,
    DEPLOYMENT,
    JOB,
    NODE,
    REPLICA_SET,
    JsonObject,
    ResourceType,
    Store,
)

FLEETS = ("empty", "demo", "large")
VLLM_TAGS = ("v0.5.3", "v0.5.4", "v0.5.5", "v0.6.0", "v0.6.1", "v0.6.2", "v0.6.3", "v0.6.4")
TRAIN_IMAGE = "pytorch/pytorch:2.4.1-cuda12.4-cudnn9-runtime"
# (deployment-friendly short name, model id, GPUs per replica)
MODELS = (
    ("llama-70b", "meta-llama/Llama-3.1-70B-Instruct", 4),
    ("llama-8b", "meta-llama/Llama-3.1-8B-Instruct", 1),
    ("mixtral", "mistralai/Mixtral-8x7B-Instruct-v0.1", 2),
    ("mistral-7b", "mistralai/Mistral-7B-Instruct-v0.3", 1),
    ("qwen-72b", "Qwen/Qwen2.5-72B-Instruct", 4),
    ("qwen-coder", "Qwen/Qwen2.5-Coder-7B-Instruct", 1),
    ("gemma-27b", "google/gemma-2-27b-it", 2),
    ("phi-medium", "microsoft/Phi-3-medium-4k-instruct", 1),
    ("bge-embed", "BAAI/bge-large-en-v1.5", 1),
    ("whisper", "openai/whisper-large-v3", 1),
    ("sdxl", "stabilityai/sdxl-turbo", 1),
    ("deepseek-coder", "deepseek-ai/deepseek-coder-33b-instruct", 2),
)
CPU_APPS = (
    ("gateway", "envoyproxy/envoy:v1.31.2", "500m", "512Mi"),
    ("tokenizer", "python:3.12-slim", "1", "2Gi"),
    ("worker", "python:3.12-slim", "2", "4Gi"),
)
TRAIN_KINDS = ("pretrain", "finetune", "sft", "dpo", "eval", "distill")
CAUSES_IMAGE = "kubectl set image deployment/{name} server=vllm/vllm-openai:{tag}"
CAUSES_MODEL = (
    "promote {model} checkpoint {rev} after eval",
    "roll out {model} weights {rev}",
    "{model} {rev}: quantization fix",
)


@dataclass(frozen=True)
class Shape:
    """How big a fleet is; the numbers the issue asks for."""

    nodes: tuple[tuple[GpuModel, int], ...]
    tenants: int
    cordoned: tuple[int, ...]
    not_ready: tuple[int, ...]
    gpus_per_node: int = 8


DEMO = Shape(nodes=((H100, 4), (A100, 4), (L40S, 4)), tenants=7, cordoned=(7,), not_ready=(11,))
LARGE = Shape(
    nodes=((H100, 400), (A100, 350), (L40S, 250)),
    tenants=200,
    cordoned=(17, 433, 801),
    not_ready=(256, 990),
)


def build_fleet(store: Store, fleet: str, seed: int, clock: Clock) -> None:
    """Create the fleet's objects in ``store`` and drive the controllers until it is settled."""
    if fleet not in FLEETS:
        raise ValueError(f"unknown fleet {fleet!r}; choose one of {', '.join(FLEETS)}")
    if fleet == "empty":
        return
    manager = manager_for(store)
    temporary = manager is None
    if manager is None:
        manager = Controllers(store, clock, 0.0, seed)
    history = Clock(frozen=clock.now())
    builder = FleetBuilder(store, clock, history, random.Random(seed), manager)
    # The cyclic garbage collector would walk the growing heap again and again while 20,000
    # pods are made (a third of the build time); nothing built here is cyclic garbage.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with manager.building(history, events=fleet == "demo"):
            if fleet == "demo":
                builder.build_demo()
            else:
                builder.build_large()
    finally:
        if temporary:
            manager.close()
        if collecting:
            gc.enable()
    if fleet == "large":
        gc.freeze()  # the fleet lives as long as the sandbox: keep it out of later collections


# -- object builders -----------------------------------------------------------------------------
def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def node_object(name: str, index: int, model: GpuModel, gpus: int, created: str) -> JsonObject:
    """A GPU node as the kubelet, GPU feature discovery and the device plugin describe it."""
    ip = f"172.16.{(index >> 8) % 256}.{index % 256}"
    capacity = {
        "cpu": "192",
        "memory": "2113399176Ki",
        "ephemeral-storage": "3750150768Ki",
        "pods": "110",
        GPU_RESOURCE: str(gpus),
    }
    allocatable = {**capacity, "cpu": "191450m", "memory": "2102913416Ki"}
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "kubelet is posting ready status",
        "lastHeartbeatTime": created,
        "lastTransitionTime": created,
    }
    pressure = [
        {
            "type": t,
            "status": "False",
            "reason": f"KubeletHasSufficient{r}",
            "message": f"kubelet has sufficient {m}",
            "lastHeartbeatTime": created,
            "lastTransitionTime": created,
        }
        for t, r, m in (
            ("MemoryPressure", "Memory", "memory available"),
            ("DiskPressure", "Disk", "disk space available"),
            ("PIDPressure", "PID", "PID available"),
        )
    ]
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": _instance_type(model),
                "topology.kubernetes.io/zone": f"zone-{'abc'[index % 3]}",
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": model.product,
                "nvidia.com/gpu.count": str(gpus),
                "nvidia.com/gpu.memory": str(model.memory_mib),
            },
        },
        "spec": {
            "podCIDR": f"10.{128 + (index >> 8) % 128}.{index % 256}.0/24",
            "podCIDRs": [f"10.{128 + (index >> 8) % 128}.{index % 256}.0/24"],
        },
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [*pressure, ready],
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "machineID": _hex_id("machine", name),
                "systemUUID": _uuid_from(_hex_id("system", name)),
                "bootID": _uuid_from(_hex_id("boot", name)),
                "kubeletVersion": "v1.31.4",
                "kubeProxyVersion": "v1.31.4",
                "containerRuntimeVersion": "containerd://1.7.23",
                "osImage": "Ubuntu 22.04.5 LTS",
                "kernelVersion": "5.15.0-126-generic",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


def _hex_id(kind: str, name: str) -> str:
    return hashlib.sha256(f"{kind}/{name}".encode()).hexdigest()[:32]


def _uuid_from(hex32: str) -> str:
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


def _instance_type(model: GpuModel) -> str:
    return {"h100": "p5.48xlarge", "a100": "p4de.24xlarge", "l40s": "g6e.48xlarge"}.get(
        model.flavor, "gpu-8x"
    )


def cordon(node: JsonObject, since: str) -> JsonObject:
    """``kubectl cordon``: unschedulable, with the taint the node controller adds."""
    taint = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": since}
    return {**node, "spec": {**node["spec"], "unschedulable": True, "taints": [taint]}}


def not_ready(node: JsonObject, since: str) -> JsonObject:
    """A node whose kubelet reports NotReady, tainted by the node lifecycle controller."""
    conditions = [
        c
        if c["type"] != "Ready"
        else {
            **c,
            "status": "False",
            "reason": "KubeletNotReady",
            "lastTransitionTime": since,
            "message": "container runtime network not ready: NetworkReady=false "
            "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin "
            "not initialized",
        }
        for c in node["status"]["conditions"]
    ]
    taints = [
        {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule", "timeAdded": since},
        {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": since},
    ]
    return {
        **node,
        "spec": {**node["spec"], "taints": taints},
        "status": {**node["status"], "conditions": conditions},
    }


def inference_deployment(
    namespace: str,
    name: str,
    model: str,
    stage: str,
    product: str,
    gpus: int,
    replicas: int,
    tag: str,
    model_revision: str,
    queued: bool,
) -> JsonObject:
    """A vLLM model server Deployment, labelled as a model release."""
    labels = {"app": name, MODEL_LABEL: model.split("/")[-1].lower(), STAGE_LABEL: stage}
    if queued:
        labels[QUEUE_LABEL] = tenants_mod.LOCAL_QUEUE_NAME
    container = {
        "name": "server",
        "image": f"vllm/vllm-openai:{tag}",
        "args": ["--model", model, "--tensor-parallel-size", str(gpus), "--port", "8000"],
        "env": [{"name": "MODEL_REVISION", "value": model_revision}],
        "ports": [{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": str(4 * gpus), "memory": f"{32 * gpus}Gi", GPU_RESOURCE: str(gpus)},
            "limits": {"cpu": str(8 * gpus), "memory": f"{48 * gpus}Gi", GPU_RESOURCE: str(gpus)},
        },
        "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 10},
    }
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": {},
        },
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"nvidia.com/gpu.product": product},
                    "containers": [container],
                },
            },
        },
    }


def cpu_deployment(
    namespace: str, app: str, image: str, cpu: str, memory: str, replicas: int, version: str
) -> JsonObject:
    """A CPU-only service around the models: gateways, tokenizers, queue workers."""
    labels = {"app": app, "app.kubernetes.io/component": app}
    container = {
        "name": app,
        "image": image,
        "env": [{"name": "CONFIG_VERSION", "value": version}],
        "resources": {
            "requests": {"cpu": cpu, "memory": memory},
            "limits": {"cpu": cpu, "memory": memory},
        },
    }
    return {
        "metadata": {
            "name": app,
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": {},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def training_job(
    namespace: str,
    name: str,
    product: str,
    gpus: int,
    parallelism: int,
    runtime_seconds: int,
    queued: bool,
) -> JsonObject:
    """A training Job; Kueue-managed ones start suspended, as Kueue's webhook makes them."""
    labels = {"app": name, "opsconsole.io/workload-type": "training"}
    if queued:
        labels[QUEUE_LABEL] = tenants_mod.LOCAL_QUEUE_NAME
    container = {
        "name": "trainer",
        "image": TRAIN_IMAGE,
        "command": ["torchrun", f"--nproc_per_node={gpus}", "train.py", f"--run-name={name}"],
        "resources": {
            "requests": {"cpu": str(8 * gpus), "memory": f"{64 * gpus}Gi", GPU_RESOURCE: str(gpus)},
            "limits": {"cpu": str(8 * gpus), "memory": f"{64 * gpus}Gi", GPU_RESOURCE: str(gpus)},
        },
    }
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "parallelism": parallelism,
            "completions": parallelism,
            "backoffLimit": 3,
            "suspend": queued,
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {RUNTIME_ANNOTATION: str(runtime_seconds)},
                },
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {"nvidia.com/gpu.product": product},
                    "containers": [container],
                },
            },
        },
    }


def _with_version(deploy: JsonObject, tag: str | None, model_revision: str | None) -> JsonObject:
    """The same Deployment with another image tag and/or model revision (a new template)."""
    container = dict(deploy["spec"]["template"]["spec"]["containers"][0])
    if tag is not None:
        container["image"] = container["image"].rsplit(":", 1)[0] + f":{tag}"
    if model_revision is not None:
        container["env"] = [{"name": container["env"][0]["name"], "value": model_revision}]
    template = deploy["spec"]["template"]
    spec = {**template["spec"], "containers": [container]}
    return {**deploy, "spec": {**deploy["spec"], "template": {**template, "spec": spec}}}


# -- the builder ---------------------------------------------------------------------------------
@dataclass
class Release:
    """One step of a Deployment's history: what changed and why."""

    tag: str | None
    model_revision: str | None
    cause: str
    undo: bool = False


class FleetBuilder:
    """Builds a fleet step by step, moving the history clock forward between steps."""

    def __init__(
        self, store: Store, clock: Clock, history: Clock, rng: random.Random, manager: Controllers
    ) -> None:
        self.store = store
        self.clock = clock
        self.history = history
        self.rng = rng
        self.manager = manager
        self.now = clock.now()
        self.nodes: list[JsonObject] = []
        self.tenants: list[tenants_mod.TenantSpec] = []

    def at(self, days_ago: float) -> None:
        """Move the history clock to ``days_ago`` before now."""
        self.history.frozen = self.now - timedelta(days=days_ago)

    def settle(self) -> None:
        self.manager.settle()

    def create(self, rt: ResourceType, obj: JsonObject) -> JsonObject:
        """Store an object with a uid from the seeded generator (Kueue names Workloads after
        their owner's uid, so random uids would make the fleet differ between runs), completed
        with the defaults the API server would have filled in."""
        obj.setdefault("metadata", {}).setdefault("uid", self.manager.ctx.new_uid())
        apply_defaults(rt, obj)
        return self.store.create(rt, obj)

    # -- nodes and tenants --------------------------------------------------------------------
    def create_nodes(self, shape: Shape) -> None:
        width = 2 if sum(n for _, n in shape.nodes) < 100 else 4
        index = 0
        for model, count in shape.nodes:
            for _ in range(count):
                index += 1
                name = f"node-{index:0{width}d}"
                created = _stamp(self.now - timedelta(days=self.rng.uniform(60, 400)))
                node = node_object(name, index - 1, model, shape.gpus_per_node, created)
                since = _stamp(self.now - timedelta(hours=self.rng.uniform(1, 30)))
                if index - 1 in shape.cordoned:
                    node = cordon(node, since)
                if index - 1 in shape.not_ready:
                    node = not_ready(node, since)
                self.nodes.append(self.create(NODE, node))
        tenants_mod.create_dcgm_exporter_pods(self.store, self.clock, self.nodes)
        self.settle()

    def create_tenants(self, shape: Shape, resourcequota_tenants: int) -> None:
        flavor_gpus: dict[str, int] = {}
        for model, count in shape.nodes:
            flavor_gpus[model.flavor] = flavor_gpus.get(model.flavor, 0) + count * 8
        tenants_mod.create_resource_flavors(self.store, self.clock)
        self.tenants = tenants_mod.make_tenant_specs(
            self.rng, shape.tenants, flavor_gpus, resourcequota_tenants=resourcequota_tenants
        )
        tenants_mod.create_tenants(self.store, self.clock, self.tenants)
        self.settle()

    @staticmethod
    def product_of(tenant: tenants_mod.TenantSpec, pick: int = 0) -> str:
        flavors = sorted(tenant.quota)
        flavor = flavors[pick % len(flavors)]
        return {m.flavor: m.product for m in (H100, A100, L40S)}.get(flavor, H100.product)

    @staticmethod
    def queued(tenant: tenants_mod.TenantSpec) -> bool:
        return tenant.mode == tenants_mod.KUEUE_MODE

    # -- releases -----------------------------------------------------------------------------
    def plan_releases(self, name: str, model: str, count: int) -> list[Release]:
        """``count`` distinct templates, sometimes followed by an undo to the previous one."""
        tags = sorted(self.rng.sample(range(len(VLLM_TAGS)), min(count, len(VLLM_TAGS))))
        start_tag = VLLM_TAGS[tags[0]]
        releases = [Release(start_tag, "r1", f"initial release of {model} on vLLM {start_tag}")]
        tag_i, model_rev = 0, 1
        for _ in range(count - 1):
            if self.rng.random() < 0.5 and tag_i + 1 < len(tags):
                tag_i += 1
                tag = VLLM_TAGS[tags[tag_i]]
                releases.append(Release(tag, None, CAUSES_IMAGE.format(name=name, tag=tag)))
            else:
                model_rev += 1
                cause = self.rng.choice(CAUSES_MODEL).format(model=model, rev=f"r{model_rev}")
                releases.append(Release(None, f"r{model_rev}", cause))
        if count >= 3 and self.rng.random() < 0.3:
            releases.append(Release(None, None, "", undo=True))
        return releases

    def apply_release(self, deploy: JsonObject | None, base: JsonObject, release: Release) -> None:
        """Create or change the Deployment as an operator would, then let the controllers act."""
        ns, name = base["metadata"]["namespace"], base["metadata"]["name"]
        if deploy is None:
            first = _with_version(base, release.tag, release.model_revision)
            first["metadata"]["annotations"] = {CHANGE_CAUSE_ANNOTATION: release.cause}
            first["metadata"]["creationTimestamp"] = self.history.rfc3339()
            self.create(DEPLOYMENT, first)
            self.settle()
            return
        if release.undo:
            # ``kubectl rollout undo``, patch for patch; one kubectl refuses or skips changes nothing.
            owned = [
                self.store.get(REPLICA_SET, ns, rs)
                for rs in self.manager.ctx.index.children("Deployment", ns, name)
            ]
            try:
                undo = plan_undo(deploy, owned)
            except RollbackError:
                return
            if undo.patch is None:
                return
            changed = json_patch(deploy, undo.patch)
        else:
            changed = _with_version(deploy, release.tag, release.model_revision)
            annotations = {
                **(deploy["metadata"].get("annotations") or {}),
                CHANGE_CAUSE_ANNOTATION: release.cause,
            }
            changed = {**changed, "metadata": {**changed["metadata"], "annotations": annotations}}
        apply_defaults(DEPLOYMENT, changed)
        self.store.update(DEPLOYMENT, changed, subresource="main")
        self.settle()

    def deployment_with_history(
        self, base: JsonObject, releases: list[Release], first_days_ago: float
    ) -> None:
        """Walk a Deployment through its releases, spread from ``first_days_ago`` to recently."""
        ns, name = base["metadata"]["namespace"], base["metadata"]["name"]
        moments = sorted(
            (self.rng.uniform(0.05, first_days_ago) for _ in releases[1:]), reverse=True
        )
        for release, days_ago in zip(releases, [first_days_ago, *moments], strict=True):
            self.at(days_ago)
            self.apply_release(self.store.find(DEPLOYMENT, ns, name), base, release)

    # -- the demo fleet -----------------------------------------------------------------------
    def build_demo(self) -> None:
        self.create_nodes(DEMO)
        self.create_tenants(DEMO, resourcequota_tenants=1)
        self._demo_jobs(finished=True)
        self._demo_inference_services()
        models = list(MODELS)
        self.rng.shuffle(models)
        paused_done = False
        for i, tenant in enumerate(self.tenants):
            ns = tenant.namespaces[0]
            self._demo_cpu_services(tenant)
            short, model, gpus = models[i % len(models)]
            servers = [(short, model, gpus, "production", 2), (short, model, gpus, "staging", 1)]
            if i % 3 != 2:
                extra = models[(i + len(self.tenants)) % len(models)]
                servers.append((*extra, "production", 1))
            for k, (name_, model_, gpus_, stage, replicas) in enumerate(servers):
                name = f"{name_}-{'prod' if stage == 'production' else 'stg'}"
                product = self.product_of(tenant, k // 2)
                queued = self.queued(tenant)
                base = inference_deployment(
                    ns,
                    name,
                    model_,
                    stage,
                    product,
                    min(gpus_, 2),
                    replicas,
                    VLLM_TAGS[0],
                    "r1",
                    queued,
                )
                releases = self.plan_releases(name, name_, self.rng.randint(3, 5))
                self.deployment_with_history(base, releases, self.rng.uniform(20, 90))
            if not paused_done and self.queued(tenant):
                self._pause_with_pending_change(ns, f"{short}-stg")
                paused_done = True
        self._demo_oversized_job()
        self._demo_jobs(finished=False)
        self.at(0)
        self.settle()

    def _demo_oversized_job(self) -> None:
        """A job that fits its tenant's quota but not the nodes: admitted by Kueue, then a pod
        Pending with "Insufficient nvidia.com/gpu" (more pods than the model's nodes hold)."""
        choice = self._quota_without_room()
        if choice is None:
            return
        tenant, product, gpus, pods = choice
        self.at(0.02)
        name = f"pretrain-{tenant.name.split('-')[-1]}-70b"
        job = training_job(tenant.namespaces[0], name, product, gpus, pods, 5 * 86400, True)
        job["metadata"]["creationTimestamp"] = self.history.rfc3339()
        self.create(JOB, job)
        self.settle()

    def _quota_without_room(self) -> tuple[tenants_mod.TenantSpec, str, int, int] | None:
        """(tenant, GPU product, GPUs per pod, pods): one pod more than the product's nodes can
        hold, within what the tenant's ClusterQueue can admit (its unused quota plus what the
        cohort lends)."""
        products = {m.flavor: m.product for m in (H100, A100, L40S)}
        unused = self._unused_quota()
        for gpus in (4, 8):
            room: dict[str, int] = {}
            for node in self.nodes:
                if not node["spec"].get("taints"):
                    product = node["metadata"]["labels"]["nvidia.com/gpu.product"]
                    free = self.manager.allocator.free(node["metadata"]["name"])
                    room[product] = room.get(product, 0) + free // gpus
            for tenant in self.tenants:
                if not self.queued(tenant):
                    continue
                for flavor in sorted(tenant.quota):
                    product = products.get(flavor, "")
                    pods = room.get(product, 0) + 1
                    lend = sum(
                        v for (t, f), v in unused.items() if f == flavor and t != tenant.name
                    )
                    if tenant.borrowing_limit is not None:
                        lend = min(lend, tenant.borrowing_limit)
                    own = unused.get((tenant.name, flavor), 0)
                    if product and own + lend >= gpus * pods:
                        return tenant, product, gpus, pods
        return None

    def _unused_quota(self) -> dict[tuple[str, str], int]:
        """(tenant, flavor) -> nominal GPUs its ClusterQueue is not using now."""
        unused: dict[tuple[str, str], int] = {}
        for tenant in self.tenants:
            cq = self.store.find(CLUSTER_QUEUE, "", tenant.name)
            if cq is None:
                continue
            used = {
                f["name"]: sum(int(r.get("total", 0)) for r in f.get("resources") or ())
                for f in (cq.get("status") or {}).get("flavorsUsage") or ()
            }
            for flavor, nominal in tenant.quota.items():
                unused[(tenant.name, flavor)] = max(0, nominal - used.get(flavor, 0))
        return unused

    def _demo_cpu_services(self, tenant: tenants_mod.TenantSpec) -> None:
        ns = tenant.namespaces[-1]
        for app, image, cpu, memory in CPU_APPS[: self.rng.randint(2, 3)]:
            base = cpu_deployment(ns, app, image, cpu, memory, self.rng.randint(2, 3), "c1")
            self.at(self.rng.uniform(30, 120))
            base["metadata"]["annotations"] = {CHANGE_CAUSE_ANNOTATION: f"deploy {app}"}
            base["metadata"]["creationTimestamp"] = self.history.rfc3339()
            self.create(DEPLOYMENT, base)
            self.settle()

    def _pause_with_pending_change(self, namespace: str, name: str) -> None:
        """``kubectl rollout pause`` then a template change that waits for the resume."""
        self.at(0.2)
        deploy = self.store.get(DEPLOYMENT, namespace, name)
        paused = {**deploy, "spec": {**deploy["spec"], "paused": True}}
        self.store.update(DEPLOYMENT, paused, subresource="main")
        self.settle()
        deploy = self.store.get(DEPLOYMENT, namespace, name)
        changed = _with_version(deploy, VLLM_TAGS[-1], None)
        annotations = {
            **(deploy["metadata"].get("annotations") or {}),
            CHANGE_CAUSE_ANNOTATION: f"stage vLLM {VLLM_TAGS[-1]} (paused for canary review)",
        }
        changed = {**changed, "metadata": {**changed["metadata"], "annotations": annotations}}
        self.store.update(DEPLOYMENT, changed, subresource="main")
        self.settle()

    def _demo_inference_services(self) -> None:
        specs = []
        kueue_tenants = [t for t in self.tenants if self.queued(t)]
        for i in range(8):
            tenant = kueue_tenants[i % len(kueue_tenants)]
            short, model, _ = MODELS[(i * 5 + 3) % len(MODELS)]
            versions = self.rng.randint(2, 4)
            uris = tuple(f"hf://{model}@rev-{k}" for k in range(1, versions + 1))
            specs.append(
                tenants_mod.InferenceServiceSpec(
                    namespace=tenant.namespaces[0],
                    name=f"{short}-svc",
                    tenant=tenant.name,
                    storage_uris=uris,
                    gpu_product=L40S.product if i % 2 else A100.product,
                    gpus=1,
                    min_replicas=1,
                    canary_percent=10 if i == 0 else None,
                    model=short,
                    stage="production" if i % 3 else "staging",
                    age_days=self.rng.uniform(10, 60),
                )
            )
        tenants_mod.create_inference_services(self.store, self.clock, specs)
        self.settle()

    def _demo_jobs(self, finished: bool) -> None:
        """Training Jobs: ``finished`` ones ran days ago (before today's servers held the
        quota); the others are running now, or waiting for quota."""
        for i, tenant in enumerate(self.tenants):
            if finished and i % 2:
                continue
            kind = TRAIN_KINDS[(i + int(finished)) % len(TRAIN_KINDS)]
            name = f"{kind}-{tenant.name.split('-')[-1]}-{self.rng.randint(100, 999)}"
            gpus = self.rng.choice((2, 4)) if not finished else 8
            parallelism = 1 if finished else self.rng.choice((1, 1, 2))
            if finished:
                started_days = self.rng.uniform(4, 12)
                runtime = int(self.rng.uniform(2, 30) * 3600)
            else:
                started_days = self.rng.uniform(0.1, 2)
                runtime = int(self.rng.uniform(3, 10) * 86400)
            product = self.product_of(tenant, i)
            job = training_job(
                tenant.namespaces[0], name, product, gpus, parallelism, runtime, self.queued(tenant)
            )
            self.at(started_days)
            job["metadata"]["creationTimestamp"] = self.history.rfc3339()
            self.create(JOB, job)
            self.settle()
            if finished:
                self.at(started_days - runtime / 86400 - 0.01)
                self.settle()

    # -- the large fleet ----------------------------------------------------------------------
    def build_large(self) -> None:
        self.create_nodes(LARGE)
        self.create_tenants(LARGE, resourcequota_tenants=2)
        self.at(0.5)
        for i, tenant in enumerate(self.tenants):
            self._large_tenant(i, tenant)
        self.settle()
        self.at(0)
        self.settle()

    def _large_tenant(self, i: int, tenant: tenants_mod.TenantSpec) -> None:
        ns = tenant.namespaces[0]
        rng = self.rng
        budget = sum(tenant.quota.values())
        used = 0
        for k in range(12):  # model servers until the tenant's quota is about used up
            short, model, gpus = MODELS[(i + k) % len(MODELS)]
            gpus = min(gpus, 2)
            replicas = rng.randint(1, 4)
            if used + gpus * replicas > budget:
                break
            used += gpus * replicas
            stage = "production" if k % 3 else "staging"
            name = f"{short}-{k}"
            base = inference_deployment(
                ns,
                name,
                model,
                stage,
                self.product_of(tenant, k),
                gpus,
                replicas,
                VLLM_TAGS[0],
                "r1",
                self.queued(tenant),
            )
            self._large_deployment(base, rng.randint(3, 5))
        if rng.random() < 0.6:  # training on top: borrowed from the cohort, or pending
            name = f"{TRAIN_KINDS[i % len(TRAIN_KINDS)]}-{i:03d}"
            job = training_job(
                ns,
                name,
                self.product_of(tenant),
                8,
                1,
                int(rng.uniform(1, 6) * 86400),
                self.queued(tenant),
            )
            job["metadata"]["creationTimestamp"] = self.history.rfc3339()
            self.create(JOB, job)
        cpu_ns = tenant.namespaces[-1]
        small = tenant.mode == tenants_mod.RESOURCEQUOTA_MODE
        for app, image, cpu, memory in CPU_APPS:
            replicas = rng.randint(2, 6) if small else rng.randint(15, 40)
            base = cpu_deployment(cpu_ns, app, image, cpu, memory, replicas, "c1")
            self._large_deployment(base, rng.randint(1, 3))

    def _large_deployment(self, base: JsonObject, revisions: int) -> None:
        """Old revisions laid down as the controller leaves them (empty ReplicaSets), the
        current one created by the controllers."""
        uid = self.manager.ctx.new_uid()
        deploy = {**base, "metadata": {**base["metadata"], "uid": uid}}
        old = []
        for number in range(1, revisions):
            version = (
                _with_version(deploy, VLLM_TAGS[number - 1], f"r{number}")
                if (MODEL_LABEL in base["metadata"]["labels"])
                else _cpu_version(deploy, number)
            )
            when = _stamp(self.now - timedelta(days=(revisions - number) * 7 + 1))
            cause = f"release {number}"
            version["metadata"] = {
                **version["metadata"],
                "annotations": {CHANGE_CAUSE_ANNOTATION: cause},
                "creationTimestamp": when,
            }
            version["apiVersion"], version["kind"] = "apps/v1", "Deployment"
            rs = build_replica_set(version, number, 0, uid=self.manager.ctx.new_uid(), created=when)
            rs["status"] = {"replicas": 0, "observedGeneration": 1}
            old.append(rs)
        if MODEL_LABEL in base["metadata"]["labels"]:
            current = _with_version(deploy, VLLM_TAGS[revisions - 1], f"r{revisions}")
        else:
            current = _cpu_version(deploy, revisions)
        current["metadata"] = {
            **current["metadata"],
            "annotations": {CHANGE_CAUSE_ANNOTATION: f"release {revisions}"},
            "creationTimestamp": _stamp(self.now - timedelta(days=revisions * 7 + 2)),
        }
        self.create(DEPLOYMENT, current)
        for rs in old:
            self.create(REPLICA_SET, rs)


def _cpu_version(deploy: JsonObject, number: int) -> JsonObject:
    template = deploy["spec"]["template"]
    container = {
        **template["spec"]["containers"][0],
        "env": [{"name": "CONFIG_VERSION", "value": f"c{number}"}],
    }
    spec = {**template["spec"], "containers": [container]}
    return {**deploy, "spec": {**deploy["spec"], "template": {**template, "spec": spec}}}


__all__ = ["FLEETS", "build_fleet"]
