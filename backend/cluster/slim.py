"""Cut cluster objects down to what the fleet model reads, so that 20,000 pods stay small.

Every object keeps ``apiVersion``, ``kind``, a filtered ``metadata`` (``managedFields``, often
most of an object, is dropped), ``spec`` and ``status``. Pods keep only the scheduling and
GPU-relevant parts of spec and status; Nodes drop ``status.images`` (often the largest part of a
node). Kinds other than Pods, ReplicaSets and Deployments keep their other top-level fields too
(for Events ``involvedObject``/``reason``/``message``/...).

The shapes of Pods, ReplicaSets and Deployments are written once, as the TypedDicts below:
``slim`` cuts a parsed object to them (a watch event's), and ``decode_list`` decodes their list
pages, most of a cluster's bytes, straight into them. msgspec skips what a type leaves out
without making Python objects of it: the large sandbox's 22,000 pods decode in about a third of
the CPU that parsing every field with orjson and then cutting took.
"""

from __future__ import annotations

from typing import Any, Generic, TypedDict, TypeVar

import msgspec
import orjson

JsonObject = dict[str, Any]
T = TypeVar("T")


class Metadata(TypedDict, total=False):
    """The metadata the model reads; ``managedFields``, often most of an object, is not."""

    name: Any
    namespace: Any
    uid: Any
    labels: Any
    annotations: Any
    ownerReferences: Any
    creationTimestamp: Any
    deletionTimestamp: Any
    resourceVersion: Any
    generation: Any


class PodContainer(TypedDict, total=False):
    name: Any
    image: Any
    resources: Any


class PodContainerStatus(TypedDict, total=False):
    name: Any
    ready: Any
    restartCount: Any


class PodSpec(TypedDict, total=False):
    """Where a pod runs or waits to, and what its containers ask for."""

    nodeName: Any
    nodeSelector: Any
    schedulingGates: Any
    containers: list[PodContainer]


class PodStatus(TypedDict, total=False):
    phase: Any
    conditions: Any
    podIP: Any
    startTime: Any
    reason: Any
    message: Any
    containerStatuses: list[PodContainerStatus]


class Pod(TypedDict, total=False):
    apiVersion: Any
    kind: Any
    metadata: Metadata
    spec: PodSpec
    status: PodStatus


class Controller(TypedDict, total=False):
    """A Deployment or ReplicaSet: its whole spec and status (a revision's pod template)."""

    apiVersion: Any
    kind: Any
    metadata: Metadata
    spec: dict[str, Any]
    status: dict[str, Any]


class ObjectList(TypedDict, Generic[T], total=False):
    """A list page: its objects, and ``continue``/``resourceVersion`` in its metadata."""

    metadata: dict[str, Any]
    items: list[T]


def _list_decoder(shape: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(ObjectList[shape])


# The kinds whose objects are cut to their shape (the API's top-level fields, for these kinds),
# and whose list pages are decoded into it directly.
SHAPES: dict[str, type] = {"Pod": Pod, "ReplicaSet": Controller, "Deployment": Controller}
LIST_DECODERS = {kind: _list_decoder(shape) for kind, shape in SHAPES.items()}

METADATA_KEYS = tuple(Metadata.__annotations__)
POD_SPEC_KEYS = tuple(k for k in PodSpec.__annotations__ if k != "containers")
POD_CONTAINER_KEYS = tuple(PodContainer.__annotations__)
POD_STATUS_KEYS = tuple(k for k in PodStatus.__annotations__ if k != "containerStatuses")
POD_CONTAINER_STATUS_KEYS = tuple(PodContainerStatus.__annotations__)


def _pick(source: JsonObject, keys: tuple[str, ...]) -> JsonObject:
    return {k: source[k] for k in keys if k in source}


def slim_metadata(metadata: JsonObject) -> JsonObject:
    return _pick(metadata, METADATA_KEYS)


def slim_pod_spec(spec: JsonObject) -> JsonObject:
    out = _pick(spec, POD_SPEC_KEYS)
    out["containers"] = [_pick(c, POD_CONTAINER_KEYS) for c in spec.get("containers") or ()]
    return out


def slim_pod_status(status: JsonObject) -> JsonObject:
    out = _pick(status, POD_STATUS_KEYS)
    statuses = status.get("containerStatuses")
    if statuses is not None:
        out["containerStatuses"] = [_pick(s, POD_CONTAINER_STATUS_KEYS) for s in statuses]
    return out


def slim_node_status(status: JsonObject) -> JsonObject:
    return {k: v for k, v in status.items() if k != "images"}


def slim(obj: JsonObject, api_version: str, kind: str) -> JsonObject:
    """A new, smaller dict; ``api_version``/``kind`` fill in what list items omit."""
    out: JsonObject = (
        {}
        if kind in SHAPES
        else {k: v for k, v in obj.items() if k not in ("metadata", "spec", "status")}
    )
    out["apiVersion"] = obj.get("apiVersion") or api_version
    out["kind"] = obj.get("kind") or kind
    out["metadata"] = slim_metadata(obj.get("metadata") or {})
    spec, status = obj.get("spec"), obj.get("status")
    if kind == "Pod":
        spec = slim_pod_spec(spec or {})
        status = slim_pod_status(status or {})
    elif kind == "Node" and status is not None:
        status = slim_node_status(status)
    if spec is not None:
        out["spec"] = spec
    if status is not None:
        out["status"] = status
    return out


def decode_list(data: bytes, api_version: str, kind: str) -> tuple[list[JsonObject], JsonObject]:
    """A list page's objects, slim, and its list metadata (``continue``, ``resourceVersion``).

    A page that does not decode into its kind's shape (a null spec, containers that are not a
    list: not what an API server sends) is parsed whole and each object slimmed, so any object
    ``slim`` takes is taken here, and comes out the same."""
    decoder = LIST_DECODERS.get(kind)
    if decoder is not None:
        try:
            page = decoder.decode(data)
        except msgspec.DecodeError:
            pass
        else:
            items: list[JsonObject] = page.get("items", [])
            for item in items:
                _fill_in(item, api_version, kind)
            return items, page.get("metadata", {})
    page = orjson.loads(data)
    items = [slim(item, api_version, kind) for item in page.get("items") or ()]
    return items, page.get("metadata") or {}


def _fill_in(obj: JsonObject, api_version: str, kind: str) -> None:
    """What ``slim`` adds to an object the decoder made: the type list items omit, and the
    parts of a pod that are there even when the API server left them out."""
    if not obj.get("apiVersion"):
        obj["apiVersion"] = api_version
    if not obj.get("kind"):
        obj["kind"] = kind
    obj.setdefault("metadata", {})
    if kind == "Pod":
        obj.setdefault("spec", {}).setdefault("containers", [])
        obj.setdefault("status", {})


def object_key(obj: JsonObject) -> tuple[str, str]:
    """The cache key: (namespace or "", name)."""
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")
