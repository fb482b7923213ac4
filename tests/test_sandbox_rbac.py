"""The sandbox authenticates and authorizes like kube-apiserver.

The expected bodies are the API server's own, from its source (kubernetes/kubernetes, staging/):
- 401: filters/authentication.go answers ``apierrors.NewUnauthorized("Unauthorized")``: a
  ``Status`` with message and reason ``Unauthorized``, code 401, no details.
- 403: responsewriters/errors.go ``forbiddenMessage`` (``User %q cannot %s resource %q in API
  group %q in the namespace %q`` / ``at the cluster scope`` / ``cannot %s path %q``) wrapped by
  ``apierrors.NewForbidden(groupResource, name, err)``: ``<resource>[.<group>] ["<name>"] is
  forbidden: ...``, details ``{name, group, kind: <resource>}``.
- 415: negotiation/errors.go ``errUnsupportedMediaType``: ``the body of the request was in an
  unknown format - accepted media types include: <types>``, reason ``UnsupportedMediaType``.
kubectl itself is the client for access reviews and impersonation (``kubectl auth can-i --as``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import kubernetes.client as k8s
import pytest

from backend.sandbox.policy import bootstrap_policy, install
from backend.sandbox.rbac import Attributes, Authorizer, User, request_attributes
from backend.sandbox.server import BACKEND_USER
from backend.sandbox.store import SERVICE_ACCOUNT, Store
from tests.support.sandbox import ADMIN_HEADERS, SandboxThread, kube, sandbox_thread, tls_context

__all__ = ["kube", "sandbox_thread"]  # fixtures, imported for pytest

KUBECTL = shutil.which("kubectl")
RBAC = "rbac.authorization.k8s.io/v1"
SA_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:opsconsole", "system:authenticated")


def status(message: str, reason: str, code: int, **details: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


@pytest.fixture(scope="module")
def http(sandbox_thread: SandboxThread) -> Iterator[httpx.Client]:
    """A plain HTTPS client without credentials."""
    with httpx.Client(base_url=sandbox_thread.url, verify=tls_context(), timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def backend_headers(sandbox_thread: SandboxThread) -> dict[str, str]:
    """The backend ServiceAccount's token, as its kubeconfig carries it."""
    config = sandbox_thread.sandbox.backend_kubeconfig()
    return {"Authorization": f"Bearer {config['users'][0]['user']['token']}"}


# -- 401 / 403 / 415 as a real API server answers them -------------------------------------------
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "x"}])
def test_no_or_bad_credentials_are_401(http: httpx.Client, headers: dict[str, str]) -> None:
    answer = http.get("/api/v1/namespaces", headers=headers)
    assert answer.status_code == 401
    assert answer.json() == status("Unauthorized", "Unauthorized", 401)


