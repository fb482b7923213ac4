"""The sandbox refuses and completes objects as a real API server does.

Expected answers are the real server's (kube-apiserver's validation in ``pkg/apis/*/validation``,
defaults in ``pkg/apis/*/v1/defaults.go``, decoding errors from its JSON serializer): the 422
``Invalid`` Status with ``details.causes``, the 400 of a body that does not decode, and the
fields a created object comes back with.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.sandbox import ADMIN_HEADERS, SandboxThread, sandbox_thread, tls_context

__all__ = ["sandbox_thread"]

NS = "validation"


@pytest.fixture(scope="module")
def http(sandbox_thread: SandboxThread) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sandbox_thread.url, headers=ADMIN_HEADERS, verify=tls_context(), timeout=10
    ) as client:
        client.post("/api/v1/namespaces", json={"metadata": {"name": NS}})
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def pod(name: str, containers: list[dict[str, Any]] | None = None, **meta: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **meta},
        "spec": {"containers": containers if containers is not None else [CONTAINER]},
    }


CONTAINER = {"name": "c", "image": "registry.local/app:1.2"}


def deployment(name: str, **spec: Any) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [CONTAINER]}},
            **spec,
        },
    }


PODS = f"/api/v1/namespaces/{NS}/pods"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
JOBS = f"/apis/batch/v1/namespaces/{NS}/jobs"


def test_a_pod_without_containers_is_422_required_value(http: httpx.Client) -> None:
    name = unique("empty")
    answer = http.post(PODS, json=pod(name, containers=[]))
    assert answer.status_code == 422
    status = answer.json()
    assert status["kind"] == "Status" and status["reason"] == "Invalid"
    assert status["message"] == f'Pod "{name}" is invalid: spec.containers: Required value'
    assert status["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"}
    ]
    assert http.get(f"{PODS}/{name}").status_code == 404
    empty_template = deployment(unique("d"))
    empty_template["spec"]["template"]["spec"]["containers"] = []
    answer = http.post(DEPLOYMENTS, json=empty_template)
    assert answer.status_code == 422
    assert answer.json()["details"]["causes"][0]["field"] == "spec.template.spec.containers"


@pytest.mark.parametrize(
    ("labels", "why"),
    [
        ({"[bold]k": "v"}, "name part must consist of alphanumeric characters"),
        ({"app": "v" * 64}, "must be no more than 63 characters"),
        ({"app": "-bad"}, "a valid label must be an empty string or consist of"),
        ({"a/b/c": "v"}, "a qualified name must consist of"),
        ({"Bad_Prefix!/k": "v"}, "a lowercase RFC 1123 subdomain"),
    ],
)
def test_invalid_labels_are_422(http: httpx.Client, labels: dict[str, str], why: str) -> None:
    name = unique("lbl")
    answer = http.post(PODS, json=pod(name, labels=labels))
    assert answer.status_code == 422, answer.text
    status = answer.json()
    assert status["message"].startswith(f'Pod "{name}" is invalid: metadata.labels: Invalid value')
    assert why in status["message"]
    assert status["details"]["causes"][0]["field"] == "metadata.labels"
    assert status["details"]["causes"][0]["reason"] == "FieldValueInvalid"


def test_valid_labels_are_accepted(http: httpx.Client) -> None:
    labels = {"opsconsole.io/tenant": "team-a", "app": "", "A_b.c": "X_y.Z"}
    assert http.post(PODS, json=pod(unique("ok"), labels=labels)).status_code == 201


def test_a_string_where_an_integer_belongs_is_400(http: httpx.Client) -> None:
    answer = http.post(DEPLOYMENTS, json=deployment(unique("d"), replicas="3"))
    assert answer.status_code == 400
    assert answer.json()["reason"] == "BadRequest"
    assert answer.json()["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal '
        "string into Go struct field DeploymentSpec.spec.replicas of type int32"
    )


def test_strict_field_validation_rejects_unknown_fields(http: httpx.Client) -> None:
    body = deployment(unique("d"), replica=3)
    answer = http.post(DEPLOYMENTS, json=body, params={"fieldValidation": "Strict"})
    assert answer.status_code == 400
    assert answer.json()["message"] == 'strict decoding error: unknown field "spec.replica"'
    # Without Strict the same body is accepted (a real server drops the field with a warning).
    assert http.post(DEPLOYMENTS, json=body).status_code == 201


def test_a_deployment_is_defaulted_on_create(http: httpx.Client) -> None:
    body = deployment(unique("d"))
    body["spec"]["template"]["spec"]["containers"] = [
        {
            "name": "c",
            "image": "vllm/vllm-openai",
            "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}},
        }
    ]
    created = http.post(DEPLOYMENTS, json=body).json()
    spec = created["spec"]
    assert spec["replicas"] == 1
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Always"
    assert pod_spec["dnsPolicy"] == "ClusterFirst"
    assert pod_spec["terminationGracePeriodSeconds"] == 30
    assert pod_spec["schedulerName"] == "default-scheduler"
    container = pod_spec["containers"][0]
    assert container["imagePullPolicy"] == "Always"  # no tag: latest
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/health", "port": 8000},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }


def test_a_pod_and_a_job_are_defaulted_on_create(http: httpx.Client) -> None:
    created = http.post(PODS, json=pod(unique("p"))).json()
    assert created["spec"]["restartPolicy"] == "Always"
    assert created["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    name = unique("j")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [CONTAINER]}},
        },
    }
    spec = http.post(JOBS, json=job).json()["spec"]
    assert (spec["backoffLimit"], spec["completions"], spec["parallelism"]) == (6, 1, 1)
    assert spec["completionMode"] == "NonIndexed" and spec["suspend"] is False
    assert spec["template"]["spec"]["restartPolicy"] == "Never"  # set values are kept
