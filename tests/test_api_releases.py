"""KServe canaries rolled back and promoted, rollouts followed and stuck ones flagged, and the
``opsconsole rollout`` commands — through the backend's HTTP API on a sandbox over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import kubernetes
import pytest

from opsconsole import change_cli
from opsconsole.cli import main as cli
from tests.conftest import LiveCluster
from tests.support.tokens import bearer

HEADERS = {"User-Agent": "pytest-releases"}
KSERVE = ("serving.kserve.io", "v1beta1", "inferenceservices")


@pytest.fixture(scope="module")
def api(mutable_cluster: LiveCluster) -> Iterator[httpx.Client]:
    """Dave, an admin."""
    headers = {**HEADERS, **bearer(mutable_cluster.token_for("dave"))}
    with httpx.Client(base_url=mutable_cluster.backend_url, timeout=30.0, headers=headers) as http:
        yield http


@pytest.fixture(autouse=True)
def console_token(mutable_cluster: LiveCluster) -> Iterator[None]:
    """The command line authenticates with the admin's token from the environment (kept out of
    the tests' own ``monkeypatch``, which they undo)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OPSCONSOLE_TOKEN", mutable_cluster.token)
        yield


@pytest.fixture(scope="module")
def custom(mutable_cluster: LiveCluster) -> kubernetes.client.CustomObjectsApi:
    client = kubernetes.config.new_client_from_config(str(mutable_cluster.kubeconfig))
    return kubernetes.client.CustomObjectsApi(client)


@pytest.fixture(scope="module")
def apps(mutable_cluster: LiveCluster) -> kubernetes.client.AppsV1Api:
    client = kubernetes.config.new_client_from_config(str(mutable_cluster.kubeconfig))
    return kubernetes.client.AppsV1Api(client)


def services(api: httpx.Client) -> list[dict[str, Any]]:
    page = api.get("/api/v1/workloads", params={"kind": "InferenceService", "limit": 100})
    return [
        api.get(f"/api/v1/workloads/{w['namespace']}/InferenceService/{w['name']}").json()
        for w in page.json()["items"]
    ]


def url(w: dict[str, Any], verb: str, step: str, kind: str = "isvc") -> str:
    return f"/api/v1/workloads/{w['namespace']}/{kind}/{w['name']}/{verb}/{step}"


def detail_path(w: dict[str, Any]) -> str:
    return f"/api/v1/workloads/{w['namespace']}/{w['kind']}/{w['name']}"