def test_health_checks_answer_anonymous_requests_only(http: httpx.Client) -> None:
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").status_code == 200
    assert http.get("/version").status_code == 401
    assert http.get("/healthz", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_denials_are_403_in_the_api_servers_words(
    http: httpx.Client, backend_headers: dict[str, str]
) -> None:
    user = f'User "{BACKEND_USER}"'
    named = http.delete("/apis/apps/v1/namespaces/ns/deployments/x", headers=backend_headers)
    assert named.status_code == 403
    assert named.json() == status(
        f'deployments.apps "x" is forbidden: {user} cannot delete resource "deployments" in API '
        'group "apps" in the namespace "ns"',
        "Forbidden",
        403,
        name="x",
        group="apps",
        kind="deployments",
    )
    listed = http.get("/api/v1/secrets", headers=backend_headers)
    assert listed.json() == status(
        f'secrets is forbidden: {user} cannot list resource "secrets" in API group "" at the '
        "cluster scope",
        "Forbidden",
        403,
        kind="secrets",
    )
    status_write = http.patch(
        "/apis/apps/v1/namespaces/ns/deployments/x/status",
        headers={**backend_headers, "Content-Type": "application/merge-patch+json"},
        content=b"{}",
    )
    assert status_write.json()["message"] == (
        f'deployments.apps "x" is forbidden: {user} cannot patch resource "deployments/status" '
        'in API group "apps" in the namespace "ns"'
    )
    path = http.get("/logs", headers=backend_headers)
    assert path.json() == status(f'forbidden: {user} cannot get path "/logs"', "Forbidden", 403)


@pytest.mark.parametrize(
    ("method", "content_type", "accepted"),
    [
        ("POST", "text/plain", "application/json"),
        ("POST", "application/x-www-form-urlencoded", "application/json"),
        ("PUT", "text/plain;charset=UTF-8", "application/json"),
        (
            "PATCH",
            "text/plain",
            "application/json-patch+json, application/merge-patch+json, "
            "application/strategic-merge-patch+json",
        ),
    ],
)
def test_bodies_that_are_not_json_are_415_before_anything_is_read(
    http: httpx.Client, method: str, content_type: str, accepted: str
) -> None:
    path = "/api/v1/namespaces" if method == "POST" else "/api/v1/namespaces/default"
    answer = http.request(
        method,
        path,
        headers={**ADMIN_HEADERS, "Content-Type": content_type},
        content=b'{"metadata": {"name": "from-a-web-page"}}',
    )
    assert answer.status_code == 415
    assert answer.json() == status(
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{accepted}",
        "UnsupportedMediaType",
        415,
    )
    assert http.get("/api/v1/namespaces/from-a-web-page", headers=ADMIN_HEADERS).status_code == 404


def test_custom_resources_take_no_strategic_merge_patch(http: httpx.Client) -> None:
    answer = http.patch(
        "/apis/kueue.x-k8s.io/v1beta2/clusterqueues/q",
        headers={**ADMIN_HEADERS, "Content-Type": "application/strategic-merge-patch+json"},
        content=b"{}",
    )
    assert answer.status_code == 415
    assert answer.json()["message"].endswith(
        "include: application/json-patch+json, application/merge-patch+json"
    )


# -- tokens ----------------------------------------------------------------------------------------
def test_a_service_account_token_ends_with_its_service_account(
    sandbox_thread: SandboxThread, http: httpx.Client
) -> None:
    sandbox = sandbox_thread.sandbox

    def make() -> str:
        sandbox.store.create(
            SERVICE_ACCOUNT, {"metadata": {"name": "short-lived", "namespace": "default"}}
        )
        return sandbox.api.authenticator.service_account_token("default", "short-lived")

    headers = {"Authorization": f"Bearer {sandbox_thread.call(make)}"}
    review = http.post(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        headers=headers,
        json={"spec": {"resourceAttributes": {"verb": "list", "resource": "pods"}}},
    )
    assert review.status_code == 201 and review.json()["status"] == {"allowed": False}
    sandbox_thread.call(sandbox.store.delete, SERVICE_ACCOUNT, "default", "short-lived")
    assert http.get("/api/v1/namespaces", headers=headers).status_code == 401


# -- RBAC rule matching ----------------------------------------------------------------------------
def _role(kind: str, name: str, rules: list[dict[str, Any]], namespace: str = "") -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": RBAC, "kind": kind, "metadata": meta, "rules": rules}


def _binding(
    kind: str, name: str, role_kind: str, subjects: list[dict[str, str]], namespace: str = ""
) -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": RBAC,
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": subjects,
    }


ALICE = User("alice", ("dev", "system:authenticated"))


@pytest.fixture
def authorizer() -> Authorizer:
    store = Store()
    install(
        store,
        [
            *bootstrap_policy(),
            _role(
                "ClusterRole",
                "reader",
                [
                    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]},
                    {"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get"]},
                    {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]},
                ],
            ),
            _binding(
                "ClusterRoleBinding", "reader", "ClusterRole", [{"kind": "User", "name": "alice"}]
            ),
            _role(
                "ClusterRole",
                "ns-editor",
                [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}],
            ),
            # A RoleBinding of a ClusterRole: its rights only in the binding's namespace.
            _binding(
                "RoleBinding", "ns-editor", "ClusterRole", [{"kind": "Group", "name": "dev"}], "a"
            ),
            _role(
                "Role",
                "head",
                [
                    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
                    {
                        "apiGroups": [""],
                        "resources": ["configmaps"],
                        "resourceNames": ["head"],
                        "verbs": ["get", "update"],
                    },
                ],
                "ops",
            ),
            # A ServiceAccount subject without a namespace means the binding's namespace.
            _binding(
                "RoleBinding", "head", "Role", [{"kind": "ServiceAccount", "name": "bot"}], "ops"
            ),
        ],
    )
    return Authorizer(store)


def attrs(verb: str, group: str, resource: str, namespace: str = "", name: str = "", sub: str = ""):
    return Attributes(verb, True, group, resource, sub, namespace, name)


