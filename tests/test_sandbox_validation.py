"""The sandbox refuses and completes objects as a real API server does.

Expected answers are the real server's (kube-apiserver's validation in ``pkg/apis/*/validation``,
defaults in ``pkg/apis/*/v1/defaults.go``, decoding errors from its JSON serializer): the 422
``Invalid`` Status with ``details.causes``, the 400 of a body that does not decode, and the
fields a created object comes back with.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import kubernetes
import pytest

from tests.support.sandbox import (
    ADMIN_HEADERS,
    SandboxThread,
    kube,
    sandbox_thread,
    tls_context,
)

__all__ = ["kube", "sandbox_thread"]

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
    assert answer.json()["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.replica"'
    )
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


def job(name: str, **template_spec: Any) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [CONTAINER], **template_spec}}},
    }


def test_unknown_pod_fields_follow_field_validation(http: httpx.Client) -> None:
    """Strict refuses, Warn (the default) drops with a Warning header, Ignore drops silently;
    the path of a field inside a list names its index."""

    def body(name: str) -> dict:
        sent = pod(name, containers=[{**CONTAINER, "imagePullPolicyy": "Always"}])
        sent["spec"]["hostnetwork"] = True
        return sent

    name = unique("strict")
    answer = http.post(PODS, json=body(name), params={"fieldValidation": "Strict"})
    assert answer.status_code == 400, answer.text
    assert answer.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'unknown field "spec.containers[0].imagePullPolicyy", unknown field "spec.hostnetwork"',
        "reason": "BadRequest",
        "code": 400,
    }
    assert http.get(f"{PODS}/{name}").status_code == 404

    for params in ({}, {"fieldValidation": "Warn"}):
        answer = http.post(PODS, json=body(unique("warn")), params=params)
        assert answer.status_code == 201, answer.text
        assert answer.headers.get_list("warning") == [
            '299 - "unknown field \\"spec.containers[0].imagePullPolicyy\\""',
            '299 - "unknown field \\"spec.hostnetwork\\""',
        ]
        stored = answer.json()["spec"]
        assert "hostnetwork" not in stored
        assert stored["containers"][0]["imagePullPolicy"] == "IfNotPresent"  # the default
        assert "imagePullPolicyy" not in stored["containers"][0]

    answer = http.post(PODS, json=body(unique("ignore")), params={"fieldValidation": "Ignore"})
    assert answer.status_code == 201 and "warning" not in answer.headers
    assert "hostnetwork" not in answer.json()["spec"]


def test_an_unknown_field_validation_directive_is_422(http: httpx.Client) -> None:
    answer = http.post(PODS, json=pod(unique("p")), params={"fieldValidation": "strict"})
    assert answer.status_code == 422
    status = answer.json()
    why = 'Unsupported value: "strict": supported values: "", "Ignore", "Strict", "Warn"'
    assert status["message"] == f'CreateOptions.meta.k8s.io "" is invalid: fieldValidation: {why}'
    assert status["details"]["causes"] == [
        {"reason": "FieldValueNotSupported", "message": why, "field": "fieldValidation"}
    ]


def test_a_strict_patch_with_an_unknown_field_is_422_on_the_patch(http: httpx.Client) -> None:
    name = unique("d")
    assert http.post(DEPLOYMENTS, json=deployment(name)).status_code == 201
    answer = http.patch(
        f"{DEPLOYMENTS}/{name}",
        params={"fieldValidation": "Strict"},
        content=b'{"spec": {"replica": 3}}',
        headers={"content-type": "application/merge-patch+json"},
    )
    assert answer.status_code == 422, answer.text
    status = answer.json()
    assert status["reason"] == "Invalid"
    assert status["message"].startswith(' "" is invalid: patch: Invalid value: "{')
    assert status["message"].endswith(': strict decoding error: unknown field "spec.replica"')
    (cause,) = status["details"]["causes"]
    assert cause["field"] == "patch" and cause["reason"] == "FieldValueInvalid"
    assert '\\"replica\\":3' in cause["message"]  # the value is the patched object
    # The default (Warn) drops the field and says so.
    answer = http.patch(
        f"{DEPLOYMENTS}/{name}",
        content=b'{"spec": {"replica": 3}}',
        headers={"content-type": "application/merge-patch+json"},
    )
    assert answer.status_code == 200
    assert answer.headers["warning"] == '299 - "unknown field \\"spec.replica\\""'
    assert "replica" not in answer.json()["spec"]


@pytest.mark.parametrize("restart", [None, "Always"])
def test_a_job_must_restart_on_failure_or_never(http: httpx.Client, restart: str | None) -> None:
    name = unique("j")
    body = job(name) if restart is None else job(name, restartPolicy=restart)
    answer = http.post(JOBS, json=body)
    assert answer.status_code == 422, answer.text
    status = answer.json()
    why = 'Required value: valid values: "OnFailure", "Never"'
    path = "spec.template.spec.restartPolicy"
    assert status["message"] == f'Job.batch "{name}" is invalid: {path}: {why}'
    assert status["details"]["kind"] == "Job" and status["details"]["group"] == "batch"
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueRequired",
            "message": why,
            "field": "spec.template.spec.restartPolicy",
        }
    ]
    assert http.post(JOBS, json=job(unique("j"), restartPolicy="OnFailure")).status_code == 201


def test_a_deployment_template_must_restart_always(http: httpx.Client) -> None:
    body = deployment(unique("d"))
    body["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    answer = http.post(DEPLOYMENTS, json=body)
    assert answer.status_code == 422
    assert answer.json()["details"]["causes"] == [
        {
            "reason": "FieldValueNotSupported",
            "message": 'Unsupported value: "Never": supported values: "Always"',
            "field": "spec.template.spec.restartPolicy",
        }
    ]


def test_duplicate_container_names_are_422(http: httpx.Client) -> None:
    name = unique("dup")
    containers = [CONTAINER, {"name": "c", "image": "registry.local/sidecar:1"}]
    answer = http.post(PODS, json=pod(name, containers=containers))
    assert answer.status_code == 422, answer.text
    status = answer.json()
    assert (
        status["message"]
        == f'Pod "{name}" is invalid: spec.containers[1].name: Duplicate value: "c"'
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueDuplicate",
            "message": 'Duplicate value: "c"',
            "field": "spec.containers[1].name",
        }
    ]
    sent = pod(unique("dup"))
    sent["spec"]["initContainers"] = [{"name": "c", "image": "registry.local/init:1"}]
    answer = http.post(PODS, json=sent)
    assert answer.status_code == 422
    assert answer.json()["details"]["causes"][0]["field"] == "spec.initContainers[0].name"


def test_a_string_container_port_is_400(http: httpx.Client) -> None:
    sent = pod(unique("port"), containers=[{**CONTAINER, "ports": [{"containerPort": "8080"}]}])
    answer = http.post(PODS, json=sent)
    assert answer.status_code == 400, answer.text
    assert answer.json()["reason"] == "BadRequest"
    assert answer.json()["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go '
        "struct field ContainerPort.spec.containers.ports.containerPort of type int32"
    )
    body = deployment(unique("d"))
    body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1.5
    answer = http.post(DEPLOYMENTS, json=body)
    assert answer.status_code == 400
    assert answer.json()["message"].endswith(
        "json: cannot unmarshal number 1.5 into Go struct field "
        "PodSpec.spec.template.spec.terminationGracePeriodSeconds of type int64"
    )
    # Quantities decode from numbers as well as strings.
    limits = {"resources": {"limits": {"nvidia.com/gpu": 1, "cpu": "500m"}}}
    sent = pod(unique("gpu"), containers=[{**CONTAINER, **limits}])
    assert http.post(PODS, json=sent).status_code == 201


def test_update_and_patch_are_defaulted_as_create_is(http: httpx.Client) -> None:
    name = unique("d")
    created = http.post(DEPLOYMENTS, json=deployment(name)).json()
    replaced = deployment(name)
    replaced["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    replaced["spec"]["template"]["spec"]["containers"] = [{"name": "c", "image": "app:2"}]
    answer = http.put(f"{DEPLOYMENTS}/{name}", json=replaced)
    assert answer.status_code == 200, answer.text
    spec = answer.json()["spec"]
    assert spec["revisionHistoryLimit"] == 10
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": "25%", "maxSurge": "25%"}
    assert spec["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    answer = http.patch(
        f"{DEPLOYMENTS}/{name}",
        content=b'{"spec": {"strategy": null, "progressDeadlineSeconds": null}}',
        headers={"content-type": "application/merge-patch+json"},
    )
    assert answer.status_code == 200, answer.text
    spec = answer.json()["spec"]
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"]["type"] == "RollingUpdate"


@pytest.mark.usefixtures("http")  # the namespace
def test_the_official_client_sees_the_same_refusals(kube: kubernetes.client.ApiClient) -> None:
    """Typed models (which refuse unknown fields themselves) get the same 422 Status."""
    core = kubernetes.client.CoreV1Api(kube)
    sent = pod(unique("client"), containers=[CONTAINER, CONTAINER])
    with pytest.raises(kubernetes.client.ApiException) as raised:
        core.create_namespaced_pod(NS, kubernetes.client.V1Pod.model_validate(sent))
    assert raised.value.status == 422
    (cause,) = json.loads(str(raised.value.body))["details"]["causes"]
    assert cause["field"] == "spec.containers[1].name"
    batch = kubernetes.client.BatchV1Api(kube)
    with pytest.raises(kubernetes.client.ApiException) as raised:
        batch.create_namespaced_job(NS, kubernetes.client.V1Job.model_validate(job(unique("c"))))
    assert raised.value.status == 422
    (cause,) = json.loads(str(raised.value.body))["details"]["causes"]
    assert cause["field"] == "spec.template.spec.restartPolicy"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.usefixtures("http")  # the namespace
def test_kubectl_refuses_and_warns_as_with_a_real_server(
    sandbox_thread: SandboxThread, tmp_path: Any
) -> None:
    """kubectl validates strictly by default (``--validate=strict``) and prints the server's
    message; with ``--validate=warn`` it prints the server's warnings and creates the object."""
    manifest = tmp_path / "job.yaml"
    name = unique("kj")
    manifest.write_text(
        "apiVersion: batch/v1\nkind: Job\n"
        f"metadata: {{name: {name}, namespace: {NS}}}\n"
        "spec:\n  template:\n    spec:\n      restartPolicy: Never\n"
        "      containers: [{name: c, image: app:1, imagePullPolicyy: Always}]\n"
    )

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        command = ["kubectl", "--kubeconfig", str(sandbox_thread.kubeconfig_path), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    refused = kubectl("create", "-f", str(manifest))
    assert refused.returncode == 1
    assert (
        'Job in version "v1" cannot be handled as a Job: strict decoding error: unknown field '
        '"spec.template.spec.containers[0].imagePullPolicyy"'
    ) in refused.stderr
    warned = kubectl("create", "--validate=warn", "-f", str(manifest))
    assert warned.returncode == 0, warned.stderr
    assert (
        'Warning: unknown field "spec.template.spec.containers[0].imagePullPolicyy"'
        in warned.stderr
    )
