"""The sandbox's object store: what etcd plus the API server's registry are in a real cluster.

Every object lives here as a plain JSON-shaped dict. The store hands out the one global,
monotonically increasing ``resourceVersion`` (as etcd's revision does), keeps a bounded log of
recent changes per resource type so that a watch can resume from a version (or get 410 Gone when
that version has been compacted), and tells its listeners about every change.

Rules for callers (the HTTP layer and the controllers):
- Stored dicts are never mutated in place. ``get``/``list`` return the stored dicts themselves
  (copying 20,000 pods per list would be slow), so callers must copy (``copy.deepcopy``) before
  changing anything and then call ``update``/``create``.
- ``update`` with a ``metadata.resourceVersion`` that is not the current one raises
  ``ApiError.conflict`` (optimistic concurrency); ``update`` without one overwrites (as a PUT
  without resourceVersion does).
- Everything runs on one asyncio event loop; the store itself never awaits.
- ``scan`` walks objects in (namespace, name) order from a key, for paged lists; the sorted key
  list is cached and rebuilt only after a create or delete.
- A watch queue more than ``watch_backlog`` events behind is closed (it receives ``None``), so a
  stalled client cannot make the store grow without bound.
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from backend.k8s.names import random_suffix

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    """One kind the sandbox serves, as API discovery describes it."""

    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_kind(self) -> str:
        """The kind as the API server's messages qualify it, e.g. ``Deployment.apps``."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def resource(self) -> str:
        """The name used in messages, e.g. ``deployments.apps`` or ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _rt(group: str, version: str, kind: str, plural: str, namespaced: bool, *short: str):
    return ResourceType(group, version, kind, plural, namespaced, tuple(short))


def _review(kind: str, plural: str) -> ResourceType:
    """An access review: created (answered) only, never stored."""
    return ResourceType("authorization.k8s.io", "v1", kind, plural, False, verbs=("create",))


NAMESPACE = _rt("", "v1", "Namespace", "namespaces", False, "ns")
NODE = _rt("", "v1", "Node", "nodes", False, "no")
POD = _rt("", "v1", "Pod", "pods", True, "po")
EVENT = _rt("", "v1", "Event", "events", True, "ev")
CONFIG_MAP = _rt("", "v1", "ConfigMap", "configmaps", True, "cm")
RESOURCE_QUOTA = _rt("", "v1", "ResourceQuota", "resourcequotas", True, "quota")
DEPLOYMENT = _rt("apps", "v1", "Deployment", "deployments", True, "deploy")
REPLICA_SET = _rt("apps", "v1", "ReplicaSet", "replicasets", True, "rs")
JOB = _rt("batch", "v1", "Job", "jobs", True)
RESOURCE_FLAVOR = _rt("kueue.x-k8s.io", "v1beta2", "ResourceFlavor", "resourceflavors", False, "rf")
CLUSTER_QUEUE = _rt("kueue.x-k8s.io", "v1beta2", "ClusterQueue", "clusterqueues", False, "cq")
LOCAL_QUEUE = _rt("kueue.x-k8s.io", "v1beta2", "LocalQueue", "localqueues", True, "lq")
WORKLOAD = _rt("kueue.x-k8s.io", "v1beta2", "Workload", "workloads", True, "wl")
INFERENCE_SERVICE = _rt(
    "serving.kserve.io", "v1beta1", "InferenceService", "inferenceservices", True, "isvc"
)
SERVICE_ACCOUNT = _rt("", "v1", "ServiceAccount", "serviceaccounts", True, "sa")
RBAC_GROUP = "rbac.authorization.k8s.io"
ROLE = _rt(RBAC_GROUP, "v1", "Role", "roles", True)
CLUSTER_ROLE = _rt(RBAC_GROUP, "v1", "ClusterRole", "clusterroles", False)
ROLE_BINDING = _rt(RBAC_GROUP, "v1", "RoleBinding", "rolebindings", True)
CLUSTER_ROLE_BINDING = _rt(RBAC_GROUP, "v1", "ClusterRoleBinding", "clusterrolebindings", False)
SELF_SUBJECT_ACCESS_REVIEW = _review("SelfSubjectAccessReview", "selfsubjectaccessreviews")
SUBJECT_ACCESS_REVIEW = _review("SubjectAccessReview", "subjectaccessreviews")
SELF_SUBJECT_RULES_REVIEW = _review("SelfSubjectRulesReview", "selfsubjectrulesreviews")
REVIEWS = (SELF_SUBJECT_ACCESS_REVIEW, SUBJECT_ACCESS_REVIEW, SELF_SUBJECT_RULES_REVIEW)

RESOURCE_TYPES: tuple[ResourceType, ...] = (
    NAMESPACE,
    NODE,
    POD,
    EVENT,
    CONFIG_MAP,
    RESOURCE_QUOTA,
    DEPLOYMENT,
    REPLICA_SET,
    JOB,
    RESOURCE_FLAVOR,
    CLUSTER_QUEUE,
    LOCAL_QUEUE,
    WORKLOAD,
    INFERENCE_SERVICE,
    SERVICE_ACCOUNT,
    ROLE,
    CLUSTER_ROLE,
    ROLE_BINDING,
    CLUSTER_ROLE_BINDING,
    *REVIEWS,
)


def find_type(group: str, version: str, plural: str) -> ResourceType | None:
    """The resource type served at ``/apis/<group>/<version>/<plural>`` (group "" = core)."""
    for rt in RESOURCE_TYPES:
        if rt.group == group and rt.version == version and rt.plural == plural:
            return rt
    return None


class ApiError(Exception):
    """An error the API server answers with a ``Status`` object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        rt: ResourceType | None = None,
        name: str = "",
        causes: list[JsonObject] | None = None,
        details_kind: str | None = None,
        details: JsonObject | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.rt = rt
        self.name = name
        self.causes = causes or []
        # ``details.kind``: the resource ("pods") for most errors, the Kind ("Pod") for Invalid.
        self.details_kind = details_kind
        # Details for errors about a resource the sandbox may not serve (e.g. a 403).
        self.details = details or {}

    def status(self) -> JsonObject:
        """The ``Status`` body a real API server sends for this error."""
        details: JsonObject = {k: v for k, v in self.details.items() if v}
        if self.name:
            details["name"] = self.name
        if self.rt is not None:
            details["group"] = self.rt.group
            details["kind"] = self.details_kind or self.rt.plural
        if self.causes:
            details["causes"] = self.causes
        body: JsonObject = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            body["details"] = details
        return body

    @classmethod
    def not_found(cls, rt: ResourceType, name: str) -> ApiError:
        return cls(404, "NotFound", f'{rt.resource} "{name}" not found', rt=rt, name=name)

    @classmethod
    def already_exists(cls, rt: ResourceType, name: str) -> ApiError:
        return cls(409, "AlreadyExists", f'{rt.resource} "{name}" already exists', rt=rt, name=name)

    @classmethod
    def conflict(cls, rt: ResourceType, name: str) -> ApiError:
        return cls(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {rt.resource} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
            rt=rt,
            name=name,
        )

    @classmethod
    def expired(cls, asked: int | str, current: int) -> ApiError:
        return cls(410, "Expired", f"too old resource version: {asked} ({current})")

    @classmethod
    def invalid(cls, rt: ResourceType, name: str, field_path: str, why: str) -> ApiError:
        return cls(
            422,
            "Invalid",
            f'{rt.group_kind} "{name}" is invalid: {field_path}: {why}',
            rt=rt,
            name=name,
            causes=[{"reason": _cause_reason(why), "message": why, "field": field_path}],
            details_kind=rt.kind,
        )

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)


