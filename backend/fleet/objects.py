"""Safe readers for slim Kubernetes objects: any field may be missing, None or malformed.

Real clusters (and hand-written manifests) omit fields, use strings where numbers are expected
("2", "1k", "500m") and sometimes put garbage in labels. The fleet model must never crash on such
input, so every read of a cluster object goes through these small helpers, which answer a safe
default instead of raising.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from backend.conventions import (
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    KUEUE_GATE,
)
from backend.k8s.quantity import quantity_ceil

TERMINATED_PHASES = frozenset({"Succeeded", "Failed"})

_EMPTY: Mapping[str, Any] = {}


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one (for ``obj.get("spec")`` being None)."""
    if type(value) is dict:  # the common case, without the slow ABC check
        return value
    return value if isinstance(value, Mapping) else _EMPTY


def sequence(value: Any) -> list[Any] | tuple[Any, ...]:
    """``value`` if it is a list or tuple, else an empty tuple."""
    return value if type(value) is list or isinstance(value, tuple) else ()


def dig(obj: Any, *path: str) -> Any:
    """``obj[p0][p1]...`` or None as soon as a step is missing or not a mapping."""
    for key in path:
        if type(obj) is not dict and not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def meta(obj: Any) -> Mapping[str, Any]:
    if type(obj) is dict and type(found := obj.get("metadata")) is dict:
        return found
    return mapping(mapping(obj).get("metadata"))


# The model reads each object's name and namespace many times over (a whole build of the large
# fleet: ~400,000 times): the checks below answer a well-formed object in one call, not four,
# and fall back to the general path for anything else.


def name_of(obj: Any) -> str:
    if type(obj) is dict:
        found = obj.get("metadata")
        if type(found) is dict and type(name := found.get("name")) is str:
            return name
    return text(meta(obj).get("name")) or ""


def namespace_of(obj: Any) -> str:
    if type(obj) is dict:
        found = obj.get("metadata")
        if type(found) is dict and type(namespace := found.get("namespace")) is str:
            return namespace
    return text(meta(obj).get("namespace")) or ""


def labels(obj: Any) -> Mapping[str, Any]:
    if type(obj) is dict:
        found = obj.get("metadata")
        if type(found) is dict and type(values := found.get("labels")) is dict:
            return values
    return mapping(meta(obj).get("labels"))


def object_annotations(obj: Any) -> Mapping[str, Any]:
    return mapping(meta(obj).get("annotations"))


def text(value: Any) -> str | None:
    """A string field as str, or None when missing; numbers are turned into their text."""
    if type(value) is str:
        return value
    if value is None or isinstance(value, Mapping | list | tuple):
        return None
    return value if isinstance(value, str) else str(value)


def count(value: Any, default: int = 0) -> int:
    """An integer count from a quantity, rounded up as Kubernetes' ``Quantity.Value()`` does."""
    number = quantity_ceil(value)
    return default if number is None else max(0, number)


def optional_count(value: Any) -> int | None:
    """Like :func:`count` but None when the value is missing or malformed."""
    number = quantity_ceil(value)
    return None if number is None else max(0, number)


