"""What every sandbox controller shares: the context, the GPU allocator, events and helpers.

A controller is the sandbox's version of one loop of kube-controller-manager (or the scheduler,
or the kubelet): ``reconcile`` brings one object's world to its desired state and must be
idempotent (it is called again after each of its own writes), ``tick`` handles what depends on
time passing (pods settling). Controllers never mutate stored dicts: they build new ones from
shallow copies of the parts they change, which keeps 20,000-pod fleets cheap.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from backend.conventions import GPU_RESOURCE
from backend.k8s.names import random_suffix
from backend.k8s.quantity import quantity_ceil
from backend.sandbox.clock import Clock
from backend.sandbox.store import EVENT, POD, REPLICA_SET, ResourceType, Store

JsonObject = dict[str, Any]
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


class Controller(Protocol):
    """One control loop; the manager routes changes of ``watches`` kinds to ``reconcile``."""

    watches: tuple[ResourceType, ...]

    def reconcile(self, rt: ResourceType, namespace: str, name: str) -> None: ...

    def tick(self, now: float) -> None: ...


class GpuAllocator:
    """Which GPU of which node each pod holds: the device plugin plus kubelet pod-resources view.

    ``version`` goes up whenever GPUs are freed or capacity changes, so that the scheduler retries
    pending pods only when something could have changed for them.
    """

    def __init__(self) -> None:
        self._capacity: dict[str, int] = {}
        self._used: dict[str, dict[int, tuple[str, str, str]]] = defaultdict(dict)
        self._by_pod: dict[tuple[str, str], tuple[str, list[int]]] = {}
        self.version = 0

    def set_capacity(self, node: str, count: int) -> None:
        if self._capacity.get(node) != count:
            self._capacity[node] = count
            self.version += 1

    def remove_node(self, node: str) -> None:
        self._capacity.pop(node, None)
        self.version += 1

    def capacity(self, node: str) -> int:
        return self._capacity.get(node, 0)

    def assign(
        self, node: str, pod_key: tuple[str, str], count: int, container: str = ""
    ) -> list[int] | None:
        """Give ``count`` free GPUs of ``node`` (lowest indices first) to a pod, or None."""
        held = self._by_pod.get(pod_key)
        if held is not None:
            return held[1] if held[0] == node else None
        used = self._used[node]
        free = [i for i in range(self._capacity.get(node, 0)) if i not in used]
        if len(free) < count:
            return None
        chosen = free[:count]
        for index in chosen:
            used[index] = (pod_key[0], pod_key[1], container)
        self._by_pod[pod_key] = (node, chosen)
        return chosen

    def release(self, pod_key: tuple[str, str]) -> None:
        held = self._by_pod.pop(pod_key, None)
        if held is None:
            return
        used = self._used[held[0]]
        for index in held[1]:
            used.pop(index, None)
        self.version += 1

    def holds(self, pod_key: tuple[str, str]) -> bool:
        return pod_key in self._by_pod

    def pods_on(self, node: str) -> dict[int, tuple[str, str, str]]:
        """GPU index -> (namespace, pod, container) for the allocated GPUs of a node."""
        return dict(self._used.get(node, {}))

    def free(self, node: str) -> int:
        return self._capacity.get(node, 0) - len(self._used.get(node, {}))


class OwnerIndex:
    """Children by controlling owner: pods of a ReplicaSet or Job, ReplicaSets of a Deployment.

    Kept up to date by the manager from store changes, so that reconciling one owner never
    scans 20,000 pods.
    """

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, str], set[str]] = defaultdict(set)

    def observe(self, rt: ResourceType, event_type: str, obj: JsonObject) -> None:
        if rt is not POD and rt is not REPLICA_SET:
            return
        ref = controller_ref(obj)
        if ref is None:
            return
        meta = obj["metadata"]
        key = (ref["kind"], meta.get("namespace", ""), ref["name"])
        if event_type == "DELETED":
            children = self._children.get(key)
            if children is not None:
                children.discard(meta["name"])
                if not children:
                    del self._children[key]
        else:
            self._children[key].add(meta["name"])

    def children(self, owner_kind: str, namespace: str, owner: str) -> list[str]:
        return sorted(self._children.get((owner_kind, namespace, owner), ()))


@dataclass
class ControllerContext:
    """Everything a controller may use; one per ``Controllers`` manager."""

    store: Store
    clock: Clock
    settle_seconds: float
    rng: random.Random
    allocator: GpuAllocator
    index: OwnerIndex = field(default_factory=OwnerIndex)
    # Off while a large fleet is built: its pods are "older" than the 1 h events live.
    events_enabled: bool = True
    _events: dict[tuple, str] = field(default_factory=dict)
    _event_seq: int = 0
    _now_second: int = -1
    _now_text: str = ""

    def now_text(self) -> str:
        """``clock.rfc3339()``, formatted once per second (it is asked for on every write)."""
        moment = self.clock.now()
        second = int(moment.timestamp())
        if second != self._now_second:
            self._now_second = second
            self._now_text = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        return self._now_text

    def new_uid(self) -> str:
        """A version-4-shaped UUID from the seeded generator (deterministic fleets)."""
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def suffix(self, length: int = 5) -> str:
        return random_suffix(self.rng, length)

    def record_event(
        self, obj: JsonObject, type_: str, reason: str, message: str, *, component: str = ""
    ) -> None:
        """Record a core/v1 Event about ``obj``; a repeat bumps ``count`` as the recorder does."""
        if not self.events_enabled:
            return
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        source = component or _COMPONENTS.get(obj.get("kind", ""), "sandbox")
        key = (namespace, obj.get("kind"), meta["name"], meta.get("uid"), type_, reason, message)
        now = self.now_text()
        existing_name = self._events.get(key)
        existing = self.store.find(EVENT, namespace, existing_name) if existing_name else None
        if existing is not None:
            bumped = {**existing, "count": existing.get("count", 1) + 1, "lastTimestamp": now}
            bumped["metadata"] = {**existing["metadata"]}
            self.store.update(EVENT, bumped)
            return
        self._event_seq += 1
        stamp = int(self.clock.now().timestamp() * 1e9) + self._event_seq
        name = f"{meta['name']}.{stamp:x}"
        event = {
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": now},
            "involvedObject": {
                "kind": obj.get("kind"),
                "namespace": meta.get("namespace", ""),
                "name": meta["name"],
                "uid": meta.get("uid"),
                "apiVersion": obj.get("apiVersion"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": source},
            "reportingComponent": source,
            "reportingInstance": "",
        }
        self.store.create(EVENT, event)
        self._events[key] = name


_COMPONENTS = {
    "Deployment": "deployment-controller",
    "ReplicaSet": "replicaset-controller",
    "Job": "job-controller",
    "Pod": "default-scheduler",
}


# -- helpers shared by the controllers --------------------------------------------------------


def clone(obj: Any) -> Any:
    """A deep copy, several times faster than ``copy.deepcopy`` for JSON-shaped data."""
    return orjson.loads(orjson.dumps(obj))


def due(now: float, next_at: float, interval: float) -> bool:
    """Whether a periodic check planned for ``next_at`` should run at ``now``; a plan further
    ahead than one interval means time jumped (a test or a fleet build ticked "an hour later")
    and counts as due."""
    return now >= next_at or next_at - now > interval


def controller_ref(obj: JsonObject) -> JsonObject | None:
    for ref in obj["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def owned_by(obj: JsonObject, owner: JsonObject) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == owner["metadata"].get("uid")


def owner_reference(owner: JsonObject) -> JsonObject:
    """The ownerReference a controller puts on what it creates (``controller: true``)."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def gpu_request(pod_spec: JsonObject) -> int:
    """GPUs a pod (or pod template) asks for: ``nvidia.com/gpu`` in limits, else requests."""
    total = 0
    for container in pod_spec.get("containers") or ():
        resources = container.get("resources") or {}
        value = (resources.get("limits") or {}).get(GPU_RESOURCE)
        if value is None:
            value = (resources.get("requests") or {}).get(GPU_RESOURCE)
        if value is not None:
            total += quantity_ceil(value) or 0
    return total


