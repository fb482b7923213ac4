"""The access policy a sandbox starts with: a real cluster's bootstrap roles, and the backend's
own Namespace, ServiceAccount and roles read from the deployment manifests in ``deploy/``, so
that the backend runs against the sandbox with exactly the rights it has in a cluster.

Bootstrap (as kube-apiserver's bootstrappolicy creates them): ``cluster-admin`` bound to
``system:masters``; ``system:discovery`` (discovery, OpenAPI, version, health paths) and
``system:basic-user`` (SelfSubjectAccessReview) bound to ``system:authenticated``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from backend.sandbox.rbac import AUTHENTICATED, MASTERS
from backend.sandbox.store import RESOURCE_TYPES, ResourceType, Store

JsonObject = dict[str, Any]

# The repository's deploy/, through a symlink that packaging turns into a copy (package data),
# so that an installed sandbox has the manifests too.
DEPLOY_DIR = Path(__file__).resolve().parent / "deploy"
# The backend's access: its namespace, ServiceAccount and roles; the pod-proxy role too, since
# the backend reaches the sandbox's exporters through the pod proxy.
BACKEND_MANIFESTS = ("rbac.yaml", "rbac-telemetry-proxy.yaml")
BACKEND_NAMESPACE = "opsconsole"
BACKEND_SERVICE_ACCOUNT = "opsconsole-backend"
_RBAC = "rbac.authorization.k8s.io/v1"


def _cluster_role(name: str, rules: list[JsonObject]) -> JsonObject:
    return {"apiVersion": _RBAC, "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules}


def _group_binding(name: str, group: str) -> JsonObject:
    return {
        "apiVersion": _RBAC,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
    }


def bootstrap_policy() -> list[JsonObject]:
    """The bootstrap ClusterRoles and ClusterRoleBindings of a cluster."""
    discovery_urls = [
        "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
        "/readyz", "/version", "/version/",
    ]  # fmt: skip
    return [
        _cluster_role(
            "cluster-admin",
            [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ],
        ),
        _group_binding("cluster-admin", MASTERS),
        _cluster_role("system:discovery", [{"nonResourceURLs": discovery_urls, "verbs": ["get"]}]),
        _group_binding("system:discovery", AUTHENTICATED),
        _cluster_role(
            "system:basic-user",
            [
                {
                    "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    "verbs": ["create"],
                }
            ],
        ),
        _group_binding("system:basic-user", AUTHENTICATED),
    ]


def read_manifests(*names: str, directory: Path = DEPLOY_DIR) -> list[JsonObject]:
    """The objects of YAML manifest files (multi-document), in order."""
    objects: list[JsonObject] = []
    for name in names:
        with open(directory / name) as fh:
            objects += [doc for doc in yaml.safe_load_all(fh) if doc]
    return objects


def _type_of(obj: JsonObject) -> ResourceType:
    for rt in RESOURCE_TYPES:
        if rt.api_version == obj.get("apiVersion") and rt.kind == obj.get("kind"):
            return rt
    raise ValueError(f"the sandbox does not serve {obj.get('apiVersion')} {obj.get('kind')}")


def install(store: Store, objects: list[JsonObject]) -> None:
    """Create each object that does not exist yet (``kubectl create`` of manifests)."""
    for obj in objects:
        rt = _type_of(obj)
        meta = obj.get("metadata") or {}
        if store.find(rt, meta.get("namespace", ""), meta.get("name", "")) is None:
            store.create(rt, copy.deepcopy(obj))


def install_policy(store: Store) -> None:
    """The bootstrap roles and the backend's access from ``deploy/``."""
    install(store, bootstrap_policy())
    install(store, read_manifests(*BACKEND_MANIFESTS))
