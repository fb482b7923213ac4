"""The defaults the API server fills in on create, for the kinds whose defaults matter here.

A real server completes every object it stores (``SetDefaults_*`` in ``pkg/apis/*/v1``):
stuck-rollout detection reads ``progressDeadlineSeconds``, ``kubectl rollout undo`` compares pod
templates that carry the pod defaults, and history is trimmed to ``revisionHistoryLimit``.
"""

from __future__ import annotations

from typing import Any

from backend.sandbox.store import DEPLOYMENT, JOB, POD, REPLICA_SET, ResourceType

JsonObject = dict[str, Any]

_PROBE = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}


def apply_defaults(rt: ResourceType, obj: JsonObject) -> None:
    """Fill the fields the API server defaults, in place; values already set are kept."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if rt is POD:
        _pod_spec(spec)
    elif rt is DEPLOYMENT:
        _deployment(spec)
    elif rt is REPLICA_SET:
        spec.setdefault("replicas", 1)
        _template(spec)
    elif rt is JOB:
        _job(spec)


def _template(spec: JsonObject) -> None:
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        _pod_spec(template["spec"])


def _deployment(spec: JsonObject) -> None:
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("maxUnavailable", "25%")
                rolling.setdefault("maxSurge", "25%")
    _template(spec)


def _job(spec: JsonObject) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    _template(spec)


def _pod_spec(spec: JsonObject) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or ():
            if isinstance(container, dict):
                _container(container)


def _container(container: JsonObject) -> None:
    container.setdefault("imagePullPolicy", _pull_policy(str(container.get("image") or "")))
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if isinstance(container.get(probe), dict):
            for field, value in _PROBE.items():
                container[probe].setdefault(field, value)


def _pull_policy(image: str) -> str:
    """Always for ``:latest`` or an untagged image, IfNotPresent otherwise (a digest counts)."""
    if "@" in image:
        return "IfNotPresent"
    name = image.rsplit("/", 1)[-1]
    tag = name.split(":", 1)[1] if ":" in name else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"
