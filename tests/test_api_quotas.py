"""The quota review and quota changes through the backend's HTTP API and ``opsconsole quota``, on a
demo sandbox over real HTTP, in both quota systems (seed 7: team-a..team-f in Kueue, team-g with a
ResourceQuota)."""

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

GPU = "nvidia.com/gpu"
HEADERS = {"User-Agent": "pytest-quota"}


@pytest.fixture(scope="module")
def api(mutable_cluster: LiveCluster) -> Iterator[httpx.Client]:
    """Alice, an admin."""
    headers = {**HEADERS, **bearer(mutable_cluster.token_for("alice"))}
    with httpx.Client(base_url=mutable_cluster.backend_url, timeout=30.0, headers=headers) as http:
        yield http


@pytest.fixture(scope="module")
def custom(mutable_cluster: LiveCluster) -> kubernetes.client.CustomObjectsApi:
    api = kubernetes.config.new_client_from_config(str(mutable_cluster.kubeconfig))
    return kubernetes.client.CustomObjectsApi(api)


def row(api: httpx.Client, tenant: str, model: str | None = None) -> dict[str, Any]:
    params = {"tenant": tenant, **({"model": model} if model else {})}
    [only] = api.get("/api/v1/quotas", params=params).json()["items"]
    return only


def wait_for(what: str, check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def plan_and_apply(api: httpx.Client, body: Any, reason: str = "rebalance") -> dict[str, Any]:
    plan = api.post("/api/v1/quotas/plan", json=body)
    assert plan.status_code == 200, plan.text
    confirm = {"fingerprint": plan.json()["fingerprint"], "reason": reason}
    apply_body = {"items": body, **confirm} if isinstance(body, list) else {**body, **confirm}
    answer = api.post("/api/v1/quotas/apply", json=apply_body)
    assert answer.status_code == 200, answer.text
    wanted = {
        (c["tenant"], c["gpu_model"]): c["after"]
        for c in answer.json()["plan"]["details"]["changes"]
    }
    wait_for("the change in the review", lambda: wanted.items() <= nominals(api).items())
    return answer.json()


def nominals(api: httpx.Client) -> dict[tuple[str, str], int]:
    items = api.get("/api/v1/quotas").json()["items"]
    return {(r["tenant"], r["gpu_model"]): r["nominal"] for r in items}


def audit(api: httpx.Client, change_id: str) -> list[dict[str, Any]]:
    return api.get("/api/v1/audit", params={"change_id": change_id}).json()["items"]


def test_review_lists_every_tenant_and_model_in_both_systems(api: httpx.Client) -> None:
    review = wait_for(
        "the first usage recording",
        lambda: (r := api.get("/api/v1/quotas").json())["history_updated"] and r,
    )
    tenants = {r["tenant"] for r in review["items"]}
    assert tenants == {f"team-{c}" for c in "abcdefg"}
    a100 = row(api, "team-a", "a100")
    assert (a100["system"], a100["flavor"], a100["gpu_model"]) == (
        "kueue",
        "a100",
        "NVIDIA-A100-SXM4-80GB",
    )
    assert a100["cohort"] == "gpu-platform" and a100["namespaces"] == ["team-a"]
    assert row(api, "team-a", "NVIDIA-A100-SXM4-80GB") == a100  # by product too
    assert a100["usage_24h"]["samples"] >= 1 and a100["usage_7d"]["allocated_peak"] is not None
    g = row(api, "team-g")
    assert (g["system"], g["gpu_model"], g["flavor"]) == ("resourcequota", "*", None)
    assert [(q["namespace"], q["hard"]) for q in g["namespace_quotas"]] == [
        ("team-g", g["nominal"])
    ]
    models = {m["gpu_model"]: m for m in review["models"]}
    assert models["NVIDIA-A100-SXM4-80GB"]["capacity"] == 32
    assert models["NVIDIA-A100-SXM4-80GB"]["flavors"] == ["a100"]
    assert review["oversubscription"] == 1.0
    assert api.get("/api/v1/quotas", params={"tenant": "nobody"}).json()["items"] == []


def test_transfer_between_systems_applies_shows_at_once_and_is_audited(
    api: httpx.Client,
) -> None:
    a, g = row(api, "team-a", "a100"), row(api, "team-g")
    body = {"op": "transfer", "from": "team-a", "to": "team-g", "model": "a100", "gpus": 2}
    plan = api.post("/api/v1/quotas/plan", json=body).json()
    assert plan["action"] == "quota.transfer" and plan["tenants"] == ["team-a", "team-g"]
    assert [o["object"] for o in plan["objects"]] == [
        "clusterqueue/team-a",
        "resourcequota/team-g/gpu-quota",
    ]
    fields = [f for o in plan["objects"] for f in o["fields"]]
    assert [f["path"] for f in fields] == [
        "/spec/resourceGroups/0/flavors/0/resources/0/nominalQuota",
        "/spec/hard/requests.nvidia.com~1gpu",
    ]
    assert [(f["before"], f["after"]) for f in fields] == [
        (a["nominal"], a["nominal"] - 2),
        (str(g["nominal"]), str(g["nominal"] + 2)),
    ]
    applied = plan_and_apply(api, body, reason="team-g launches a new model")
    assert applied["outcome"] == "succeeded"
    # The answer came once reads show the change: the very next read has both objects.
    assert row(api, "team-a", "a100")["nominal"] == a["nominal"] - 2
    assert row(api, "team-g")["nominal"] == g["nominal"] + 2
    outcome, intent = audit(api, applied["change_id"])
    assert (intent["stage"], outcome["outcome"], outcome["actor"]) == (
        "intent",
        "succeeded",
        "alice",
    )
    assert outcome["tenants"] == ["team-a", "team-g"]
    assert outcome["reason"] == "team-g launches a new model"
    plan_and_apply(api, {**body, "from": "team-g", "to": "team-a"}, reason="back")


def test_a_change_set_is_one_change(api: httpx.Client) -> None:
    c, e, f = row(api, "team-c", "h100"), row(api, "team-e", "h100"), row(api, "team-f")
    items = [
        {"op": "transfer", "from": "team-c", "to": "team-e", "model": "h100", "gpus": 1},
        {"op": "set", "tenant": "team-f", "gpus": f["nominal"] + 1},
    ]
    plan = api.post("/api/v1/quotas/plan", json=items).json()
    assert plan["action"] == "quota.changeset" and len(plan["objects"]) == 3
    assert plan["tenants"] == ["team-c", "team-e", "team-f"]
    assert api.post("/api/v1/quotas/plan", json={"items": items}).json() == plan
    applied = plan_and_apply(api, items)
    assert applied["outcome"] == "succeeded"
    # Never half applied once answered: the next reads show all three objects changed.
    after = (row(api, "team-c", "h100"), row(api, "team-e", "h100"), row(api, "team-f"))
    assert [r["nominal"] for r in after] == [c["nominal"] - 1, e["nominal"] + 1, f["nominal"] + 1]
    [one] = [r for r in audit(api, applied["change_id"]) if r["stage"] == "outcome"]
    assert len(one["before"]) == 3 and one["action"] == "quota.changeset"
    back = [
        {"op": "transfer", "from": "team-e", "to": "team-c", "model": "h100", "gpus": 1},
        {"op": "set", "tenant": "team-f", "gpus": f["nominal"]},
    ]
    plan_and_apply(api, back, reason="back")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"op": "set", "tenant": "nobody", "gpus": 1}, 'unknown tenant "nobody"'),
        ({"op": "set", "tenant": "team-g", "gpus": 1.5}, "whole number"),
        ({"op": "set", "tenant": "team-g", "namespace": "elsewhere", "gpus": 1}, "namespace"),
        ({"op": "transfer", "from": "team-a", "to": "team-a", "gpus": 1}, "to itself"),
        ({"op": "transfer", "from": "team-g", "to": "team-a", "gpus": 9999}, "cannot move"),
    ],
)
def test_invalid_changes_answer_422_change_nothing_and_are_audited(
    api: httpx.Client, body: dict[str, Any], words: str
) -> None:
    before = nominals(api)
    answer = api.post("/api/v1/quotas/plan", json=body)
    assert answer.status_code == 422 and words in answer.json()["detail"]
    refused = api.get("/api/v1/audit", params={"outcome": "invalid", "limit": 1}).json()
    assert words in refused["items"][0]["error"]
    assert nominals(api) == before
    fake = {**body, "fingerprint": "0" * 64 + "." + "0" * 64, "reason": ""}
    assert api.post("/api/v1/quotas/apply", json=fake).status_code == 422