def set_condition(
    conditions: list[JsonObject], new: JsonObject, now: str, *, update_time: bool = False
) -> list[JsonObject]:
    """Conditions with ``new`` in place of the one of its type.

    ``lastTransitionTime`` moves only when the status changes; an unchanged condition keeps its
    timestamps so that reconciling again writes nothing.
    """
    out: list[JsonObject] = []
    found = False
    for cond in conditions:
        if cond.get("type") != new["type"]:
            out.append(cond)
            continue
        found = True
        same = all(cond.get(k) == new.get(k) for k in ("status", "reason", "message"))
        if same:
            out.append(cond)
            continue
        merged = {**new, "lastTransitionTime": cond.get("lastTransitionTime", now)}
        if cond.get("status") != new["status"]:
            merged["lastTransitionTime"] = now
        if update_time:
            merged["lastUpdateTime"] = now
        out.append(merged)
    if not found:
        cond = {**new, "lastTransitionTime": now}
        if update_time:
            cond["lastUpdateTime"] = now
        out.append(cond)
    return out


def pod_phase(pod: JsonObject) -> str:
    return (pod.get("status") or {}).get("phase", "Pending")


def pod_ready(pod: JsonObject) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def qos_class(pod_spec: JsonObject) -> str:
    """The pod's QoS class as the API server computes it (simplified to cpu and memory)."""
    requests_any = False
    guaranteed = True
    for container in pod_spec.get("containers") or ():
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or limits
        if requests or limits:
            requests_any = True
        for res in ("cpu", "memory"):
            if res not in limits or str(requests.get(res)) != str(limits.get(res)):
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def new_pod(
    ctx: ControllerContext,
    template: JsonObject,
    namespace: str,
    name: str,
    owner: JsonObject,
    extra_labels: dict[str, str] | None = None,
) -> JsonObject:
    """A pod from a template, with the defaults the API server fills in."""
    tmeta = template.get("metadata") or {}
    spec = clone(template.get("spec") or {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    labels = {**(tmeta.get("labels") or {}), **(extra_labels or {})}
    meta: JsonObject = {
        "name": name,
        "namespace": namespace,
        "uid": ctx.new_uid(),
        "labels": labels,
        "ownerReferences": [owner_reference(owner)],
        "creationTimestamp": ctx.now_text(),
    }
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {"phase": "Pending", "qosClass": qos_class(spec)},
    }


def unique_pod_name(ctx: ControllerContext, namespace: str, prefix: str) -> str:
    """``<prefix>-xxxxx`` not yet taken, as ``generateName`` makes it."""
    while True:
        name = f"{prefix}-{ctx.suffix()}"
        if ctx.store.find(POD, namespace, name) is None:
            return name