def wait_for(api: httpx.Client, w: dict[str, Any], ok: Callable[[dict], bool], what: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        detail = api.get(detail_path(w)).json()
        if ok(detail):
            return detail
        time.sleep(0.1)
    raise AssertionError(f"{what} did not show within 30 s")


def shares(split: dict[str, Any] | None) -> list[tuple[str | None, int, bool]]:
    assert split is not None
    return [(r["revision"], r["percent"], r["latest"]) for r in split["revisions"]]


def routed(detail: dict[str, Any]) -> list[tuple[str | None, int, bool]]:
    split = detail["traffic"]
    return shares(split) if split and split["observed"] else []


def apply(api: httpx.Client, w: dict, verb: str, plan: dict, reason: str) -> httpx.Response:
    return api.post(
        url(w, verb, "apply"), json={"fingerprint": plan["fingerprint"], "reason": reason}
    )


def template_changes(details: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    assert "template_unknown" not in details
    return {d["path"]: (d["before"], d["after"]) for d in details["template_diff"]}


STORAGE_URI = "spec.template.spec.containers[kserve-container].env[STORAGE_URI].value"


def test_canary_rolled_back_then_promoted(
    api: httpx.Client, custom: kubernetes.client.CustomObjectsApi
) -> None:
    canary = next(s for s in services(api) if s["canary_percent"] == 10)
    latest, previous = (r["revision"] for r in canary["traffic"]["revisions"])
    assert routed(canary) == [(latest, 10, True), (previous, 90, False)]
    assert canary["rollout"]["done"] and canary["rollout"]["target_traffic_percent"] == 10

    # Roll back: the plan says where the traffic goes, the apply moves it and is on record.
    answer = api.post(url(canary, "rollback", "plan"), json={})
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert plan["action"] == "isvc.rollback" and plan["noop"] is None
    assert plan["target"] == f"inferenceservice/{canary['namespace']}/{canary['name']}"
    assert plan["diff"] == [
        {"path": "spec.predictor.canaryTrafficPercent", "before": 10, "after": 0}
    ]
    details = plan["details"]
    assert details["target_revision"] == previous
    assert shares(details["traffic_before"]) == [(latest, 10, True), (previous, 90, False)]
    assert shares(details["traffic_after"]) == [(latest, 0, True), (previous, 100, False)]
    # What the revision taking the traffic runs, against the latest: another model version.
    isvc: Any = custom.get_namespaced_custom_object(
        *KSERVE[:2], canary["namespace"], KSERVE[2], canary["name"]
    )
    latest_uri = isvc["spec"]["predictor"]["model"]["storageUri"]
    base, version = latest_uri.rsplit("@rev-", 1)
    previous_uri = f"{base}@rev-{int(version) - 1}"
    assert (details["template_from"], details["template_to"]) == (latest, previous)
    rollback_changes = template_changes(details)
    assert rollback_changes[STORAGE_URI] == (latest_uri, previous_uri)
    assert plan["warnings"] == []
    # The kind as kubectl spells it, any case.
    for kind in ("InferenceService", "inferenceservices", "ISVC"):
        assert api.post(url(canary, "rollback", "plan", kind), json={}).json() == plan

    answer = apply(api, canary, "rollback", plan, "canary error rate at 4%")
    assert answer.status_code == 200, answer.text
    applied = answer.json()
    assert applied["outcome"] == "succeeded"
    after = wait_for(
        api, canary, lambda d: routed(d) == [(latest, 0, True), (previous, 100, False)], "rollback"
    )
    assert after["canary_percent"] == 0
    after = wait_for(api, canary, lambda d: d["rollout"]["done"], "the rollback's rollout")
    assert after["rollout"]["message"] == f"rolled back: all traffic to {previous}"
    records = api.get("/api/v1/audit", params={"change_id": applied["change_id"]}).json()["items"]
    assert [(r["stage"], r["action"]) for r in records] == [
        ("outcome", "isvc.rollback"),
        ("intent", "isvc.rollback"),
    ]
    assert records[0]["outcome"] == "succeeded" and records[0]["actor"] == "dave"
    assert records[0]["reason"] == "canary error rate at 4%"
    assert records[0]["tenants"] == [canary["tenant"]]

    # Rolling back again changes nothing.
    again = api.post(url(canary, "rollback", "plan"), json={}).json()
    assert again["noop"] == f"already rolled back: all traffic goes to {previous}"

    # Promote: everything to the latest ready revision, which becomes the rolled-out one.
    plan = api.post(url(canary, "promote", "plan")).json()
    assert plan["action"] == "isvc.promote" and plan["details"]["target_revision"] == latest
    assert plan["diff"] == [
        {"path": "spec.predictor.canaryTrafficPercent", "before": 0, "after": None}
    ]
    assert shares(plan["details"]["traffic_after"]) == [(latest, 100, True)]
    assert (plan["details"]["template_from"], plan["details"]["template_to"]) == (
        previous,
        latest,
    )
    assert template_changes(plan["details"]) == {
        path: (after, before) for path, (before, after) in rollback_changes.items()
    }
    assert apply(api, canary, "promote", plan, "fixed upstream").json()["outcome"] == "succeeded"
    after = wait_for(api, canary, lambda d: routed(d) == [(latest, 100, True)], "promotion")
    assert after["canary_percent"] is None
    after = wait_for(api, canary, lambda d: d["rollout"]["done"], "the promotion's rollout")
    assert after["rollout"]["message"] == f"all traffic to {latest}"
    assert api.get("/api/v1/audit", params={"action": "isvc.*"}).json()["items"][0]["action"] == (
        "isvc.promote"
    )

    # Promoted, it can still be rolled back: to the revision rolled out before the latest.
    plan = api.post(url(canary, "rollback", "plan"), json={}).json()
    assert plan["details"]["target_revision"] == previous
    assert apply(api, canary, "rollback", plan, "regressed again").json()["outcome"] == "succeeded"
    wait_for(
        api,
        canary,
        lambda d: routed(d) == [(latest, 0, True), (previous, 100, False)],
        "rollback after the promotion",
    )


def test_refusals_change_nothing(
    api: httpx.Client, custom: kubernetes.client.CustomObjectsApi
) -> None:
    steady = next(s for s in services(api) if s["canary_percent"] is None)
    answer = api.post(url(steady, "promote", "plan"))
    assert answer.status_code == 422
    assert f'inferenceservice "{steady["name"]}" is not in a canary' in answer.json()["detail"]
    answer = api.post(url(steady, "rollback", "plan"), json={"to_revision": 2})
    assert (answer.status_code, answer.json()["detail"]) == (
        422,
        "to_revision applies to deployments only",
    )
    answer = api.post(url(steady, "promote", "plan", "deployment"))
    assert answer.status_code == 422 and "inferenceservices only" in answer.json()["detail"]
    answer = api.post(url(steady, "rollback", "plan", "job"), json={})
    assert answer.status_code == 422 and "cannot roll back a 'job'" in answer.json()["detail"]
    missing = {**steady, "name": "no-such-service"}
    assert api.post(url(missing, "rollback", "plan"), json={}).status_code == 422

    # A service with one revision has nothing to roll back to.
    fresh = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "fresh-svc", "namespace": steady["namespace"]},
        "spec": {
            "predictor": {
                "minReplicas": 0,
                "model": {"modelFormat": {"name": "huggingface"}, "storageUri": "hf://x@1"},
            }
        },
    }
    custom.create_namespaced_custom_object(*KSERVE[:2], steady["namespace"], KSERVE[2], fresh)
    new = {"namespace": steady["namespace"], "kind": "InferenceService", "name": "fresh-svc"}
    wait_for(api, new, lambda d: "revision" in d and d["revision"] is not None, "the new service")
    answer = api.post(url(new, "rollback", "plan"), json={})
    assert answer.status_code == 422
    assert answer.json()["detail"] == (
        'no previous rolled-out revision for inferenceservice "fresh-svc": nothing to roll back to'
    )
    invalid = api.get("/api/v1/audit", params={"action": "isvc.*", "outcome": "invalid"}).json()
    assert len(invalid["items"]) >= 3


