"""The backend's roles in ``deploy/`` grant exactly what it uses.

The backend runs against a sandbox with its ServiceAccount's token (as every end-to-end test
does, so a missing right fails them), syncs, scrapes telemetry through the pod proxy and makes the
changes it offers. The sandbox's access log then holds every distinct request the backend was
allowed. Each rule of the roles, and each resource of each rule, is removed in turn: some
request the backend made must then be refused, or the rule grants something unused.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import kubernetes
import pytest

from backend.sandbox.policy import BACKEND_MANIFESTS, bootstrap_policy, install, read_manifests
from backend.sandbox.rbac import Attributes, Authorizer, User, service_account_groups
from backend.sandbox.server import BACKEND_USER
from backend.sandbox.store import Store
from tests.conftest import SEED, _ClusterThread, _start_cluster
from tests.test_api_changes import rollback_url
from tests.test_api_releases import apply, services, url

BACKEND = User(BACKEND_USER, (*service_account_groups("opsconsole"), "system:authenticated"))


def manifests() -> list[dict[str, Any]]:
    return read_manifests(*BACKEND_MANIFESTS)


def role_rules() -> list[tuple[int, int, dict[str, Any]]]:
    """(object index, rule index, rule) of every rule of the backend's roles."""
    return [
        (i, j, rule)
        for i, obj in enumerate(manifests())
        if obj["kind"] in ("ClusterRole", "Role")
        for j, rule in enumerate(obj["rules"])
    ]


def rule_id(rule: dict[str, Any]) -> str:
    names = f"[{','.join(rule['resourceNames'])}]" if rule.get("resourceNames") else ""
    return f"{'|'.join(rule['apiGroups']) or 'core'}:{','.join(rule['resources'])}{names}:{','.join(rule['verbs'])}"


RULE_IDS = [rule_id(rule) for _, _, rule in role_rules()]


def exercise(thread: _ClusterThread) -> None:
    """What the backend does besides syncing and scraping: every change it offers."""
    headers = thread.cluster.headers
    with httpx.Client(base_url=thread.cluster.backend_url, timeout=30, headers=headers) as api:
        page = api.get("/api/v1/workloads", params={"kind": "Deployment", "limit": 200}).json()
        for row in page["items"]:
            release = api.get(f"/api/v1/workloads/{row['namespace']}/Deployment/{row['name']}")
            if len(release.json()["revisions"]) >= 2:
                break
        plan = api.post(rollback_url(release.json(), "plan"), json={}).json()
        body = {"fingerprint": plan["fingerprint"], "reason": "rbac exercise"}
        applied = api.post(rollback_url(release.json(), "apply"), json=body)
        assert applied.json()["outcome"] == "succeeded", applied.text
        canary = next(s for s in services(api) if s["canary_percent"] == 10)
        for verb in ("rollback", "promote"):
            answer = planned_and_applied(api, canary, verb)
            assert answer.json().get("outcome") == "succeeded", answer.text
        change_quotas(api)


def planned_and_applied(api: httpx.Client, service: dict[str, Any], verb: str) -> httpx.Response:
    """A change to an InferenceService, planned again once if the service moved since its plan
    (409: KServe's controller may still be writing the status of the change before), as the
    console does."""
    for _ in range(2):
        plan = api.post(url(service, verb, "plan"), json={}).json()
        answer = apply(api, service, verb, plan, "rbac exercise")
        if answer.status_code != 409:
            break
    return answer


def change_quotas(api: httpx.Client) -> None:
    """One quota of each system lowered by a GPU: a ClusterQueue and a ResourceQuota patch."""
    rows = api.get("/api/v1/quotas").json()["items"]
    kueue = next(r for r in rows if r["system"] == "kueue" and r["nominal"] >= 1)
    quota = next(
        (r, q)
        for r in rows
        if r["system"] == "resourcequota"
        for q in r["namespace_quotas"]
        if q["hard"] >= 1
    )
    changes = [
        {
            "op": "set",
            "tenant": kueue["tenant"],
            "model": kueue["flavor"],
            "gpus": kueue["nominal"] - 1,
        },
        {
            "op": "set",
            "tenant": quota[0]["tenant"],
            "namespace": quota[1]["namespace"],
            "gpus": quota[1]["hard"] - 1,
        },
    ]
    for change in changes:
        plan = api.post("/api/v1/quotas/plan", json=change).json()
        body = {**change, "fingerprint": plan["fingerprint"], "reason": "rbac exercise"}
        applied = api.post("/api/v1/quotas/apply", json=body)
        assert applied.json()["outcome"] == "succeeded", applied.text


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_ClusterThread]:
    thread = _start_cluster(
        tmp_path_factory.mktemp("rbac-cluster"), fleet="demo", seed=SEED, settle_seconds=0.2
    )
    try:
        exercise(thread)
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def requests(cluster: _ClusterThread) -> frozenset[Attributes]:
    """Every distinct request the backend was allowed."""
    log = cluster.sandbox.sandbox.api.access_log
    return cluster.sandbox.call(log.of, BACKEND_USER)


