"""RBAC, as kube-apiserver's authorizer evaluates it, over the Role, ClusterRole, RoleBinding and
ClusterRoleBinding objects in the store.

A request is first described by its attributes (``request_attributes``, after the API server's
RequestInfoFactory in k8s.io/apiserver/pkg/endpoints/request/requestinfo.go): verb from the HTTP
method (a GET of a collection is ``list``, or ``watch`` with ``?watch=true``; a DELETE of one is
``deletecollection``), API group, resource, subresource, namespace and name. It is allowed when
any rule of any role bound to the user, or to one of their groups, matches (the matching of
plugin/pkg/auth/authorizer/rbac/rbac.go: ``*`` matches every verb, group and resource, ``*/sub``
every resource's subresource, ``resourceNames`` only a named object, a RoleBinding grants only in
its own namespace). Members of ``system:masters`` are allowed everything without any binding, as
the API server's privileged-group authorizer does.

A denial is the API server's 403 ``Status``; its message is responsewriters.forbiddenMessage
(k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go) wrapped by
apierrors.NewForbidden: ``<resource>[.<group>] ["<name>"] is forbidden: User "<user>" cannot
<verb> resource "<resource>[/<sub>]" in API group "<group>" in the namespace "<ns>"`` (or ``at the
cluster scope``), and ``forbidden: User "<user>" cannot <verb> path "<path>"`` for other paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.sandbox.store import (
    CLUSTER_ROLE,
    CLUSTER_ROLE_BINDING,
    ROLE,
    ROLE_BINDING,
    ApiError,
    Store,
)

JsonObject = dict[str, Any]

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
_METHOD_VERBS = {
    "GET": "get",
    "HEAD": "get",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
# Paths under a namespace that are its subresources rather than kinds in it.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True)
class User:
    """Who a request is from, as an authenticator names them."""

    name: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do (authorizer.Attributes, without the user)."""

    verb: str
    resource_request: bool = True
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # non-resource requests only

    def describe(self) -> str:
        """The ``cannot ...`` part of the API server's denial message."""
        if not self.resource_request:
            return f"{self.verb} path {_quote(self.path)}"
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        scope = (
            f"in the namespace {_quote(self.namespace)}"
            if self.namespace
            else "at the cluster scope"
        )
        return f"{self.verb} resource {_quote(resource)} in API group {_quote(self.group)} {scope}"


def _quote(text: str) -> str:
    """Go's ``%q`` for the plain strings that appear in these messages."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """The attributes of an HTTP request, as the API server derives them from its path."""
    verb = _METHOD_VERBS.get(method.upper(), method.lower())
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return Attributes(verb, resource_request=False, path=path)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch", "").lower() in ("true", "1") else "list"
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(verb, True, group, resource, subresource, namespace, name)


# -- rules ---------------------------------------------------------------------------------------
def _has(values: Iterable[str] | None, wanted: str) -> bool:
    values = values or ()
    return "*" in values or wanted in values


def _resource_matches(resources: Iterable[str] | None, attrs: Attributes) -> bool:
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    for resource in resources or ():
        if resource in ("*", combined):
            return True
        if attrs.subresource and resource == f"*/{attrs.subresource}":
            return True
    return False


def _path_matches(urls: Iterable[str] | None, path: str) -> bool:
    for url in urls or ():
        if url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(rule: JsonObject, attrs: Attributes) -> bool:
    """Whether one PolicyRule grants the request."""
    if not _has(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.resource_request:
        return _path_matches(rule.get("nonResourceURLs"), attrs.path)
    names = rule.get("resourceNames") or ()
    return (
        _has(rule.get("apiGroups"), attrs.group)
        and _resource_matches(rule.get("resources"), attrs)
        and (not names or attrs.name in names)
    )


def rules_allow(rules: Iterable[JsonObject], attrs: Attributes) -> bool:
    return any(rule_allows(rule, attrs) for rule in rules)


# -- bindings ------------------------------------------------------------------------------------
def service_account_user(namespace: str, name: str) -> str:
    """The user name a ServiceAccount's token authenticates as."""
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def service_account_groups(namespace: str) -> tuple[str, ...]:
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")


