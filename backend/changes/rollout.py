"""``rollout.undo``: a Deployment back to an earlier revision, exactly as ``kubectl rollout undo``.

The plan reads the Deployment and its namespace's ReplicaSets fresh from the API server and asks
``backend.k8s.rollout`` what kubectl would do: the same target revision, the same refusals in the
same words, the same patch (``/spec/template`` and ``/metadata/annotations``), sent by the change
path with the Deployment's resourceVersion as precondition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.changes.kube import ClusterClient, KubeError, ObjectRef
from backend.changes.plan import FieldChange, ObjectChange, Plan
from backend.changes.request import ChangeInvalid
from backend.conventions import TENANT_LABEL
from backend.k8s.rollout import RollbackError, plan_undo, revision


def deployment_ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("apps", "v1", "deployments", "Deployment", namespace, name)


def namespace_tenants(cluster: ClusterClient, namespace: str) -> list[str]:
    """The tenant owning ``namespace`` (its ``opsconsole.io/tenant`` label), if any."""
    try:
        ns = cluster.get(ObjectRef("", "v1", "namespaces", "Namespace", None, namespace))
    except KubeError:
        return []
    tenant = ((ns.get("metadata") or {}).get("labels") or {}).get(TENANT_LABEL)
    return [tenant] if tenant else []


def required_string(parameters: Mapping[str, Any], key: str) -> str:
    value = parameters.get(key)
    if not isinstance(value, str) or not value:
        raise ChangeInvalid(f"{key} is required")
    return value


def _revision_parameter(parameters: Mapping[str, Any]) -> int:
    value = parameters.get("to_revision", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ChangeInvalid(f"to_revision must be a whole number ≥ 0 (got {value!r})")
    return value


class DeploymentUndo:
    """Parameters: ``namespace``, ``name``, ``to_revision`` (0 = the previous one)."""

    action = "rollout.undo"

    def plan(self, parameters: Mapping[str, Any], cluster: ClusterClient) -> Plan:
        namespace, name = (
            required_string(parameters, "namespace"),
            required_string(parameters, "name"),
        )
        to_revision = _revision_parameter(parameters)
        ref = deployment_ref(namespace, name)
        try:
            deployment = cluster.get(ref)
        except KubeError as exc:
            if exc.status == 404:
                raise ChangeInvalid(str(exc)) from exc
            raise
        replica_sets = cluster.list(
            ObjectRef("apps", "v1", "replicasets", "ReplicaSet", namespace, "")
        )
        try:
            undo = plan_undo(deployment, replica_sets, to_revision)
        except RollbackError as exc:
            raise ChangeInvalid(str(exc)) from exc
        current = revision(deployment)
        target = revision(undo.target)
        plan = Plan(
            action=self.action,
            target=str(ref),
            tenants=namespace_tenants(cluster, namespace),
            parameters={"namespace": namespace, "name": name, "to_revision": to_revision},
            objects=[],
            details={
                "current_revision": current,
                "target_revision": target,
                "target_replicaset": undo.target["metadata"]["name"],
            },
        )
        if undo.patch is None:
            plan.noop = undo.message
            return plan
        meta = deployment.get("metadata") or {}
        fields = tuple(
            FieldChange(op["path"], _current(deployment, op["path"]), op["value"])
            for op in undo.patch
        )
        plan.objects = [ObjectChange(ref, str(meta.get("resourceVersion") or ""), fields)]
        return plan


def _current(obj: Mapping[str, Any], pointer: str) -> Any:
    """The value at ``/spec/template`` or ``/metadata/annotations``."""
    first, second = pointer.strip("/").split("/")
    return (obj.get(first) or {}).get(second)