def test_an_operator_sees_and_changes_only_its_tenants_quota(
    api: httpx.Client, mutable_cluster: LiveCluster
) -> None:
    rows = api.get("/api/v1/quotas").json()
    kueue = [r for r in rows["items"] if r["system"] == "kueue" and r["nominal"] >= 1]
    mine, other = next(
        (a, b)
        for a in kueue
        for b in kueue
        if a["tenant"] != b["tenant"] and a["flavor"] == b["flavor"]
    )
    token = mutable_cluster.token_for("olga", "operator", frozenset({mine["tenant"]}))
    olga = {"User-Agent": "pytest-quota", **bearer(token)}
    base = mutable_cluster.backend_url
    with httpx.Client(base_url=base, timeout=30.0, headers=olga) as http:
        seen = http.get("/api/v1/quotas").json()
        assert {r["tenant"] for r in seen["items"]} == {mine["tenant"]}
        assert seen["models"] == rows["models"]  # the fleet's totals stay visible
        model = mine["flavor"]
        own = {"op": "set", "tenant": mine["tenant"], "model": model, "gpus": mine["nominal"]}
        assert http.post("/api/v1/quotas/plan", json=own).status_code == 200
        before = nominals(api)
        move = {"op": "transfer", "from": mine["tenant"], "to": other["tenant"], "gpus": 1}
        denied = http.post("/api/v1/quotas/plan", json={**move, "model": model})
    assert denied.status_code == 403, denied.text
    assert "admin" in denied.json()["detail"]
    assert nominals(api) == before
    record = api.get("/api/v1/audit", params={"outcome": "denied", "limit": 1}).json()["items"][0]
    assert (record["actor"], record["action"]) == ("olga", "quota.transfer")