def test_a_canary_changed_since_the_plan_is_a_conflict(
    api: httpx.Client, custom: kubernetes.client.CustomObjectsApi
) -> None:
    steady = next(
        s for s in services(api) if s["canary_percent"] is None and s["name"] != "fresh-svc"
    )
    plan = api.post(url(steady, "rollback", "plan"), json={}).json()
    patch = {"spec": {"predictor": {"canaryTrafficPercent": 50}}}
    custom.patch_namespaced_custom_object(
        *KSERVE[:2], steady["namespace"], KSERVE[2], steady["name"], patch
    )
    wait_for(api, steady, lambda d: d["canary_percent"] == 50, "the concurrent change")
    answer = apply(api, steady, "rollback", plan, "too late")
    assert answer.status_code == 409
    assert answer.json()["plan"]["diff"][0]["before"] == 50
    assert api.get(detail_path(steady)).json()["canary_percent"] == 50


def test_a_rollback_to_a_revision_knative_no_longer_keeps_says_its_template_is_unknown(
    api: httpx.Client, apps: kubernetes.client.AppsV1Api
) -> None:
    steadies = [s for s in services(api) if s["canary_percent"] is None]
    steady = [s for s in steadies if s["name"] != "fresh-svc"][-1]
    plan = api.post(url(steady, "rollback", "plan"), json={}).json()
    target, latest = plan["details"]["target_revision"], steady["revision"]
    assert (plan["details"]["template_from"], plan["details"]["template_to"]) == (latest, target)
    assert STORAGE_URI in template_changes(plan["details"])
    revision_path = f"{detail_path(steady)}/revisions/{target}"
    read = api.get(revision_path).json()
    assert (read["revision"], read["current_revision"]) == (target, latest)
    assert STORAGE_URI in {d["path"] for d in read["diff"]}

    # Knative garbage-collects old revisions, and their Deployments with them.
    apps.delete_namespaced_deployment(f"{target}-deployment", steady["namespace"])
    answer = api.post(url(steady, "rollback", "plan"), json={})
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    why = (
        f"the pod template of revision {target} is not known: no Deployment in namespace "
        f'"{steady["namespace"]}" is labelled serving.knative.dev/revision={target} (Knative may '
        "have garbage-collected that revision), and KServe keeps no earlier predictor spec"
    )
    assert plan["details"]["target_revision"] == target
    assert plan["details"]["template_diff"] is None
    assert plan["details"]["template_unknown"] == why
    assert plan["warnings"] == [why]
    assert wait_for_json(api, revision_path, lambda r: r["diff"] is None)["unknown"] == why


