"""Every object the sandbox serves must be one a real API server could serve.

The official client's typed models (pydantic in kubernetes 37) validate required fields strictly;
a sandbox object they reject would mean the sandbox lies about Kubernetes.
"""

from __future__ import annotations

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.conftest import LiveCluster

TYPED_LISTS = [
    ("CoreV1Api", "list_namespace"),
    ("CoreV1Api", "list_node"),
    ("CoreV1Api", "list_pod_for_all_namespaces"),
    ("CoreV1Api", "list_event_for_all_namespaces"),
    ("CoreV1Api", "list_resource_quota_for_all_namespaces"),
    ("AppsV1Api", "list_deployment_for_all_namespaces"),
    ("AppsV1Api", "list_replica_set_for_all_namespaces"),
    ("BatchV1Api", "list_job_for_all_namespaces"),
]


@pytest.mark.parametrize(("api_class", "method"), TYPED_LISTS)
def test_typed_client_accepts_every_object(
    live_cluster: LiveCluster, api_class: str, method: str
) -> None:
    api_client = k8s_config.new_client_from_config(config_file=str(live_cluster.kubeconfig))
    result = getattr(getattr(k8s, api_class)(api_client), method)()
    assert result.items, f"{method} returned nothing from the demo fleet"
    assert result.metadata.resource_version
