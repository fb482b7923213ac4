"""SelfSubjectAccessReview and SubjectAccessReview: "may this user do that?", answered from the
same RBAC rules that authorize requests (``kubectl auth can-i`` asks the first); and
SelfSubjectRulesReview: "what may I do in this namespace?" (``kubectl auth can-i --list``).

The answer is the review itself with ``status.allowed`` (and RBAC's reason when allowed), as
the authorization.k8s.io/v1 registry returns it; nothing is stored.
"""

from __future__ import annotations

from typing import Any

from backend.sandbox.rbac import Attributes, Authorizer, User
from backend.sandbox.store import (
    SELF_SUBJECT_ACCESS_REVIEW,
    SELF_SUBJECT_RULES_REVIEW,
    ApiError,
    ResourceType,
)

JsonObject = dict[str, Any]


def _object(value: Any) -> JsonObject:
    return value if isinstance(value, dict) else {}


def _attributes(rt: ResourceType, spec: JsonObject) -> Attributes:
    resource = _object(spec.get("resourceAttributes"))
    non_resource = _object(spec.get("nonResourceAttributes"))
    if bool(resource) == bool(non_resource):
        raise ApiError.invalid(
            rt,
            "",
            "spec.resourceAttributes",
            'Invalid value: "null": exactly one of nonResourceAttributes or '
            "resourceAttributes must be specified",
        )
    if non_resource:
        return Attributes(
            str(non_resource.get("verb") or ""),
            resource_request=False,
            path=str(non_resource.get("path") or ""),
        )
    return Attributes(
        str(resource.get("verb") or ""),
        True,
        str(resource.get("group") or ""),
        str(resource.get("resource") or ""),
        str(resource.get("subresource") or ""),
        str(resource.get("namespace") or ""),
        str(resource.get("name") or ""),
    )


def _subject(rt: ResourceType, spec: JsonObject, requester: User) -> User:
    if rt is SELF_SUBJECT_ACCESS_REVIEW:
        return requester
    name, groups = spec.get("user") or "", spec.get("groups") or []
    if not name and not groups:
        raise ApiError.invalid(
            rt,
            "",
            "spec.user",
            'Invalid value: "": at least one of user or group must be specified',
        )
    return User(str(name), tuple(str(g) for g in groups))


_RESOURCE_FIELDS = ("verbs", "apiGroups", "resources", "resourceNames")


def _rules(user: User, namespace: str, authorizer: Authorizer) -> JsonObject:
    """The rules of every binding of ``user`` that applies in ``namespace``."""
    resource_rules: list[JsonObject] = []
    non_resource_rules: list[JsonObject] = []
    for grant in authorizer.grants(user, namespace):
        for rule in grant.rules:
            if rule.get("nonResourceURLs"):
                non_resource_rules.append(
                    {"verbs": rule.get("verbs") or [], "nonResourceURLs": rule["nonResourceURLs"]}
                )
            else:
                resource_rules.append({k: rule[k] for k in _RESOURCE_FIELDS if rule.get(k)})
    return {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": False,
    }


def review(
    rt: ResourceType, body: JsonObject, requester: User, authorizer: Authorizer
) -> JsonObject:
    """Answer an access review of kind ``rt`` sent by ``requester``."""
    spec = _object(body.get("spec"))
    if rt is SELF_SUBJECT_RULES_REVIEW:
        status = _rules(requester, str(spec.get("namespace") or ""), authorizer)
    else:
        attrs = _attributes(rt, spec)
        allowed, reason = authorizer.decide(_subject(rt, spec, requester), attrs)
        status = {"allowed": allowed, **({"reason": reason} if reason else {})}
    meta = _object(body.get("metadata"))
    return {
        "kind": rt.kind,
        "apiVersion": rt.api_version,
        "metadata": {**meta, "creationTimestamp": None},
        "spec": spec,
        "status": status,
    }