def test_verbs_groups_resources_and_subresources(authorizer: Authorizer) -> None:
    allows = authorizer.allows
    assert allows(ALICE, attrs("get", "apps", "deployments", "x", "d"))
    assert allows(ALICE, attrs("list", "apps", "deployments"))
    assert not allows(ALICE, attrs("watch", "apps", "deployments"))  # verb not granted
    assert not allows(ALICE, attrs("get", "extensions", "deployments", "x", "d"))  # group
    assert not allows(ALICE, attrs("get", "apps", "replicasets", "x", "r"))  # resource
    assert allows(ALICE, attrs("get", "", "pods", "x", "p:9400", "proxy"))
    assert not allows(ALICE, attrs("get", "", "pods", "x", "p"))  # pods/proxy is not pods
    assert not allows(ALICE, attrs("create", "", "pods", "x", "p", "proxy"))
    assert allows(ALICE, attrs("update", "batch", "jobs", "x", "j", "status"))  # */status
    assert not allows(ALICE, attrs("update", "batch", "jobs", "x", "j"))
    assert not allows(User("bob", ("system:authenticated",)), attrs("list", "apps", "deployments"))


def test_a_rolebinding_grants_only_in_its_namespace(authorizer: Authorizer) -> None:
    assert authorizer.allows(ALICE, attrs("patch", "apps", "deployments", "a", "d"))
    assert not authorizer.allows(ALICE, attrs("patch", "apps", "deployments", "b", "d"))
    assert not authorizer.allows(ALICE, attrs("patch", "apps", "deployments"))  # cluster scope


def test_resource_names_limit_named_requests_only(authorizer: Authorizer) -> None:
    bot = User("system:serviceaccount:ops:bot", ("system:serviceaccounts",))
    assert authorizer.allows(bot, attrs("get", "", "configmaps", "ops", "head"))
    assert authorizer.allows(bot, attrs("update", "", "configmaps", "ops", "head"))
    assert not authorizer.allows(bot, attrs("get", "", "configmaps", "ops", "other"))
    assert not authorizer.allows(bot, attrs("list", "", "configmaps", "ops"))  # no name to match
    assert authorizer.allows(bot, attrs("create", "", "configmaps", "ops"))
    assert not authorizer.allows(bot, attrs("get", "", "configmaps", "other-ns", "head"))
    other = User("system:serviceaccount:elsewhere:bot")
    assert not authorizer.allows(other, attrs("get", "", "configmaps", "ops", "head"))


def test_masters_bypass_rbac_and_everyone_may_discover(authorizer: Authorizer) -> None:
    admin = User("root", ("system:masters",))
    assert authorizer.allows(admin, attrs("delete", "anything.example", "widgets", "x", "w"))
    discovery = Attributes("get", resource_request=False, path="/apis/apps/v1")
    assert authorizer.allows(ALICE, discovery)
    assert not authorizer.allows(User("anonymous"), discovery)


def test_request_attributes_follow_the_api_servers_request_info() -> None:
    assert request_attributes("GET", "/api/v1/pods", {}) == attrs("list", "", "pods")
    assert request_attributes("GET", "/api/v1/pods", {"watch": "true"}) == attrs(
        "watch", "", "pods"
    )
    assert request_attributes("DELETE", "/apis/apps/v1/namespaces/a/deployments", {}) == attrs(
        "deletecollection", "apps", "deployments", "a"
    )
    assert request_attributes("GET", "/api/v1/namespaces/a/pods/p:9400/proxy/metrics", {}) == attrs(
        "get", "", "pods", "a", "p:9400", "proxy"
    )
    # A namespace is its own namespace, as on a real server.
    assert request_attributes("PUT", "/api/v1/namespaces/a/finalize", {}) == attrs(
        "update", "", "namespaces", "a", "a", "finalize"
    )
    assert request_attributes("GET", "/apis/apps/v1", {}) == Attributes(
        "get", resource_request=False, path="/apis/apps/v1"
    )


