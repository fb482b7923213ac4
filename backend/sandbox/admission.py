"""Admission for objects created through the API: Kueue's webhook and ResourceQuota.

A real API server runs mutating webhooks and then admission plugins between validation and
storage. For the sandbox that is: Kueue's webhook (a Job asking for a queue is created suspended;
a pod asking for one gets the ``kueue.x-k8s.io/admission`` scheduling gate) and the ResourceQuota
plugin (403 ``exceeded quota: ...``). Controllers that create objects call the same rules
themselves, as the real ones go through admission too.
"""

from __future__ import annotations

from typing import Any

from backend.conventions import QUEUE_LABEL
from backend.sandbox.controllers.base import gpu_request
from backend.sandbox.controllers.quota import check_quota
from backend.sandbox.controllers.replicasets import gate_for_kueue, has_local_queue
from backend.sandbox.store import JOB, POD, ApiError, ResourceType, Store

JsonObject = dict[str, Any]


def admit_create(store: Store, rt: ResourceType, obj: JsonObject) -> None:
    """Mutate ``obj`` as the webhooks would, or raise the 403 an admission plugin answers.

    Called only for real (not dry-run) creates, because the quota check charges the pod.
    """
    if rt is JOB:
        _suspend_queued_job(store, obj)
    elif rt is POD:
        gate_for_kueue(store, obj, {})
        _admit_to_quota(store, obj)


def _suspend_queued_job(store: Store, job: JsonObject) -> None:
    labels = job["metadata"].get("labels") or {}
    if QUEUE_LABEL in labels and has_local_queue(store, job["metadata"]["namespace"]):
        job.setdefault("spec", {})["suspend"] = True


def _admit_to_quota(store: Store, pod: JsonObject) -> None:
    """403 when the pod's GPUs exceed a ResourceQuota; ``check_quota`` charges it otherwise, so
    the name must be known to be free first."""
    meta = pod["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    if store.find(POD, namespace, name) is not None:
        raise ApiError.already_exists(POD, name)
    message = check_quota(store, namespace, gpu_request(pod.get("spec") or {}))
    if message:
        raise ApiError(
            403, "Forbidden", f'pods "{name}" is forbidden: {message}', rt=POD, name=name
        )