def timestamp(value: Any) -> datetime | None:
    """An RFC 3339 timestamp ("2024-05-01T10:00:00Z") as an aware UTC datetime, else None."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def created(obj: Any) -> datetime | None:
    return timestamp(meta(obj).get("creationTimestamp"))


def conditions(obj: Any) -> list[Mapping[str, Any]]:
    return [mapping(c) for c in sequence(dig(obj, "status", "conditions")) if c]


def condition(obj: Any, type_: str) -> Mapping[str, Any] | None:
    """The status condition of that type, or None."""
    for cond in sequence(dig(obj, "status", "conditions")):
        if (type(cond) is dict or isinstance(cond, Mapping)) and cond.get("type") == type_:
            return cond
    return None


def condition_true(obj: Any, type_: str) -> bool:
    cond = condition(obj, type_)
    return cond is not None and str(cond.get("status")) == "True"


def owners(obj: Any) -> list[tuple[str, str]]:
    """(kind, name) of every owner reference."""
    out: list[tuple[str, str]] = []
    refs = meta(obj).get("ownerReferences")
    if not refs:
        return out
    for ref in sequence(refs):
        kind, name = (ref.get("kind"), ref.get("name")) if type(ref) is dict else (None, None)
        if type(kind) is not str or type(name) is not str:  # all but a well-formed reference
            ref = mapping(ref)
            kind, name = text(ref.get("kind")), text(ref.get("name"))
        if kind and name:
            out.append((kind, name))
    return out


def owner_named(obj: Any, kind: str) -> str | None:
    for owner_kind, owner_name in owners(obj):
        if owner_kind == kind:
            return owner_name
    return None


def containers(pod_spec: Any) -> list[Mapping[str, Any]]:
    return [mapping(c) for c in sequence(mapping(pod_spec).get("containers"))]


def container_gpus(container: Mapping[str, Any]) -> int:
    """GPUs one container asks for: limits first (extended resources), then requests."""
    resources = mapping(container.get("resources"))
    for part in ("limits", "requests"):
        value = mapping(resources.get(part)).get(GPU_RESOURCE)
        if value is not None:
            return count(value)
    return 0


def pod_spec_gpus(pod_spec: Any) -> int:
    """GPUs a pod spec (or pod template spec) asks for in all."""
    total = 0
    for container in containers(pod_spec):
        total += container_gpus(container)
    return total


def pod_spec_gpu_model(pod_spec: Any) -> str | None:
    return text(mapping(mapping(pod_spec).get("nodeSelector")).get(GPU_PRODUCT_LABEL))


def pod_phase(pod: Any) -> str:
    if type(pod) is dict:  # a well-formed pod in one call (a whole build reads 20,000)
        status = pod.get("status")
        if type(status) is dict and type(phase := status.get("phase")) is str and phase:
            return phase
    return text(dig(pod, "status", "phase")) or "Pending"


def pod_terminated(pod: Any) -> bool:
    return pod_phase(pod) in TERMINATED_PHASES


def pod_ready(pod: Any) -> bool:
    """The Ready condition, or (when conditions are missing) every container reporting ready."""
    cond = condition(pod, "Ready")
    if cond is not None:
        return str(cond.get("status")) == "True"
    statuses = [mapping(s) for s in sequence(dig(pod, "status", "containerStatuses"))]
    return bool(statuses) and all(s.get("ready") is True for s in statuses)


def pod_restarts(pod: Any) -> int:
    statuses = sequence(dig(pod, "status", "containerStatuses"))
    return sum(count(mapping(s).get("restartCount")) for s in statuses)


def pod_gated_by_kueue(pod: Any) -> bool:
    gates = sequence(dig(pod, "spec", "schedulingGates"))
    return any(mapping(g).get("name") == KUEUE_GATE for g in gates)


def pod_unschedulable(pod: Any) -> str | None:
    """The scheduler's message when the pod cannot be placed (PodScheduled False Unschedulable)."""
    cond = condition(pod, "PodScheduled")
    if cond is None or str(cond.get("status")) == "True":
        return None
    if cond.get("reason") != "Unschedulable":
        return None
    return text(cond.get("message")) or "no node can run the pod"


def first_image(pod_spec: Any) -> str | None:
    for container in containers(pod_spec):
        image = text(container.get("image"))
        if image:
            return image
    return None


def revision_number(value: Any) -> int:
    """A ``deployment.kubernetes.io/revision`` value; missing or malformed = 0, as kubectl does."""
    try:
        return int(str(value).strip()) if value is not None else 0
    except ValueError:
        return 0


def trailing_number(name: str) -> int:
    """The number at the end of a name ("x-predictor-00003" -> 3); -1 when there is none."""
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)) if match else -1


@functools.lru_cache(maxsize=1024)
def normalized_model(value: str | None) -> str:
    """GPU model names compared loosely: "NVIDIA H100 80GB HBM3" == "NVIDIA-H100-80GB-HBM3".

    Remembered per name: a fleet has few models, compared for every GPU and quota row."""
    return re.sub(r"[\s_]+", "-", (value or "").strip()).lower()


_DIGITS = re.compile(r"(\d+)")


@functools.lru_cache(maxsize=1 << 15)
def natural_key(value: str) -> tuple[Any, ...]:
    """Case-insensitive natural order: "node-2" before "node-10".

    Remembered per string: the same names are sorted again after every model build (the first
    request sorted by a name field pays for the whole list), and computing a key costs far more
    than comparing two."""
    parts: list[Any] = _DIGITS.split(value.casefold())
    parts[1::2] = [int(p) for p in parts[1::2]]
    return tuple(parts)


KSERVE_REVISION_LABELS = ("serving.knative.dev/revision", "serving.kserve.io/revision")


def pod_kserve_revision(pod: Any) -> str | None:
    """The KServe (Knative) revision a predictor pod belongs to, from its labels."""
    pod_labels = labels(pod)
    for label in KSERVE_REVISION_LABELS:
        value = text(pod_labels.get(label))
        if value:
            return value
    return None