def _subject_applies(subject: JsonObject, user: User, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user.name == service_account_user(namespace, name)
    return False


@dataclass(frozen=True)
class Grant:
    """The rules one binding gives a user, and how the API server describes that binding."""

    rules: tuple[JsonObject, ...]
    source: str


class Authorizer:
    """Decides requests from the RBAC objects in ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def allows(self, user: User, attrs: Attributes) -> bool:
        return self.decide(user, attrs)[0]

    def decide(self, user: User, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason): the reason names the binding that allowed it, as RBAC says."""
        if MASTERS in user.groups:
            return True, ""
        for grant in self.grants(user, attrs.namespace):
            if rules_allow(grant.rules, attrs):
                return True, f"RBAC: allowed by {grant.source}"
        return False, ""

    def grants(self, user: User, namespace: str) -> Iterator[Grant]:
        """Every binding of ``user`` that applies in ``namespace`` ("" = cluster scope only)."""
        for binding in self.store.scan(CLUSTER_ROLE_BINDING):
            yield from self._grant(binding, user, "")
        if namespace:
            for binding in self.store.scan(ROLE_BINDING, namespace):
                yield from self._grant(binding, user, namespace)

    def _grant(self, binding: JsonObject, user: User, namespace: str) -> Iterator[Grant]:
        for subject in binding.get("subjects") or ():
            if _subject_applies(subject, user, namespace):
                rules = self._role_rules(binding.get("roleRef") or {}, namespace)
                yield Grant(rules, _describe(binding, subject, namespace))
                return

    def _role_rules(self, ref: JsonObject, namespace: str) -> tuple[JsonObject, ...]:
        if ref.get("kind") == "ClusterRole":
            role = self.store.find(CLUSTER_ROLE, "", ref.get("name", ""))
        elif ref.get("kind") == "Role" and namespace:
            role = self.store.find(ROLE, namespace, ref.get("name", ""))
        else:
            role = None
        return tuple((role or {}).get("rules") or ())

    def check(self, user: User, attrs: Attributes) -> None:
        """Raise the API server's 403 unless ``user`` may do ``attrs``."""
        if not self.allows(user, attrs):
            raise forbidden(user, attrs)


def _describe(binding: JsonObject, subject: JsonObject, namespace: str) -> str:
    """How RBAC's reason names a binding (rbac.go's roleBindingDescriber and friends)."""
    meta = binding.get("metadata") or {}
    ref = binding.get("roleRef") or {}
    name = f"{meta.get('name', '')}/{namespace}" if namespace else meta.get("name", "")
    who = subject.get("name", "")
    if subject.get("kind") == "ServiceAccount":
        who = f"{who}/{subject.get('namespace') or namespace}"
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    return (
        f"{kind} {_quote(name)} of {ref.get('kind', '')} {_quote(ref.get('name', ''))} to "
        f"{subject.get('kind', '')} {_quote(who)}"
    )


def forbidden(user: User, attrs: Attributes) -> ApiError:
    """The 403 ``Status`` of a denied request (apierrors.NewForbidden of forbiddenMessage)."""
    why = f"User {_quote(user.name)} cannot {attrs.describe()}"
    if not attrs.resource_request:
        return ApiError(403, "Forbidden", f"forbidden: {why}")
    qualified = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    subject = f"{qualified} {_quote(attrs.name)}" if attrs.name else qualified
    return ApiError(
        403,
        "Forbidden",
        f"{subject} is forbidden: {why}",
        name=attrs.name,
        details={"group": attrs.group, "kind": attrs.resource},
    )


@dataclass
class AccessLog:
    """The distinct requests each user was allowed, bounded: what a cluster's audit log would
    show, kept to find out which permissions a client really uses."""

    limit: int = 100_000
    seen: dict[str, set[Attributes]] = field(default_factory=dict)
    _size: int = 0

    def record(self, user: User, attrs: Attributes) -> None:
        entries = self.seen.setdefault(user.name, set())
        if self._size < self.limit and attrs not in entries:
            entries.add(attrs)
            self._size += 1

    def of(self, user_name: str) -> frozenset[Attributes]:
        return frozenset(self.seen.get(user_name, ()))