# -- access reviews and impersonation, through kubectl ---------------------------------------------
def kubectl(sandbox_thread: SandboxThread, *args: str) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None, "kubectl is not installed: CI must install it (.ci/run does)"
    command = [KUBECTL, "--kubeconfig", str(sandbox_thread.kubeconfig_path), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "answer"),
    [
        (("patch", "deployments", "-n", "team-a"), "yes"),
        (("delete", "deployments", "-n", "team-a"), "no"),
        (("list", "pods", "--all-namespaces"), "yes"),
        (("get", "pods/proxy", "-n", "gpu-operator"), "yes"),
        (("create", "pods/proxy", "-n", "gpu-operator"), "no"),
        (("patch", "clusterqueues.kueue.x-k8s.io"), "yes"),
        (("update", "clusterqueues.kueue.x-k8s.io"), "no"),
        (("get", "configmaps/opsconsole-audit-head", "-n", "opsconsole"), "yes"),
        (("get", "configmaps/other", "-n", "opsconsole"), "no"),
        (("create", "configmaps", "-n", "opsconsole"), "yes"),
        (("create", "configmaps", "-n", "team-a"), "no"),
        (("get", "secrets", "-n", "opsconsole"), "no"),
    ],
)
def test_kubectl_auth_can_i_as_the_backend(
    sandbox_thread: SandboxThread, args: tuple[str, ...], answer: str
) -> None:
    result = kubectl(sandbox_thread, "auth", "can-i", *args, "--as", BACKEND_USER)
    assert result.stdout.strip() == answer, result.stderr


def test_impersonation_needs_the_impersonate_right(
    sandbox_thread: SandboxThread, backend_headers: dict[str, str], http: httpx.Client
) -> None:
    result = kubectl(sandbox_thread, "get", "pods", "-A", "--as", "alice", "--as-group", "dev")
    assert result.returncode == 1
    assert 'User "alice" cannot list resource "pods"' in result.stderr
    answer = http.get(
        "/api/v1/pods", headers={**backend_headers, "Impersonate-User": "sandbox-admin"}
    )
    assert answer.status_code == 403
    assert answer.json()["message"] == (
        f'users "sandbox-admin" is forbidden: User "{BACKEND_USER}" cannot impersonate resource '
        '"users" in API group "" at the cluster scope'
    )


def test_subject_access_review_says_which_binding_allows(kube: k8s.ApiClient) -> None:
    api = k8s.AuthorizationV1Api(kube)
    spec = k8s.V1SubjectAccessReviewSpec(
        user=BACKEND_USER,
        groups=list(SA_GROUPS),
        resource_attributes=k8s.V1ResourceAttributes(
            verb="patch", group="apps", resource="deployments", namespace="team-a", name="d"
        ),
    )
    allowed = api.create_subject_access_review(k8s.V1SubjectAccessReview(spec=spec)).status
    assert allowed is not None and allowed.allowed is True
    assert allowed.reason == (
        'RBAC: allowed by ClusterRoleBinding "opsconsole-backend" of ClusterRole '
        '"opsconsole-backend" to ServiceAccount "opsconsole-backend/opsconsole"'
    )
    assert spec.resource_attributes is not None
    spec.resource_attributes.verb = "delete"
    denied = api.create_subject_access_review(k8s.V1SubjectAccessReview(spec=spec)).status
    assert denied is not None and denied.allowed is False


def test_access_reviews_check_their_spec_and_answer_for_paths(
    http: httpx.Client, backend_headers: dict[str, str]
) -> None:
    reviews = "/apis/authorization.k8s.io/v1"
    path_review = {"spec": {"nonResourceAttributes": {"verb": "get", "path": "/version"}}}
    answer = http.post(
        f"{reviews}/selfsubjectaccessreviews", headers=backend_headers, json=path_review
    )
    assert answer.status_code == 201
    assert answer.json()["status"]["allowed"] is True
    assert answer.json()["kind"] == "SelfSubjectAccessReview"
    nobody = {"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}
    invalid = http.post(f"{reviews}/subjectaccessreviews", headers=ADMIN_HEADERS, json=nobody)
    assert invalid.status_code == 422
    assert invalid.json()["reason"] == "Invalid"
    # Asking about others is a right of its own: the backend has it not.
    denied = http.post(f"{reviews}/subjectaccessreviews", headers=backend_headers, json=nobody)
    assert denied.status_code == 403


def test_kubectl_lists_what_the_backend_may_do(sandbox_thread: SandboxThread) -> None:
    args = ("auth", "can-i", "--list", "-n", "opsconsole", "--as", BACKEND_USER)
    result = kubectl(sandbox_thread, *args)
    assert result.returncode == 0, result.stderr
    rows = {tuple(line.split()) for line in result.stdout.splitlines()[1:]}
    assert ("deployments.apps", "[]", "[]", "[get", "list", "watch", "patch]") in rows
    assert ("configmaps", "[]", "[opsconsole-audit-head]", "[get", "patch]") in rows
    assert ("configmaps", "[]", "[]", "[create]") in rows
    assert ("pods/proxy", "[]", "[]", "[get]") in rows
    assert not any(row[0].startswith("secrets") for row in rows)
