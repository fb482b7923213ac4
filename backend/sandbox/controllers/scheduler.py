"""The scheduler: binds pods to nodes, GPUs through the allocator, and explains when it cannot.

Filters run in kube-scheduler's order (NodeUnschedulable, TaintToleration, NodeAffinity /
nodeSelector, NodeResourcesFit); each node fails on the first, and the ``FailedScheduling``
message is the real ``FitError`` text: counts per reason, sorted as strings, then the preemption
summary. GPU pods are packed first-fit over the nodes of their model (GPU clusters bin-pack);
CPU-only pods are spread round-robin. Pods with scheduling gates are never bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.conventions import GPU_PRODUCT_LABEL, GPU_RESOURCE
from backend.k8s.quantity import quantity_ceil
from backend.sandbox.controllers.base import (
    TERMINAL_PHASES,
    ControllerContext,
    JsonObject,
    gpu_request,
    pod_phase,
    set_condition,
)
from backend.sandbox.store import NODE, POD, ResourceType

GATED_MESSAGE = "Scheduling is blocked due to non-empty scheduling gates"
_SCHEDULE_EFFECTS = ("NoSchedule", "NoExecute")


@dataclass(frozen=True)
class NodeInfo:
    """What the filters need to know about a node."""

    name: str
    labels: dict[str, str]
    ready: bool
    unschedulable: bool
    taints: tuple[tuple[str, str, str], ...]  # (key, value, effect) that repel pods

    @classmethod
    def of(cls, node: JsonObject) -> NodeInfo:
        conditions = (node.get("status") or {}).get("conditions") or ()
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        taints = tuple(
            (t.get("key", ""), t.get("value", ""), t.get("effect", ""))
            for t in (node.get("spec") or {}).get("taints") or ()
            if t.get("effect") in _SCHEDULE_EFFECTS
        )
        return cls(
            node["metadata"]["name"],
            dict(node["metadata"].get("labels") or {}),
            ready,
            bool((node.get("spec") or {}).get("unschedulable")),
            taints,
        )


def _tolerates(tolerations: list[JsonObject], taint: tuple[str, str, str]) -> bool:
    key, value, effect = taint
    for tol in tolerations:
        if tol.get("effect") and tol.get("effect") != effect:
            continue
        if tol.get("operator") == "Exists":
            if not tol.get("key") or tol.get("key") == key:
                return True
        elif tol.get("key") == key and tol.get("value", "") == value:
            return True
    return False


def _gpu_container(pod: JsonObject) -> str:
    for container in pod["spec"].get("containers") or ():
        limits = (container.get("resources") or {}).get("limits") or {}
        if GPU_RESOURCE in limits:
            return container.get("name", "")
    containers = pod["spec"].get("containers") or [{}]
    return containers[0].get("name", "")


class Scheduler:
    """kube-scheduler for the sandbox: one pod at a time, retried when GPUs are freed."""

    watches: tuple[ResourceType, ...] = (NODE, POD)

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.nodes: dict[str, NodeInfo] = {}
        self._sorted: list[str] | None = None
        self._by_model: dict[str, list[str]] = {}
        # (product, GPUs asked) -> position before which no node has that many GPUs free
        self._hint: dict[tuple[str, int], int] = {}
        self._round_robin = 0
        self._pending: dict[tuple[str, str], None] = {}
        self._tried_at: tuple[int, int] = (-1, -1)
        self._node_version = 0

    # -- routing ------------------------------------------------------------------------------
    def reconcile(self, rt: ResourceType, namespace: str, name: str) -> None:
        if rt is NODE:
            self._reconcile_node(name)
        else:
            self._reconcile_pod(namespace, name)

    def tick(self, now: float) -> None:
        self.retry()

    def retry(self) -> bool:
        """Try the pending pods again if GPUs were freed or nodes changed; True if any bound."""
        state = (self.ctx.allocator.version, self._node_version)
        if not self._pending or state == self._tried_at:
            return False
        self._tried_at = state
        bound = False
        for namespace, name in list(self._pending):
            pod = self.ctx.store.find(POD, namespace, name)
            if pod is None or pod["spec"].get("nodeName") or pod["spec"].get("schedulingGates"):
                self._pending.pop((namespace, name), None)
                continue
            bound = self._schedule(pod) or bound
        return bound

    # -- nodes --------------------------------------------------------------------------------
    def _reconcile_node(self, name: str) -> None:
        node = self.ctx.store.find(NODE, "", name)
        old = self.nodes.get(name)
        if node is None:
            if old is not None:
                del self.nodes[name]
                self.ctx.allocator.remove_node(name)
                self._nodes_changed(structure=True)
            return
        info = NodeInfo.of(node)
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        gpus = quantity_ceil(allocatable.get(GPU_RESOURCE, 0)) or 0
        if self.ctx.allocator.capacity(name) != gpus:
            self.ctx.allocator.set_capacity(name, gpus)
            self._nodes_changed(structure=False)
        if info != old:
            self.nodes[name] = info
            self._nodes_changed(structure=old is None or old.labels != info.labels)

    def _nodes_changed(self, structure: bool) -> None:
        self._node_version += 1
        self._hint.clear()
        if structure:
            self._sorted = None

    def _node_lists(self) -> tuple[list[str], dict[str, list[str]]]:
        if self._sorted is None:
            self._sorted = sorted(self.nodes)
            self._by_model = {}
            for name in self._sorted:
                product = self.nodes[name].labels.get(GPU_PRODUCT_LABEL)
                if product:
                    self._by_model.setdefault(product, []).append(name)
        return self._sorted, self._by_model

    # -- pods ---------------------------------------------------------------------------------
    def _reconcile_pod(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        pod = self.ctx.store.find(POD, namespace, name)
        allocator = self.ctx.allocator
        if pod is None or pod_phase(pod) in TERMINAL_PHASES:
            self._pending.pop(key, None)
            if allocator.holds(key):
                allocator.release(key)
                self._hint.clear()
            return
        node = pod["spec"].get("nodeName")
        if node:
            self._pending.pop(key, None)
            gpus = gpu_request(pod["spec"])
            if gpus and not allocator.holds(key):
                allocator.assign(node, key, gpus, _gpu_container(pod))
            return
        if pod["spec"].get("schedulingGates"):
            self._pending.pop(key, None)
            self._mark_gated(pod)
            return
        if (pod["spec"].get("schedulerName") or "default-scheduler") != "default-scheduler":
            return
        self._schedule(pod)

    def _mark_gated(self, pod: JsonObject) -> None:
        status = pod.get("status") or {}
        conditions = set_condition(
            list(status.get("conditions") or ()),
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "SchedulingGated",
                "message": GATED_MESSAGE,
                "lastProbeTime": None,
            },
            self.ctx.now_text(),
        )
        if conditions != status.get("conditions"):
            self.ctx.store.update(POD, {**pod, "status": {**status, "conditions": conditions}})

    def _schedule(self, pod: JsonObject) -> bool:
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        gpus = gpu_request(pod["spec"])
        node = self._find_node(pod, gpus)
        now = self.ctx.now_text()
        status = pod.get("status") or {}
        if node is None:
            self._pending[key] = None
            message = self._fit_error(pod, gpus)
            conditions = set_condition(
                list(status.get("conditions") or ()),
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastProbeTime": None,
                },
                now,
            )
            if conditions != status.get("conditions"):
                self.ctx.store.update(POD, {**pod, "status": {**status, "conditions": conditions}})
                self.ctx.record_event(pod, "Warning", "FailedScheduling", message)
            return False
        if gpus:
            self.ctx.allocator.assign(node, key, gpus, _gpu_container(pod))
        self._pending.pop(key, None)
        conditions = [c for c in status.get("conditions") or () if c["type"] != "PodScheduled"]
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now,
            }
        )
        bound = {
            **pod,
            "spec": {**pod["spec"], "nodeName": node},
            "status": {**status, "conditions": conditions},
        }
        self.ctx.store.update(POD, bound)
        self.ctx.record_event(
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {key[0]}/{key[1]} to {node}",
        )
        return True

    def _fits(self, info: NodeInfo, pod: JsonObject, gpus: int, selector: dict) -> bool:
        if info.unschedulable or not info.ready:
            return False
        tolerations = pod["spec"].get("tolerations") or []
        if any(not _tolerates(tolerations, t) for t in info.taints):
            return False
        if any(info.labels.get(k) != v for k, v in selector.items()):
            return False
        return gpus == 0 or self.ctx.allocator.free(info.name) >= gpus

    def _find_node(self, pod: JsonObject, gpus: int) -> str | None:
        every, by_model = self._node_lists()
        selector = pod["spec"].get("nodeSelector") or {}
        product = selector.get(GPU_PRODUCT_LABEL)
        candidates = by_model.get(product, []) if product else every
        if not candidates:
            return None
        if gpus:  # first fit, skipping the nodes known to be full
            hint = (product or "", gpus)
            start = self._hint.get(hint, 0)
            allocator = self.ctx.allocator
            while start < len(candidates) and allocator.free(candidates[start]) < gpus:
                start += 1
            self._hint[hint] = start
            for name in candidates[start:]:
                if self._fits(self.nodes[name], pod, gpus, selector):
                    return name
            return None
        count = len(candidates)
        for step in range(count):  # spread CPU-only pods
            name = candidates[(self._round_robin + step) % count]
            if self._fits(self.nodes[name], pod, 0, selector):
                self._round_robin = (self._round_robin + step + 1) % count
                return name
        return None

    def _fit_error(self, pod: JsonObject, gpus: int) -> str:
        """kube-scheduler's FitError message for a pod no node accepts."""
        selector = pod["spec"].get("nodeSelector") or {}
        tolerations = pod["spec"].get("tolerations") or []
        reasons: dict[str, int] = {}
        preemption: dict[str, int] = {}
        for info in self.nodes.values():
            reason = self._first_failure(info, tolerations, selector, gpus)
            if reason is None:
                continue
            reasons[reason] = reasons.get(reason, 0) + 1
            helpful = reason.startswith("Insufficient")
            verdict = (
                "No preemption victims found for incoming pod"
                if helpful
                else "Preemption is not helpful for scheduling"
            )
            preemption[verdict] = preemption.get(verdict, 0) + 1
        total = len(self.nodes)
        if total == 0:
            return "no nodes available to schedule pods"
        first = ", ".join(sorted(f"{n} {r}" for r, n in reasons.items()))
        second = ", ".join(sorted(f"{n} {r}" for r, n in preemption.items()))
        return (
            f"0/{total} nodes are available: {first}. "
            f"preemption: 0/{total} nodes are available: {second}."
        )

    def _first_failure(
        self, info: NodeInfo, tolerations: list, selector: dict, gpus: int
    ) -> str | None:
        if info.unschedulable:
            return "node(s) were unschedulable"
        for taint in info.taints:
            if not _tolerates(tolerations, taint):
                return f"node(s) had untolerated taint {{{taint[0]}: {taint[1]}}}"
        if not info.ready:  # the node lifecycle controller's taint, even if not written yet
            return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
        if any(info.labels.get(k) != v for k, v in selector.items()):
            return "node(s) didn't match Pod's node affinity/selector"
        if gpus and self.ctx.allocator.free(info.name) < gpus:
            return f"Insufficient {GPU_RESOURCE}"
        return None