_CAUSE_REASONS = {
    "Required value": "FieldValueRequired",
    "Unsupported value": "FieldValueNotSupported",
    "Too long": "FieldValueTooLong",
    "Forbidden": "FieldValueForbidden",
    "Duplicate value": "FieldValueDuplicate",
}


def _cause_reason(why: str) -> str:
    """The cause's ``reason``, as the API server's field.Error types name it."""
    return next(
        (r for prefix, r in _CAUSE_REASONS.items() if why.startswith(prefix)), "FieldValueInvalid"
    )


@dataclass
class WatchEvent:
    resource_version: int
    type: str  # ADDED | MODIFIED | DELETED
    object: JsonObject


Listener = Callable[[ResourceType, WatchEvent], None]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Table:
    objects: dict[tuple[str, str], JsonObject] = field(default_factory=dict)
    log: deque[WatchEvent] = field(default_factory=deque)
    # The lowest resourceVersion a watch may resume from; older ones are "compacted".
    compacted_through: int = 0
    watchers: set[asyncio.Queue[WatchEvent | None]] = field(default_factory=set)
    # Keys in (namespace, name) order; rebuilt lazily after a create or delete only, so that a
    # paged list of 20,000 pods does not sort them again for every page.
    sorted_keys: list[tuple[str, str]] | None = None

    def keys_in_order(self) -> list[tuple[str, str]]:
        if self.sorted_keys is None:
            self.sorted_keys = sorted(self.objects)
        return self.sorted_keys