def test_two_operators_on_the_same_quota_one_gets_409(api: httpx.Client) -> None:
    d = row(api, "team-d", "a100")
    alice = {"op": "set", "tenant": "team-d", "model": "a100", "gpus": d["nominal"] + 1}
    bob = {"op": "set", "tenant": "team-d", "model": "a100", "gpus": d["nominal"] + 2}
    plans = [api.post("/api/v1/quotas/plan", json=b).json() for b in (alice, bob)]
    first = api.post(
        "/api/v1/quotas/apply",
        json={**alice, "fingerprint": plans[0]["fingerprint"], "reason": "a"},
    )
    second = api.post(
        "/api/v1/quotas/apply", json={**bob, "fingerprint": plans[1]["fingerprint"], "reason": "b"}
    )
    assert first.status_code == 200 and second.status_code == 409
    refused = second.json()
    assert "changed since the plan" in refused["detail"]
    assert refused["plan"]["objects"][0]["fields"][0]["before"] == d["nominal"] + 1
    plan_and_apply(api, {**alice, "gpus": d["nominal"]}, reason="back")


def admitted(custom: kubernetes.client.CustomObjectsApi, namespace: str) -> set[str]:
    listed: Any = custom.list_namespaced_custom_object(
        "kueue.x-k8s.io", "v1beta2", namespace, "workloads"
    )
    workloads = listed["items"]
    return {w["metadata"]["name"] for w in workloads if (w.get("status") or {}).get("admission")}


def test_the_what_if_agrees_with_what_kueue_then_admits(
    api: httpx.Client, custom: kubernetes.client.CustomObjectsApi
) -> None:
    a = row(api, "team-a", "a100")
    assert a["pending"] > 0  # seed 7: team-a waits for a100 quota
    a100 = api.get("/api/v1/quotas", params={"model": "a100"}).json()["items"]
    borrowed = sum(r["borrowed"] for r in a100 if r["tenant"] != "team-a")  # from the cohort
    room = a["nominal"] + a["pending"] + borrowed
    body = {"op": "set", "tenant": "team-a", "model": "a100", "gpus": room}
    plan = api.post("/api/v1/quotas/plan", json=body).json()
    whatif = plan["details"]["whatif"]["team-a"]
    expected = {w["workload"] for w in whatif["admitted"]}
    still = {w["workload"] for w in whatif["pending"]}
    assert expected and any("would be admitted afterwards" in w for w in plan["warnings"])
    before = admitted(custom, "team-a")
    assert not expected & before
    confirm = {"fingerprint": plan["fingerprint"], "reason": "unblock pretraining"}
    assert api.post("/api/v1/quotas/apply", json={**body, **confirm}).status_code == 200
    wait_for("Kueue's admission", lambda: expected <= admitted(custom, "team-a"))
    now = admitted(custom, "team-a")
    assert not still & now
    # Cutting it back below use: the admitted workloads become borrowers, named in the plan.
    cut = {**body, "gpus": a["nominal"]}
    plan = api.post("/api/v1/quotas/plan", json=cut).json()
    reclaimable = {w["workload"] for w in plan["details"]["reclaimable"]["team-a"]}
    assert reclaimable & expected
    assert any("Kueue may reclaim" in w for w in plan["warnings"])
    plan_and_apply(api, cut, reason="back")


