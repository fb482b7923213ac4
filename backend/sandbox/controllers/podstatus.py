"""The kubelet's part: a bound pod goes ContainerCreating, then Running and Ready, maybe Succeeded.

Settling takes ``settle_seconds`` of the event loop's monotonic time (0 = at once). A pod whose
template carries the sandbox annotation ``RUNTIME_ANNOTATION`` (seconds) exits 0 that long after
it started by the sandbox clock, which is how training Jobs complete; without it a pod runs until
deleted.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta

from backend.sandbox.controllers.base import (
    TERMINAL_PHASES,
    ControllerContext,
    JsonObject,
    pod_phase,
)
from backend.sandbox.store import NODE, POD, ResourceType

RUNTIME_ANNOTATION = "sandbox.opsconsole.io/runtime-seconds"


def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def _cond(type_: str, status: str, now: str, reason: str = "", message: str = "") -> JsonObject:
    cond: JsonObject = {
        "type": type_,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": now,
    }
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


class PodStatusController:
    """Moves bound pods through their lifecycle and gives them IP addresses."""

    watches: tuple[ResourceType, ...] = (POD,)

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self._bound_at: dict[tuple[str, str], float] = {}
        self._finish_at: dict[tuple[str, str], datetime] = {}
        self._networks: dict[str, tuple[str, str]] = {}  # node -> (pod IP prefix, host IP)
        self._used_ips: dict[str, set[str]] = {}

    def reconcile(self, rt: ResourceType, namespace: str, name: str) -> None:
        self._reconcile(namespace, name, time.monotonic())

    def tick(self, now: float) -> None:
        settle = self.ctx.settle_seconds
        for key in [k for k, t in self._bound_at.items() if t + settle <= now]:
            self._reconcile(key[0], key[1], now)
        wall = self.ctx.clock.now()
        for key in [k for k, t in self._finish_at.items() if t <= wall]:
            self._reconcile(key[0], key[1], now)

    def _forget(self, key: tuple[str, str], pod: JsonObject | None) -> None:
        self._bound_at.pop(key, None)
        self._finish_at.pop(key, None)
        if pod is not None:
            ip = (pod.get("status") or {}).get("podIP")
            node = pod["spec"].get("nodeName")
            if ip and node in self._used_ips:
                self._used_ips[node].discard(ip)

    def _reconcile(self, namespace: str, name: str, now: float) -> None:
        key = (namespace, name)
        pod = self.ctx.store.find(POD, namespace, name)
        if pod is None or pod_phase(pod) in TERMINAL_PHASES:
            self._forget(key, pod)
            return
        node = pod["spec"].get("nodeName")
        if not node:
            return
        phase = pod_phase(pod)
        if phase == "Pending":
            bound_at = self._bound_at.setdefault(key, now)
            if now - bound_at >= self.ctx.settle_seconds:
                self._bound_at.pop(key, None)
                self._write(pod, self._running(pod, node))
                self._started_events(pod)
            elif not (pod.get("status") or {}).get("containerStatuses"):
                self._write(pod, self._creating(pod, node))
            return
        if phase == "Running":
            ip = (pod.get("status") or {}).get("podIP")
            if ip:
                self._used_ips.setdefault(node, set()).add(ip)
            finish_at = self._finish_at.get(key) or self._finish_time(pod)
            if finish_at is None:
                return
            if finish_at <= self.ctx.clock.now():
                self._finish_at.pop(key, None)
                self._write(pod, self._succeeded(pod))
            else:
                self._finish_at[key] = finish_at

    @staticmethod
    def _finish_time(pod: JsonObject) -> datetime | None:
        """When a pod with a runtime annotation exits: its start plus the runtime (clock time,
        so that a frozen clock keeps it running and a restarted sandbox agrees)."""
        runtime = (pod["metadata"].get("annotations") or {}).get(RUNTIME_ANNOTATION)
        if runtime is None:
            return None
        status = pod.get("status") or {}
        started = status.get("startTime")
        for cs in status.get("containerStatuses") or ():
            started = ((cs.get("state") or {}).get("running") or {}).get("startedAt", started)
        try:
            begin = datetime.strptime(started or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            return begin + timedelta(seconds=float(runtime))
        except ValueError:
            return None

    def _started_events(self, pod: JsonObject) -> None:
        """The kubelet's events for a container that starts from a cached image."""
        for container in pod["spec"].get("containers") or ():
            name, image = container.get("name", ""), container.get("image", "")
            for reason, message in (
                ("Pulled", f'Container image "{image}" already present on machine'),
                ("Created", f"Created container {name}"),
                ("Started", f"Started container {name}"),
            ):
                self.ctx.record_event(pod, "Normal", reason, message, component="kubelet")

    def _write(self, pod: JsonObject, status: JsonObject) -> None:
        self.ctx.store.update(POD, {**pod, "status": status})

    # -- addresses ----------------------------------------------------------------------------
    def _network(self, node_name: str) -> tuple[str, str]:
        known = self._networks.get(node_name)
        if known is not None:
            return known
        node = self.ctx.store.find(NODE, "", node_name) or {"spec": {}, "status": {}}
        cidr = (node.get("spec") or {}).get("podCIDR")
        if cidr:
            prefix = cidr.split("/")[0].rsplit(".", 1)[0]
        else:
            h = int(_digest(node_name)[:8], 16)
            prefix = f"10.{128 + (h >> 8) % 64}.{h & 255}"
        host = next(
            (
                a.get("address")
                for a in (node.get("status") or {}).get("addresses") or ()
                if a.get("type") == "InternalIP"
            ),
            f"{prefix}.1",
        )
        self._networks[node_name] = (prefix, host)
        return prefix, host

    def _pod_ip(self, pod: JsonObject, node: str) -> str:
        current = (pod.get("status") or {}).get("podIP")
        if current:
            return current
        prefix, _ = self._network(node)
        used = self._used_ips.setdefault(node, set())
        for last in range(2, 255):
            ip = f"{prefix}.{last}"
            if ip not in used:
                used.add(ip)
                return ip
        return f"{prefix}.254"

    # -- statuses -----------------------------------------------------------------------------
    def _base(self, pod: JsonObject, node: str) -> JsonObject:
        status = pod.get("status") or {}
        _, host = self._network(node)
        return {
            "phase": "Pending",
            "hostIP": host,
            "hostIPs": [{"ip": host}],
            "startTime": status.get("startTime") or self.ctx.now_text(),
            "qosClass": status.get("qosClass", "BestEffort"),
        }

    def _scheduled_at(self, pod: JsonObject, now: str) -> str:
        for cond in (pod.get("status") or {}).get("conditions") or ():
            if cond.get("type") == "PodScheduled" and cond.get("status") == "True":
                return cond.get("lastTransitionTime") or now
        return now

    def _creating(self, pod: JsonObject, node: str) -> JsonObject:
        now = self.ctx.now_text()
        names = [c.get("name", "") for c in pod["spec"].get("containers") or ()]
        unready = f"containers with unready status: [{' '.join(names)}]"
        status = self._base(pod, node)
        status["conditions"] = [
            _cond("PodReadyToStartContainers", "False", now),
            _cond("Initialized", "True", now),
            _cond("Ready", "False", now, "ContainersNotReady", unready),
            _cond("ContainersReady", "False", now, "ContainersNotReady", unready),
            _cond("PodScheduled", "True", self._scheduled_at(pod, now)),
        ]
        status["containerStatuses"] = [
            {
                "name": c.get("name", ""),
                "state": {"waiting": {"reason": "ContainerCreating"}},
                "lastState": {},
                "ready": False,
                "restartCount": 0,
                "image": c.get("image", ""),
                "imageID": "",
                "started": False,
            }
            for c in pod["spec"].get("containers") or ()
        ]
        return status

    def _running(self, pod: JsonObject, node: str) -> JsonObject:
        now = self.ctx.now_text()
        uid = pod["metadata"].get("uid", pod["metadata"]["name"])
        status = self._base(pod, node)
        ip = self._pod_ip(pod, node)
        status.update(phase="Running", podIP=ip, podIPs=[{"ip": ip}])
        status["conditions"] = [
            _cond("PodReadyToStartContainers", "True", now),
            _cond("Initialized", "True", now),
            _cond("Ready", "True", now),
            _cond("ContainersReady", "True", now),
            _cond("PodScheduled", "True", self._scheduled_at(pod, now)),
        ]
        status["containerStatuses"] = [
            {
                "name": c.get("name", ""),
                "state": {"running": {"startedAt": now}},
                "lastState": {},
                "ready": True,
                "restartCount": 0,
                "image": c.get("image", ""),
                "imageID": f"{c.get('image', '').split(':')[0]}@sha256:"
                f"{_digest(c.get('image', ''))}",
                "containerID": f"containerd://{_digest(uid, c.get('name', ''))}",
                "started": True,
            }
            for c in pod["spec"].get("containers") or ()
        ]
        return status

    def _succeeded(self, pod: JsonObject) -> JsonObject:
        now = self.ctx.now_text()
        status = dict(pod.get("status") or {})
        status["phase"] = "Succeeded"
        conditions = []
        for cond in status.get("conditions") or ():
            if cond["type"] in ("Ready", "ContainersReady", "PodReadyToStartContainers"):
                reason = "PodCompleted" if cond["type"] != "PodReadyToStartContainers" else ""
                cond = _cond(cond["type"], "False", now, reason)
            conditions.append(cond)
        status["conditions"] = conditions
        finished = []
        for cs in status.get("containerStatuses") or ():
            started = (cs.get("state") or {}).get("running", {}).get("startedAt", now)
            finished.append(
                {
                    **cs,
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": started,
                            "finishedAt": now,
                            "containerID": cs.get("containerID", ""),
                        }
                    },
                    "ready": False,
                    "started": False,
                }
            )
        status["containerStatuses"] = finished
        return status
