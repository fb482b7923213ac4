"""List pages decoded straight into the slim shapes equal what ``slim`` makes of each object.

Pods, ReplicaSets and Deployments are decoded into their shapes (``decode_list``); a page that
does not fit its shape is parsed whole and slimmed. Either way the objects must come out as
``slim`` makes them from a watch event, or an object would read differently after a relist.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.cluster.slim import (
    LIST_DECODERS,
    METADATA_KEYS,
    POD_CONTAINER_KEYS,
    POD_CONTAINER_STATUS_KEYS,
    POD_SPEC_KEYS,
    POD_STATUS_KEYS,
    decode_list,
    slim,
)

KINDS = {"Pod": "v1", "ReplicaSet": "apps/v1", "Deployment": "apps/v1", "Node": "v1"}
# Fields the shapes leave out, as real objects have them.
EXTRA_KEYS = ("managedFields", "volumes", "tolerations", "hostIP", "imageID", "env", "x-ünïcode")

leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
json_values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def fields(keys: tuple[str, ...], **special: st.SearchStrategy[Any]) -> st.SearchStrategy[dict]:
    """Some of ``keys`` (and of ``special``, with their own values) and some fields left out."""
    optional: dict[str, st.SearchStrategy[Any]] = {k: json_values for k in keys}
    optional.update(special)
    known = st.fixed_dictionaries({}, optional=optional)
    extra = st.dictionaries(st.sampled_from(EXTRA_KEYS), json_values, max_size=2)
    return st.tuples(extra, known).map(lambda parts: {**parts[0], **parts[1]})


def list_of(item: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | st.lists(item, max_size=3)


metadata = st.none() | fields(METADATA_KEYS)
pod_spec = st.none() | fields(POD_SPEC_KEYS, containers=list_of(fields(POD_CONTAINER_KEYS)))
pod_status = st.none() | fields(
    POD_STATUS_KEYS, containerStatuses=list_of(fields(POD_CONTAINER_STATUS_KEYS))
)
type_fields = {"apiVersion": json_values, "kind": json_values, "metadata": metadata}
pods = st.fixed_dictionaries({}, optional={**type_fields, "spec": pod_spec, "status": pod_status})
# A controller's spec and status are kept whole: a list there does not fit the shape.
anything = st.none() | st.lists(json_values, max_size=2) | st.dictionaries(st.text(), json_values)
controllers = st.fixed_dictionaries(
    {}, optional={**type_fields, "spec": anything, "status": anything}
)
nodes = st.fixed_dictionaries(
    {}, optional={**type_fields, "spec": anything, "status": st.none() | fields(("images",))}
)
OBJECTS = {"Pod": pods, "ReplicaSet": controllers, "Deployment": controllers, "Node": nodes}


def page(items: list[Any], continue_token: str = "") -> bytes:
    meta = {"resourceVersion": "42", **({"continue": continue_token} if continue_token else {})}
    return orjson.dumps({"kind": "List", "apiVersion": "v1", "metadata": meta, "items": items})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_decoded_page_is_what_slim_makes_of_each_object(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(sorted(KINDS)))
    items = data.draw(st.lists(OBJECTS[kind], max_size=4))
    token = data.draw(st.sampled_from(["", "next-page"]))
    decoded, meta = decode_list(page(items, token), KINDS[kind], kind)
    assert decoded == [slim(item, KINDS[kind], kind) for item in items]
    assert meta.get("continue", "") == token and meta["resourceVersion"] == "42"


def api_server_pod(name: str) -> dict[str, Any]:
    """A pod as a list item from kube-apiserver: no apiVersion/kind, with managedFields."""
    return {
        "metadata": {
            "name": name,
            "generateName": "llm-7d9c-",
            "namespace": "team-a",
            "uid": "0b7c5a52-3d4f-4e0e-9a51-6f2d1c9e8a01",
            "resourceVersion": "918273",
            "creationTimestamp": "2026-11-30T08:00:00Z",
            "labels": {"app": "llm", "pod-template-hash": "7d9c"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "llm-7d9c", "uid": "x"}
            ],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}],
        },
        "spec": {
            "volumes": [{"name": "kube-api-access", "projected": {"sources": []}}],
            "containers": [
                {
                    "name": "server",
                    "image": "vllm/vllm-openai:v0.6.3",
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                    "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf"}}}],
                }
            ],
            "nodeName": "gpu-node-7",
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None}],
            "hostIP": "10.0.0.7",
            "podIP": "10.244.3.9",
            "startTime": "2026-11-30T08:00:01Z",
            "containerStatuses": [
                {"name": "server", "ready": True, "restartCount": 0, "imageID": "sha256:ab"}
            ],
        },
    }


def test_an_api_servers_pod_list_fits_the_shape_and_is_slimmed() -> None:
    """A real page is decoded into the shape (the fast path, not the fallback), and comes out
    with the list items' missing type filled in and what the model does not read left out."""
    data = page([api_server_pod("llm-7d9c-a"), api_server_pod("llm-7d9c-b")], "token")
    LIST_DECODERS["Pod"].decode(data)  # raises if the shape did not fit
    pods, meta = decode_list(data, "v1", "Pod")
    assert meta == {"resourceVersion": "42", "continue": "token"}
    first = pods[0]
    assert (first["apiVersion"], first["kind"]) == ("v1", "Pod")
    assert set(first["metadata"]) == {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "labels",
        "ownerReferences",
    }
    assert first["spec"] == {
        "containers": [
            {
                "name": "server",
                "image": "vllm/vllm-openai:v0.6.3",
                "resources": {"limits": {"nvidia.com/gpu": "1"}},
            }
        ],
        "nodeName": "gpu-node-7",
    }
    assert first["status"]["containerStatuses"] == [
        {"name": "server", "ready": True, "restartCount": 0}
    ]
    assert "hostIP" not in first["status"]


def test_a_page_with_an_object_off_its_shape_is_slimmed_whole() -> None:
    odd = api_server_pod("odd")
    odd["spec"] = None  # not what an API server sends, but nothing must be lost for it
    data = page([api_server_pod("plain"), odd])
    pods, _ = decode_list(data, "v1", "Pod")
    assert [p["metadata"]["name"] for p in pods] == ["plain", "odd"]
    assert pods[1]["spec"] == {"containers": []} and pods[1]["status"]["phase"] == "Running"
    assert pods[0] == slim(api_server_pod("plain"), "v1", "Pod")


def test_only_the_api_fields_of_a_pod_are_kept_from_a_watch_event_too() -> None:
    pod = {**api_server_pod("p"), "x-unknown": {"big": "blob"}}
    assert set(slim(pod, "v1", "Pod")) == {"apiVersion", "kind", "metadata", "spec", "status"}
    event = {"metadata": {"name": "e"}, "reason": "BackOff", "count": 3}
    assert slim(event, "v1", "Event")["count"] == 3