class Store:
    """All objects of the sandbox cluster, with resource versions and watch fan-out."""

    def __init__(
        self, history_per_type: int = 50_000, clock: Callable[[], str] = now_rfc3339
    ) -> None:
        self._rv = 1
        self._history = history_per_type
        self.watch_backlog = 100_000
        self._tables: dict[ResourceType, _Table] = {rt: _Table() for rt in RESOURCE_TYPES}
        self._listeners: list[Listener] = []
        self._clock = clock
        # Set by whoever serves ``pods/<name>:<port>/proxy/<path>`` for a pod (the DCGM exporters):
        # (pod object, port, path) -> (HTTP status, content type, body).
        self.proxy_handler: Callable[[JsonObject, str, str], tuple[int, str, bytes]] | None = None

    # -- reading -------------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, rt: ResourceType, namespace: str, name: str) -> JsonObject:
        obj = self._tables[rt].objects.get((namespace if rt.namespaced else "", name))
        if obj is None:
            raise ApiError.not_found(rt, name)
        return obj

    def find(self, rt: ResourceType, namespace: str, name: str) -> JsonObject | None:
        return self._tables[rt].objects.get((namespace if rt.namespaced else "", name))

    def list(self, rt: ResourceType, namespace: str | None = None) -> list[JsonObject]:
        """Objects of a type, sorted by (namespace, name) as the API server returns them."""
        return list(self.scan(rt, namespace))

    def scan(
        self, rt: ResourceType, namespace: str | None = None, after: tuple[str, str] | None = None
    ) -> Iterator[JsonObject]:
        """Objects in (namespace, name) order, optionally only those after key ``after``.

        Paged lists resume with ``after`` (the last key of the previous page) in O(log n).
        """
        table = self._tables[rt]
        keys = table.keys_in_order()
        ns = namespace if namespace is not None and rt.namespaced else None
        start = 0
        if ns is not None:
            start = bisect.bisect_left(keys, (ns, ""))
        if after is not None:
            start = max(start, bisect.bisect_right(keys, after))
        objects = table.objects
        for i in range(start, len(keys)):
            key = keys[i]
            if ns is not None and key[0] != ns:
                return
            obj = objects.get(key)
            if obj is not None:
                yield obj

    def timestamp(self) -> str:
        """Now, as the store stamps ``creationTimestamp`` (the sandbox clock, RFC 3339)."""
        return self._clock()

    def count(self, rt: ResourceType) -> int:
        return len(self._tables[rt].objects)

    def count_after(self, rt: ResourceType, namespace: str | None, after: tuple[str, str]) -> int:
        """How many objects (of a namespace, or all) sort after key ``after``, in O(log n)."""
        keys = self._tables[rt].keys_in_order()
        start = bisect.bisect_right(keys, after)
        if namespace is None or not rt.namespaced:
            return len(keys) - start
        end = bisect.bisect_left(keys, (namespace + "\x00", ""))
        return max(end - max(start, bisect.bisect_left(keys, (namespace, ""))), 0)

    # -- writing -------------------------------------------------------------------------------
    def create(self, rt: ResourceType, obj: JsonObject, *, dry_run: bool = False) -> JsonObject:
        """Store a new object, filling the fields the API server owns.

        ``dry_run``: check and fill it, but store nothing (``?dryRun=All``).
        """
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + random_suffix()
        name = meta.get("name")
        if not name:
            raise ApiError.invalid(
                rt, "", "metadata.name", "Required value: name or generateName is required"
            )
        ns = meta.get("namespace", "") if rt.namespaced else ""
        if rt.namespaced and not ns:
            raise ApiError.invalid(rt, name, "metadata.namespace", "Required value")
        if not rt.namespaced:
            meta.pop("namespace", None)
        table = self._tables[rt]
        if (ns, name) in table.objects:
            raise ApiError.already_exists(rt, name)
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        meta["uid"] = meta.get("uid") or str(uuid.uuid4())
        meta["creationTimestamp"] = meta.get("creationTimestamp") or self._clock()
        meta["generation"] = 1
        meta.pop("deletionTimestamp", None)
        return self._commit(rt, "ADDED", obj, dry_run=dry_run)

    def update(
        self,
        rt: ResourceType,
        obj: JsonObject,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> JsonObject:
        """Replace an object; a stale ``metadata.resourceVersion`` raises 409 Conflict.

        ``subresource``: ``None`` replaces the whole object (controllers writing spec and status);
        ``"main"`` is a client's PUT/PATCH of the object, which keeps the stored ``status`` as the
        API server does for kinds with a status subresource; ``"status"`` takes only ``status``.
        ``generation`` goes up when ``spec`` changes, as the API server does it.
        """
        meta = obj.setdefault("metadata", {})
        name = meta.get("name", "")
        ns = meta.get("namespace", "") if rt.namespaced else ""
        old = self._tables[rt].objects.get((ns, name))
        if old is None:
            raise ApiError.not_found(rt, name)
        asked = meta.get("resourceVersion")
        if asked not in (None, "") and str(asked) != old["metadata"]["resourceVersion"]:
            raise ApiError.conflict(rt, name)
        old_meta = old["metadata"]
        if subresource == "status":
            obj = {**old, "metadata": {**old_meta}, "status": obj.get("status", {})}
            meta = obj["metadata"]
        elif subresource == "main":
            obj.pop("status", None)
            if "status" in old:
                obj["status"] = old["status"]
        for owned in ("uid", "creationTimestamp"):
            meta[owned] = old_meta[owned]
        if rt.namespaced:
            meta["namespace"] = ns
        generation = old_meta.get("generation", 1)
        if obj.get("spec") != old.get("spec"):
            generation += 1
        meta["generation"] = generation
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        return self._commit(rt, "MODIFIED", obj, dry_run=dry_run)

    def delete(
        self, rt: ResourceType, namespace: str, name: str, *, dry_run: bool = False
    ) -> JsonObject:
        key = (namespace if rt.namespaced else "", name)
        table = self._tables[rt]
        obj = table.objects.get(key)
        if obj is None:
            raise ApiError.not_found(rt, name)
        gone = {**obj, "metadata": {**obj["metadata"]}}
        return self._commit(rt, "DELETED", gone, dry_run=dry_run)

    # -- watching ------------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` synchronously after every change (controllers use this)."""
        self._listeners.append(listener)

    def events_since(self, rt: ResourceType, resource_version: int) -> builtins.list[WatchEvent]:
        """Changes of a type after ``resource_version``; 410 if that version was compacted."""
        table = self._tables[rt]
        if resource_version < table.compacted_through:
            raise ApiError.expired(resource_version, self._rv)
        return [e for e in table.log if e.resource_version > resource_version]

    def open_watch(self, rt: ResourceType) -> asyncio.Queue[WatchEvent | None]:
        """A queue receiving every later change of ``rt``; ``None`` means the store closed it."""
        queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        self._tables[rt].watchers.add(queue)
        return queue

    def close_watch(self, rt: ResourceType, queue: asyncio.Queue[WatchEvent | None]) -> None:
        self._tables[rt].watchers.discard(queue)

    def close_all_watches(self) -> None:
        """End every open watch (each queue receives ``None``), as a shutting-down server does."""
        for table in self._tables.values():
            for queue in tuple(table.watchers):
                queue.put_nowait(None)
            table.watchers.clear()

    def watcher_count(self, rt: ResourceType) -> int:
        return len(self._tables[rt].watchers)

    def check_resource_version(self, rt: ResourceType, resource_version: int) -> None:
        """410 Expired if changes of ``rt`` after ``resource_version`` are no longer known."""
        if resource_version < self._tables[rt].compacted_through:
            raise ApiError.expired(resource_version, self._rv)

    def compact(self) -> None:
        """Forget all change history, as etcd compaction does: older watches get 410."""
        for table in self._tables.values():
            table.log.clear()
            table.compacted_through = self._rv

    # -- internals -----------------------------------------------------------------------------
    def _commit(
        self, rt: ResourceType, event_type: str, obj: JsonObject, *, dry_run: bool = False
    ) -> JsonObject:
        if dry_run:  # the answer a real write would give, with nothing stored or announced
            if event_type == "ADDED":
                obj["metadata"].pop("resourceVersion", None)
            elif event_type == "MODIFIED":
                old = self.find(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
                if old is not None:
                    obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            return obj
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        table = self._tables[rt]
        meta = obj["metadata"]
        key = (meta.get("namespace", "") if rt.namespaced else "", meta["name"])
        if event_type == "DELETED":
            table.objects.pop(key, None)
            table.sorted_keys = None
        else:
            if key not in table.objects:
                table.sorted_keys = None
            table.objects[key] = obj
        event = WatchEvent(self._rv, event_type, obj)
        table.log.append(event)
        while len(table.log) > self._history:
            dropped = table.log.popleft()
            table.compacted_through = dropped.resource_version
        for queue in tuple(table.watchers):
            if queue.qsize() >= self.watch_backlog:
                # A watcher this far behind (a stalled client) is cut off rather than growing
                # without bound: it gets ``None`` after its backlog and its client watches again.
                table.watchers.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(event)
        for listener in self._listeners:
            listener(rt, event)
        return obj