def wait_for_json(api: httpx.Client, path: str, ok: Callable[[dict], bool]) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = api.get(path).json()
        if ok(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"{path} did not change within 30 s")


def test_any_role_reads_how_a_revision_differs_from_the_current_one(
    api: httpx.Client, mutable_cluster: LiveCluster
) -> None:
    page = api.get("/api/v1/workloads", params={"kind": "Deployment", "limit": 500}).json()
    details = (api.get(detail_path(w)).json() for w in page["items"])
    release = next(d for d in details if len(d["revisions"]) >= 3 and not d["paused"])
    older = release["revisions"][2]["revision"]
    path = f"{detail_path(release)}/revisions/{older}"
    viewer = bearer(mutable_cluster.token_for("vic", "viewer"))
    read = api.get(path, headers=viewer)
    assert read.status_code == 200, read.text
    body = read.json()
    assert (body["revision"], body["current_revision"]) == (older, release["revision"])
    assert body["diff"] and body["unknown"] is None
    # The same fields, before and after, as the template kubectl's undo would write.
    plan = api.post(
        f"{detail_path(release)}/rollback/plan", json={"to_revision": int(older)}
    ).json()
    template = [d for d in plan["diff"] if d["path"].startswith("spec.template.")]

    def by_path(diff: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(diff, key=lambda d: d["path"])

    assert by_path(body["diff"]) == by_path(template)

    # The current revision against itself; no such revision; another tenant's release.
    same = api.get(f"{detail_path(release)}/revisions/{release['revision']}", headers=viewer)
    assert same.json()["diff"] == []
    missing = api.get(f"{detail_path(release)}/revisions/999", headers=viewer)
    assert missing.status_code == 404
    assert missing.json()["detail"] == (
        f'revision 999 of deployment "{release["namespace"]}/{release["name"]}" not found'
    )
    outsider = bearer(mutable_cluster.token_for("tess", "viewer", frozenset({"no-such-tenant"})))
    assert api.get(path, headers=outsider).status_code == 404


def test_a_rollout_past_its_deadline_is_stuck(
    api: httpx.Client, apps: kubernetes.client.AppsV1Api
) -> None:
    namespace = services(api)[0]["namespace"]
    labels = {"app": "too-big", "opsconsole.io/model": "too-big"}
    body = {
        "metadata": {"name": "too-big", "labels": labels},
        "spec": {
            "replicas": 1,
            "progressDeadlineSeconds": 1,
            "selector": {"matchLabels": {"app": "too-big"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "vllm/vllm-openai:v0.6.3",
                            "resources": {"limits": {"nvidia.com/gpu": "64"}},
                        }
                    ]
                },
            },
        },
    }
    apps.create_namespaced_deployment(
        namespace, kubernetes.client.V1Deployment.model_validate(body)
    )
    w = {"namespace": namespace, "kind": "Deployment", "name": "too-big"}
    detail = wait_for(api, w, lambda d: d.get("rollout", {}).get("stuck"), "the stuck rollout")
    assert not detail["rollout"]["done"]
    assert detail["rollout"]["message"] == 'deployment "too-big" exceeded its progress deadline'
    problems = api.get("/api/v1/overview").json()["problems"]
    stuck = next(p for p in problems if p["subject"] == f"{namespace}/too-big")
    assert stuck["kind"] == "rollout" and stuck["severity"] == "critical"
    assert stuck["message"].startswith("rollout stuck: exceeded its progress deadline")


# -- the command line ----------------------------------------------------------------------------


def deployment_with_history(api: httpx.Client) -> dict[str, Any]:
    page = api.get("/api/v1/workloads", params={"kind": "Deployment", "limit": 200}).json()
    for row in page["items"]:
        detail = api.get(detail_path(row)).json()
        if len(detail["revisions"]) >= 2 and not detail["paused"] and detail["rollout"]["done"]:
            return detail
    raise AssertionError("the demo fleet has no Deployment with two revisions")


