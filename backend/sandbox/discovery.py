"""API discovery documents, built from ``RESOURCE_TYPES`` so that they never disagree with it.

Clients (kubectl, the dynamic client, the backend's checks) read ``/api``, ``/api/v1``, ``/apis``
and ``/apis/<group>/<version>`` to learn which kinds exist, whether they are namespaced and which
verbs they take; ``/version`` tells them which Kubernetes they talk to.
"""

from __future__ import annotations

from typing import Any

from backend.sandbox.store import RESOURCE_TYPES, ResourceType

JsonObject = dict[str, Any]

KUBERNETES_VERSION = "v1.31.4"


def version() -> JsonObject:
    """What ``/version`` answers (the shape of ``version.Info``)."""
    major, minor, _ = KUBERNETES_VERSION.lstrip("v").split(".")
    return {
        "major": major,
        "minor": minor,
        "gitVersion": KUBERNETES_VERSION,
        "gitCommit": "sandbox",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.22.10",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def core_versions() -> JsonObject:
    """``/api``: the core group's versions."""
    return {
        "kind": "APIVersions",
        "apiVersion": "v1",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }


def _group_versions() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for rt in RESOURCE_TYPES:
        if rt.group and rt.version not in groups.setdefault(rt.group, []):
            groups[rt.group].append(rt.version)
    return groups


def group_list() -> JsonObject:
    """``/apis``: every named group with its versions."""
    groups = []
    for group, versions in _group_versions().items():
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(name: str) -> JsonObject | None:
    """``/apis/<group>``: one group, or ``None`` when the sandbox does not serve it."""
    for entry in group_list()["groups"]:
        if entry["name"] == name:
            return {"kind": "APIGroup", "apiVersion": "v1", **entry}
    return None


def _resource(rt: ResourceType) -> JsonObject:
    entry: JsonObject = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": sorted([*rt.verbs, "deletecollection"] if _stored(rt) else rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    return entry


def _stored(rt: ResourceType) -> bool:
    """Whether objects of ``rt`` are kept (not so for access reviews, which are only answered)."""
    return "list" in rt.verbs


def _subresource(rt: ResourceType, sub: str, kind: str, verbs: list[str]) -> JsonObject:
    return {
        "name": f"{rt.plural}/{sub}",
        "singularName": "",
        "namespaced": rt.namespaced,
        "kind": kind,
        "verbs": verbs,
    }


def resource_list(group_name: str, version_name: str) -> JsonObject | None:
    """``/api/v1`` or ``/apis/<group>/<version>``; ``None`` for an unknown group version."""
    resources: list[JsonObject] = []
    for rt in RESOURCE_TYPES:
        if rt.group != group_name or rt.version != version_name:
            continue
        resources.append(_resource(rt))
        if not _stored(rt):
            continue
        resources.append(_subresource(rt, "status", rt.kind, ["get", "patch", "update"]))
        if rt.plural == "pods":
            resources.append(_subresource(rt, "proxy", "PodProxyOptions", ["create", "get"]))
        if rt.plural in ("deployments", "replicasets"):
            scale = _subresource(rt, "scale", "Scale", ["get", "patch", "update"])
            resources.append({**scale, "group": "autoscaling", "version": "v1"})
    if not resources:
        return None
    group_version = f"{group_name}/{version_name}" if group_name else version_name
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def _gv_path(group_name: str, version_name: str) -> str:
    return f"apis/{group_name}/{version_name}" if group_name else f"api/{version_name}"


def openapi_v3_index() -> JsonObject:
    """``/openapi/v3``: where each group version's document is.

    kubectl reads it to learn that the server validates fields itself (``fieldValidation``), and
    so does not need the full schemas the sandbox does not have.
    """
    versions = {(rt.group, rt.version) for rt in RESOURCE_TYPES}
    paths = {
        _gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash=sandbox"}
        for g, v in sorted(versions)
    }
    return {"paths": paths}


_OPENAPI_PARAMS = [
    {"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
    for name in ("dryRun", "fieldManager", "fieldValidation")
]


def openapi_v3_document(gv: str) -> JsonObject | None:
    """A minimal OpenAPI v3 document for ``api/v1`` or ``apis/<group>/<version>``: the paths with
    their verbs and ``x-kubernetes-group-version-kind``, no schemas."""
    paths: JsonObject = {}
    for rt in RESOURCE_TYPES:
        if _gv_path(rt.group, rt.version) != gv:
            continue
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        scope = "/namespaces/{namespace}" if rt.namespaced else ""
        base = f"/{gv}{scope}/{rt.plural}"

        def op(verb: str, gvk: JsonObject = gvk) -> JsonObject:
            return {
                "operationId": verb,
                "parameters": _OPENAPI_PARAMS,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
            }

        if not _stored(rt):
            paths[base] = {"post": op("post")}
            continue
        paths[base] = {"get": op("list"), "post": op("post")}
        paths[base + "/{name}"] = {
            "get": op("get"),
            "put": op("put"),
            "patch": op("patch"),
            "delete": op("delete"),
        }
    if not paths:
        return None
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (opsconsole sandbox)", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }
