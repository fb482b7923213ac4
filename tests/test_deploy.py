"""The deployment manifests in ``deploy/`` and the ``Dockerfile`` agree with each other and with
the backend: the pod runs as the ServiceAccount the roles are bound to, hardened, probed on the
backend's health endpoints, with its database URL from a Secret; the image runs ``serve``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from backend.sandbox.policy import BACKEND_SERVICE_ACCOUNT, DEPLOY_DIR, read_manifests
from opsconsole.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def by_kind(*files: str) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for obj in read_manifests(*files):
        kinds.setdefault(obj["kind"], []).append(obj)
    return kinds


def test_the_deployment_runs_hardened_as_the_bound_service_account() -> None:
    objects = by_kind("backend.yaml")
    (deployment,) = objects["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == BACKEND_SERVICE_ACCOUNT
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] in ("/healthz", "/readyz")
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    env = {e["name"]: e for e in container["env"]}
    assert env["OPSCONSOLE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "url"
    # In-cluster telemetry needs no pods/proxy right (that role is optional).
    assert env["OPSCONSOLE_TELEMETRY_MODE"]["value"] == "direct"
    args = build_parser().parse_args(container["args"])
    assert args.command == "serve" and args.host == "0.0.0.0" and args.port == 8080
    (service,) = objects["Service"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (policy,) = objects["NetworkPolicy"]
    assert policy["spec"]["podSelector"]["matchLabels"] == service["spec"]["selector"]
    assert {"Ingress", "Egress"} == set(policy["spec"]["policyTypes"])


def test_every_binding_names_the_backend_service_account() -> None:
    objects = by_kind("rbac.yaml", "rbac-telemetry-proxy.yaml")
    (account,) = objects["ServiceAccount"]
    assert account["metadata"]["name"] == BACKEND_SERVICE_ACCOUNT
    for binding in objects["ClusterRoleBinding"] + objects["RoleBinding"]:
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": BACKEND_SERVICE_ACCOUNT,
                "namespace": account["metadata"]["namespace"],
            }
        ]
    proxy = by_kind("rbac-telemetry-proxy.yaml")["ClusterRole"][0]["rules"]
    assert proxy == [{"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get"]}]


def test_the_image_runs_serve_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER 10001", dockerfile, re.MULTILINE)
    entrypoint = json.loads(re.findall(r"^ENTRYPOINT (.*)$", dockerfile, re.MULTILINE)[0])
    command = json.loads(re.findall(r"^CMD (.*)$", dockerfile, re.MULTILINE)[0])
    assert entrypoint == ["opsconsole"]
    args = build_parser().parse_args(command)
    assert args.command == "serve" and args.host == "0.0.0.0"
    assert DEPLOY_DIR.resolve() == ROOT / "deploy"