def test_cli_history_undo_and_its_exit_codes(
    api: httpx.Client,
    mutable_cluster: LiveCluster,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = ["rollout", "--backend", mutable_cluster.backend_url]
    release = deployment_with_history(api)
    target = f"{release['namespace']}/Deploy/{release['name']}"
    current = int(release["revision"])

    assert cli([*backend, "history", target]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"deployment.apps/{release['name']}"
    assert lines[1].split() == ["REVISION", "CHANGE-CAUSE"]
    numbers = [int(line.split()[0]) for line in lines[2:]]
    assert numbers == sorted(numbers) and numbers[-1] == current

    # Dry run: the plan, nothing changed.
    assert cli([*backend, "undo", target, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"deployment.apps/{release['name']}: revision {current} → revision ")
    assert "dry run: nothing was changed" in out
    # No --yes and no stdin to answer on: refused, nothing changed.
    assert cli([*backend, "undo", target, "--reason", "bad canary"]) == 1
    assert "not confirmed; nothing was changed" in capsys.readouterr().err
    assert api.get(detail_path(release)).json()["revision"] == str(current)

    # Bad usage.
    assert cli([*backend, "undo", target]) == 2
    assert "a reason is required" in capsys.readouterr().err
    assert cli([*backend, "undo", f"{release['namespace']}/pod/x", "--reason", "r"]) == 2
    assert 'unknown kind "pod"' in capsys.readouterr().err
    assert cli([*backend, "promote", target, "--reason", "r"]) == 2
    assert cli([*backend, "history", "just-a-name"]) == 2
    capsys.readouterr()

    # Someone else changes the Deployment between the plan and the confirmation: conflict.
    def meanwhile() -> bool:
        kube = kubernetes.config.new_client_from_config(str(mutable_cluster.kubeconfig))
        patch = {"metadata": {"annotations": {"team": "someone else"}}}
        kubernetes.client.AppsV1Api(kube).patch_namespaced_deployment(
            release["name"], release["namespace"], patch
        )
        time.sleep(0.5)  # the watch brings it to the backend
        return True

    monkeypatch.setattr(change_cli, "confirmed", meanwhile)
    assert cli([*backend, "undo", target, "--reason", "r"]) == 3
    captured = capsys.readouterr()
    assert "the cluster changed since the plan" in captured.out
    monkeypatch.undo()

    # --yes --wait: applied, then followed. The cluster's GPUs are all taken, so the new pods
    # cannot start: with a short progress deadline the rollout is reported stuck (exit 1).
    patch = {"spec": {"progressDeadlineSeconds": 2}}
    kube = kubernetes.config.new_client_from_config(str(mutable_cluster.kubeconfig))
    kubernetes.client.AppsV1Api(kube).patch_namespaced_deployment(
        release["name"], release["namespace"], patch
    )
    revision = int(api.get(detail_path(release)).json()["revision"])
    args = ["undo", target, "--reason", "p99 doubled", "--yes", "--wait", "--timeout", "60"]
    code = cli([*backend, *args])
    captured = capsys.readouterr()
    assert code == 1, captured
    assert f"deployment.apps/{release['name']} rolled back (audit change " in captured.out
    assert "Waiting for deployment" in captured.out
    assert f'deployment "{release["name"]}" exceeded its progress deadline' in captured.err
    assert api.get(detail_path(release)).json()["revision"] == str(revision + 1)


def test_cli_undo_to_a_chosen_revision_as_json_and_kubectls_refusals(
    api: httpx.Client,
    apps: kubernetes.client.AppsV1Api,
    mutable_cluster: LiveCluster,
    capsys: pytest.CaptureFixture[str],
) -> None:
    backend = ["rollout", "--backend", mutable_cluster.backend_url]
    page = api.get("/api/v1/workloads", params={"kind": "Deployment", "limit": 500}).json()
    details = (api.get(detail_path(w)).json() for w in page["items"])
    release = next(d for d in details if len(d["revisions"]) >= 3 and not d["paused"])
    namespace, name = release["namespace"], release["name"]
    target = f"{namespace}/deploy/{name}"
    current = int(release["revision"])
    oldest = release["revisions"][-1]  # not the previous one: --to-revision picks it
    chosen = int(oldest["revision"])
    assert chosen < int(release["revisions"][1]["revision"])

    # --dry-run: kubectl's target and patch, as text and as JSON; nothing changed.
    assert cli([*backend, "undo", target, "--to-revision", str(chosen), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"deployment.apps/{name}: revision {current} → revision {chosen}\n")
    assert "dry run: nothing was changed" in out
    args = ["undo", target, "--to-revision", str(chosen), "--dry-run", "--output", "json"]
    assert cli([*backend, *args]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"plan"}
    plan = report["plan"]
    assert plan["action"] == "rollout.undo" and plan["target"] == f"deployment/{namespace}/{name}"
    assert plan["parameters"] == {"namespace": namespace, "name": name, "to_revision": chosen}
    assert (plan["details"]["current_revision"], plan["details"]["target_revision"]) == (
        current,
        chosen,
    )
    assert plan["noop"] is None and plan["fingerprint"]
    assert [o["object"] for o in plan["objects"]] == [f"deployment/{namespace}/{name}"]
    assert {f["path"] for f in plan["objects"][0]["fields"]} == {
        "/spec/template",
        "/metadata/annotations",
    }
    assert plan["diff"] and all(
        d["path"].startswith(("spec.template.", "metadata.annotations.")) for d in plan["diff"]
    )
    assert api.get(detail_path(release)).json()["revision"] == str(current)

    # A revision that is not in the history: kubectl's words, exit 1, nothing changed.
    missing = "backend error 422: unable to find specified revision 999 in history"
    assert cli([*backend, "undo", target, "--to-revision", "999", "--reason", "r", "--yes"]) == 1
    assert capsys.readouterr().err == f"opsconsole rollout: {missing}\n"
    args = ["undo", target, "--to-revision", "999", "--dry-run", "--output", "json"]
    assert cli([*backend, *args]) == 1
    assert json.loads(capsys.readouterr().out) == {"error": missing}

    # A paused Deployment is refused as kubectl refuses it.
    apps.patch_namespaced_deployment(name, namespace, {"spec": {"paused": True}})
    wait_for(api, release, lambda d: d["paused"], "the pause")
    paused = (
        "backend error 422: you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' "
        "and try again"
    )
    args = ["undo", target, "--to-revision", str(chosen), "--reason", "r", "--yes"]
    assert cli([*backend, *args, "--output", "json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"error": paused}
    assert captured.err == f"opsconsole rollout: {paused}\n"
    assert api.get(detail_path(release)).json()["revision"] == str(current)
    apps.patch_namespaced_deployment(name, namespace, {"spec": {"paused": False}})
    wait_for(api, release, lambda d: not d["paused"], "the resume")

    # --yes: applied; the controller gives the chosen revision's ReplicaSet the next number.
    args = ["undo", target, "--to-revision", str(chosen), "--reason", "back to the oldest"]
    assert cli([*backend, *args, "--yes", "--output", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["applied"]["outcome"] == "succeeded" and report["applied"]["change_id"]
    assert report["plan"]["details"]["target_revision"] == chosen
    latest = max(int(r["revision"]) for r in release["revisions"]) + 1
    after = wait_for(api, release, lambda d: d["revision"] == str(latest), "the new revision")
    numbers = [r["revision"] for r in after["revisions"]]
    assert str(chosen) not in numbers and after["revisions"][0]["image"] == oldest["image"]


def test_cli_promote_an_inference_service_as_json(
    api: httpx.Client,
    custom: kubernetes.client.CustomObjectsApi,
    mutable_cluster: LiveCluster,
    capsys: pytest.CaptureFixture[str],
) -> None:
    backend = ["rollout", "--backend", mutable_cluster.backend_url]
    service = next(
        s for s in services(api) if s["canary_percent"] is None and len(s["revisions"]) >= 2
    )
    target = f"{service['namespace']}/isvc/{service['name']}"
    patch = {"spec": {"predictor": {"canaryTrafficPercent": 30}}}
    custom.patch_namespaced_custom_object(
        *KSERVE[:2], service["namespace"], KSERVE[2], service["name"], patch
    )
    wait_for(api, service, lambda d: [p for _, p, _ in routed(d)] == [30, 70], "the canary")

    assert cli([*backend, "history", target, "--output", "json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert sorted(r["traffic_percent"] for r in history if r["traffic_percent"]) == [30, 70]

    # The plan names the revisions and how the one taking all the traffic differs.
    assert cli([*backend, "promote", target, "--dry-run"]) == 0
    out = capsys.readouterr().out
    latest, previous = (r["revision"] for r in service["revisions"][:2])
    assert f"\n  {previous} → {latest}:\n" in out and f"\n    {STORAGE_URI}: " in out

    args = ["promote", target, "--reason", "canary healthy", "--yes", "--wait", "--output", "json"]
    code = cli([*backend, *args])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert report["plan"]["action"] == "isvc.promote"
    assert report["applied"]["outcome"] == "succeeded"
    assert report["rollout"]["done"] and report["rollout"]["latest_traffic_percent"] == 100

    assert cli([*backend, "promote", target, "--reason", "again", "--yes"]) == 1
    assert "is not in a canary" in capsys.readouterr().err