def test_cli_show_set_transfer_and_exit_codes(
    api: httpx.Client,
    mutable_cluster: LiveCluster,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSCONSOLE_TOKEN", mutable_cluster.token)
    backend = ["quota", "--backend", mutable_cluster.backend_url]
    assert cli([*backend, "show"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["TENANT", "SYSTEM", "GPU-MODEL", "FLAVOR/NAMESPACES"]
    assert any(line.split()[:2] == ["team-g", "resourcequota"] for line in lines)
    assert cli([*backend, "show", "team-e", "--output", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {r["flavor"] for r in shown["items"]} == {"h100", "l40s"}

    g = row(api, "team-g")
    set_g = [*backend, "set", "team-g", "--gpus", str(g["nominal"] + 1)]
    assert cli([*set_g, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"team-g namespace team-g: {g['nominal']} → {g['nominal'] + 1} GPUs" in out
    assert "dry run: nothing was changed" in out
    assert cli([*set_g, "--reason", "r"]) == 1  # no --yes and no stdin: not confirmed
    assert "not confirmed" in capsys.readouterr().err
    assert cli([*set_g, "--reason", "more serving", "--yes", "--output", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["applied"]["outcome"] == "succeeded"
    wait_for("the CLI's change", lambda: row(api, "team-g")["nominal"] == g["nominal"] + 1)

    transfer = [*backend, "transfer", "--from", "team-g", "--to", "team-a", "--model", "a100"]
    assert cli([*transfer, "--gpus", "1", "--reason", "back", "--yes"]) == 0
    assert "quota changed (audit change" in capsys.readouterr().out
    assert cli([*transfer, "--gpus", "1"]) == 2  # no reason
    assert "a reason is required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        cli([*transfer, "--gpus", "1.5", "--reason", "r"])
    assert usage.value.code == 2
    capsys.readouterr()
    assert cli([*backend, "set", "nobody", "--gpus", "1", "--reason", "r", "--yes"]) == 1
    assert 'unknown tenant "nobody"' in capsys.readouterr().err

    def meanwhile() -> bool:  # another operator changes the quota while this one confirms
        plan_and_apply(api, {"op": "set", "tenant": "team-g", "gpus": g["nominal"] + 5})
        return True

    monkeypatch.setattr(change_cli, "confirmed", meanwhile)
    mine = [*backend, "set", "team-g", "--gpus", str(g["nominal"] + 2), "--reason", "r"]
    assert cli(mine) == 3
    assert "the new plan" in capsys.readouterr().out
    plan_and_apply(api, {"op": "set", "tenant": "team-g", "gpus": g["nominal"]}, reason="back")


def test_the_resource_quota_what_if_names_the_refused_workloads(
    api: httpx.Client, mutable_cluster: LiveCluster
) -> None:
    g = row(api, "team-g")
    room = g["nominal"] - g["used"]
    apps = kubernetes.client.AppsV1Api(
        kubernetes.config.new_client_from_config(str(mutable_cluster.kubeconfig))
    )
    gpus = str(room + 1)
    container = {"name": "llm", "image": "vllm:0.6", "resources": {"limits": {GPU: gpus}}}
    body = {
        "metadata": {"name": "too-big"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "too-big"}},
            "template": {
                "metadata": {"labels": {"app": "too-big"}},
                "spec": {"containers": [container]},
            },
        },
    }
    apps.create_namespaced_deployment("team-g", kubernetes.client.V1Deployment.model_validate(body))
    wait_for("the refusal", lambda: row(api, "team-g")["pending"] >= room + 1, timeout=20)
    plan = api.post(
        "/api/v1/quotas/plan", json={"op": "set", "tenant": "team-g", "gpus": g["nominal"] + 1}
    ).json()
    assert {w["workload"] for w in plan["details"]["whatif"]["team-g"]["admitted"]} == {"too-big"}
    small = api.post(
        "/api/v1/quotas/plan", json={"op": "set", "tenant": "team-g", "gpus": g["nominal"]}
    ).json()
    assert small["noop"] and small["details"]["whatif"] == {}
    apps.delete_namespaced_deployment("too-big", "team-g")