def refused(objects: list[dict[str, Any]], requests: frozenset[Attributes]) -> list[Attributes]:
    """The requests that ``objects`` (in place of the backend's manifests) would refuse."""
    store = Store()
    install(store, [*bootstrap_policy(), *objects])
    authorizer = Authorizer(store)
    return sorted((a for a in requests if not authorizer.allows(BACKEND, a)), key=repr)


def test_the_backend_made_reads_writes_and_scrapes(requests: frozenset[Attributes]) -> None:
    verbs = {(a.verb, a.resource, a.subresource) for a in requests if a.resource_request}
    assert {("list", "pods", ""), ("watch", "pods", ""), ("get", "pods", "proxy")} <= verbs
    assert {("patch", "deployments", ""), ("patch", "inferenceservices", "")} <= verbs
    assert {("create", "configmaps", ""), ("patch", "configmaps", "")} <= verbs
    assert {("patch", "resourcequotas", ""), ("patch", "clusterqueues", "")} <= verbs
    assert not refused(manifests(), requests)


@pytest.mark.parametrize(("index", "position", "rule"), role_rules(), ids=RULE_IDS)
def test_each_rule_is_needed(
    requests: frozenset[Attributes], index: int, position: int, rule: dict[str, Any]
) -> None:
    objects = copy.deepcopy(manifests())
    del objects[index]["rules"][position]
    assert refused(objects, requests), f"rule {rule_id(rule)} grants nothing the backend uses"


@pytest.mark.parametrize(("index", "position", "rule"), role_rules(), ids=RULE_IDS)
def test_each_resource_of_each_rule_is_needed(
    requests: frozenset[Attributes], index: int, position: int, rule: dict[str, Any]
) -> None:
    for resource in rule["resources"]:
        objects = copy.deepcopy(manifests())
        reduced = objects[index]["rules"][position]
        reduced["resources"] = [r for r in reduced["resources"] if r != resource]
        assert refused(objects, requests), f"{resource} in {rule_id(rule)} is not used"


def test_without_its_patch_right_a_rollback_fails_with_the_api_servers_403(
    cluster: _ClusterThread,
) -> None:
    admin = kubernetes.client.RbacAuthorizationV1Api(
        kubernetes.config.new_client_from_config(str(cluster.cluster.kubeconfig))
    )
    rules = next(o for o in manifests() if o["kind"] == "ClusterRole")["rules"]
    kept = [
        r
        for r in rules
        if r != {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}
    ]
    assert len(kept) == len(rules) - 1
    merge = "application/merge-patch+json"
    admin.patch_cluster_role("opsconsole-backend", {"rules": kept}, _content_type=merge)
    try:
        headers = cluster.cluster.headers
        with httpx.Client(base_url=cluster.cluster.backend_url, timeout=30, headers=headers) as api:
            page = api.get("/api/v1/workloads", params={"kind": "Deployment", "limit": 200})
            for row in page.json()["items"]:
                release = api.get(f"/api/v1/workloads/{row['namespace']}/Deployment/{row['name']}")
                if len(release.json()["revisions"]) >= 2:
                    break
            plan = api.post(rollback_url(release.json(), "plan"), json={}).json()
            body = {"fingerprint": plan["fingerprint"], "reason": "without the right"}
            answer = api.post(rollback_url(release.json(), "apply"), json=body)
        assert answer.status_code == 502
        assert (
            f'deployments.apps "{row["name"]}" is forbidden: User "{BACKEND_USER}" cannot patch '
            f'resource "deployments" in API group "apps" in the namespace "{row["namespace"]}"'
        ) in answer.json()["detail"]
    finally:
        admin.patch_cluster_role("opsconsole-backend", {"rules": rules}, _content_type=merge)
