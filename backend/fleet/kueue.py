"""Reading Kueue objects (``kueue.x-k8s.io`` v1beta1 and v1beta2) the way Kueue means them.

A Kueue ``Workload`` is Kueue's unit of admission: one per Job (or pod group). It is pending while
it has no quota reservation; its pod sets say how many pods of which shape it wants, so the GPUs it
waits for are ``count x nvidia.com/gpu`` per pod set. ClusterQueues carry the tenant's quota per
flavor and, in their status, what is used and borrowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.conventions import GPU_RESOURCE
from backend.fleet.objects import (
    condition,
    condition_true,
    count,
    dig,
    mapping,
    optional_count,
    pod_spec_gpu_model,
    pod_spec_gpus,
    sequence,
    text,
)


def admitted(workload: Mapping[str, Any]) -> bool:
    """Quota is reserved (status.admission set) or the Admitted condition is True."""
    return bool(dig(workload, "status", "admission")) or condition_true(workload, "Admitted")


def finished(workload: Mapping[str, Any]) -> bool:
    return condition_true(workload, "Finished")


def pending(workload: Mapping[str, Any]) -> bool:
    """Waiting for quota: neither admitted nor finished (and not deactivated)."""
    if dig(workload, "spec", "active") is False:
        return False
    return not admitted(workload) and not finished(workload)


def pending_message(workload: Mapping[str, Any]) -> str:
    """Kueue's own words for why the workload waits, e.g. "insufficient unused quota ..."."""
    for type_ in ("QuotaReserved", "Admitted"):
        cond = condition(workload, type_)
        if cond is not None and str(cond.get("status")) != "True":
            message = text(cond.get("message"))
            if message:
                return message
    queue = text(dig(workload, "spec", "queueName"))
    return f"waiting for quota in queue {queue}" if queue else "waiting for quota"


def pod_set_gpus(workload: Mapping[str, Any]) -> list[tuple[str | None, int]]:
    """(GPU model from the pod template's nodeSelector, GPUs) for each pod set."""
    out = []
    for pod_set in sequence(dig(workload, "spec", "podSets")):
        pod_set = mapping(pod_set)
        pod_spec = dig(pod_set, "template", "spec")
        gpus = count(pod_set.get("count"), default=1) * pod_spec_gpus(pod_spec)
        if gpus:
            out.append((pod_spec_gpu_model(pod_spec), gpus))
    return out


def cohort(queue: Mapping[str, Any]) -> str | None:
    """``spec.cohortName`` (v1beta2) or ``spec.cohort`` (v1beta1)."""
    spec = mapping(queue.get("spec"))
    return text(spec.get("cohortName")) or text(spec.get("cohort"))


def gpu_flavor_quotas(queue: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each flavor's nvidia.com/gpu quota: flavor, nominal, borrowing and lending limits."""
    out = []
    for group in sequence(dig(queue, "spec", "resourceGroups")):
        for flavor in sequence(mapping(group).get("flavors")):
            flavor = mapping(flavor)
            for resource in sequence(flavor.get("resources")):
                resource = mapping(resource)
                if resource.get("name") != GPU_RESOURCE:
                    continue
                out.append(
                    {
                        "flavor": text(flavor.get("name")) or "",
                        "nominal": count(resource.get("nominalQuota")),
                        "borrowing_limit": optional_count(resource.get("borrowingLimit")),
                        "lending_limit": optional_count(resource.get("lendingLimit")),
                    }
                )
    return out


def gpu_flavor_usage(queue: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """flavor -> (total used, borrowed) of nvidia.com/gpu from status.flavorsUsage."""
    out: dict[str, tuple[int, int]] = {}
    for usage in sequence(dig(queue, "status", "flavorsUsage")):
        usage = mapping(usage)
        for resource in sequence(usage.get("resources")):
            resource = mapping(resource)
            if resource.get("name") == GPU_RESOURCE:
                out[text(usage.get("name")) or ""] = (
                    count(resource.get("total")),
                    count(resource.get("borrowed")),
                )
    return out
