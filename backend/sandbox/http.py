"""The sandbox's Kubernetes REST API: a Starlette app over the ``Store``.

One catch-all route parses the request path the way the API server's router does
(``/api/v1[/namespaces/<ns>]/<plural>[/<name>[/<subresource>]]`` and the same under
``/apis/<group>/<version>``), then a verb handler reads or writes the store. Bodies are built once
with orjson straight from the stored dicts (no copies), which keeps a 20,000-pod list cheap.
Watches are chunked newline-delimited JSON streams fed by the store's per-type queues.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from backend.k8s.names import random_suffix
from backend.sandbox import discovery
from backend.sandbox.admission import admit_create
from backend.sandbox.auth import ANONYMOUS_PATHS, Authenticator, impersonate, unauthorized
from backend.sandbox.decoding import decode_body, decode_patched, field_validation, warning_header
from backend.sandbox.defaults import apply_defaults
from backend.sandbox.patch import apply_patch, drop_nulls, patch_media_type
from backend.sandbox.rbac import AccessLog, Authorizer, User, request_attributes
from backend.sandbox.reviews import review
from backend.sandbox.scale import SCALABLE, apply_scale, to_scale
from backend.sandbox.selectors import (
    Predicate,
    combine,
    parse_field_selector,
    parse_label_selector,
)
from backend.sandbox.store import (
    NAMESPACE,
    POD,
    RESOURCE_TYPES,
    REVIEWS,
    ApiError,
    ResourceType,
    Store,
    find_type,
)
from backend.sandbox.tables import table, wants_table
from backend.sandbox.validation import validate, validate_name, validate_update
from backend.sandbox.watch import WatchStream

JsonObject = dict[str, Any]
log = logging.getLogger(__name__)

JSON = "application/json"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
BUILTIN_GROUPS = frozenset({"", "apps", "batch"})
DEFAULT_WATCH_TIMEOUT = 1800.0
# Kinds whose status a client cannot set on create (the registry resets it, as here).
_STATUS_ON_CREATE: dict[str, JsonObject | None] = {
    "Pod": {"phase": "Pending"},
    "Namespace": {"phase": "Active"},
    "Node": None,  # kept: nodes report their own status
    "Event": None,
}
_CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this response "
    "to retrieve the remainder of the results. Continuing with the provided token results in an "
    "inconsistent list - objects that were created, modified, or deleted between the time the "
    "first chunk was returned and now may show up in the list."
)


def not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def error_response(err: ApiError) -> Response:
    return json_response(err.status(), err.code)


def written_response(body: Any, warnings: list[str], status: int = 200) -> Response:
    """The answer to a write, with a ``Warning`` header for each field the decoder dropped."""
    response = json_response(body, status)
    for text in warnings:
        response.headers.append("Warning", warning_header(text))
    return response


@dataclass
class Target:
    """What a request path names."""

    rt: ResourceType
    namespace: str | None  # None: all namespaces, or a cluster-scoped kind
    name: str | None
    sub: str | None  # "status" | "proxy" | None
    rest: str = ""  # the path after ``proxy/``


def parse_target(path: str) -> Target:
    """Resolve ``/api/v1/...`` or ``/apis/<g>/<v>/...`` to a resource; 404 when none."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise not_found_path()
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if not rest:
        raise not_found_path()
    rt = find_type(group, version, rest[0])
    if rt is None or (namespace is not None and not rt.namespaced):
        raise not_found_path()
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if rt.namespaced and name is not None and namespace is None:
        raise not_found_path()
    if sub not in (None, "status", "proxy", "scale"):
        raise not_found_path()
    if (sub == "proxy" and rt is not POD) or (sub == "scale" and rt not in SCALABLE):
        raise not_found_path()
    if sub in ("status", "scale") and len(rest) > 3:
        raise not_found_path()
    return Target(rt, namespace, name, sub, "/".join(rest[3:]))


def _flag(params: Any, key: str) -> bool:
    return str(params.get(key, "")).lower() in ("true", "1")


def _int_param(params: Any, key: str) -> int | None:
    raw = params.get(key)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError.bad_request(f"invalid value for {key}: {raw!r}") from None


def _encode_continue(resource_version: int, key: tuple[str, str]) -> str:
    raw = orjson.dumps({"rv": resource_version, "start": list(key)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        ns, name = data["start"]
        return int(data["rv"]), (str(ns), str(name))
    except (binascii.Error, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise ApiError.bad_request(f"continue key is not valid: {token!r}") from None


class KubeApi:
    """The ASGI application serving one ``Store`` as a Kubernetes API server."""

    def __init__(
        self,
        store: Store,
        *,
        bookmark_seconds: float = 60.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.bookmark_seconds = bookmark_seconds
        self.now = now  # for the ages kubectl's tables show
        self.authenticator = Authenticator(store)
        self.authorizer = Authorizer(store)
        self.access_log = AccessLog()
        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        self.app = Starlette(routes=[Route("/{path:path}", self.dispatch, methods=methods)])

    # -- routing -------------------------------------------------------------------------------
    async def dispatch(self, request: Request) -> Response:
        path = request.url.path
        try:
            user = self._authenticate(request)
            if user is None:  # anonymous: health checks only
                return Response(b"ok", media_type="text/plain")
            self._authorize(request, user)
            fixed = self._fixed_path(path)
            if fixed is not None:
                if request.method != "GET":
                    raise self._method_not_allowed(request.method)
                return fixed
            target = parse_target(path)
            self._check_media_type(request, target)
            if target.rt in REVIEWS:
                return await self._review(request, target, user)
            return await self._handle(request, target)
        except ApiError as err:
            return error_response(err)
        except Exception:  # a bug must still answer with a Status, as the API server does
            log.exception("sandbox API error on %s %s", request.method, path)
            return error_response(ApiError(500, "InternalError", "an internal error occurred"))

    # -- authentication and authorization -----------------------------------------------------
    def _authenticate(self, request: Request) -> User | None:
        """The user a request acts as; ``None`` for an anonymous health check; 401 otherwise."""
        authorization = request.headers.get("authorization")
        if authorization is None and request.url.path.rstrip("/") in ANONYMOUS_PATHS:
            return None
        user = self.authenticator.authenticate(authorization)
        if user is None:
            raise unauthorized()
        groups = request.headers.getlist("impersonate-group")
        return impersonate(user, request.headers, groups, self.authorizer)

    def _authorize(self, request: Request, user: User) -> None:
        """403 unless RBAC allows the request; allowed ones go to the access log."""
        attrs = request_attributes(request.method, request.url.path, request.query_params)
        self.authorizer.check(user, attrs)
        self.access_log.record(user, attrs)

    @staticmethod
    def _check_media_type(request: Request, t: Target) -> None:
        """415 for a body that is neither JSON nor a patch type the resource takes, before it is
        read (a form or ``text/plain`` POST from a web page never reaches the store)."""
        if request.method not in BODY_METHODS:
            return
        content_type = request.headers.get("content-type", "")
        if request.method == "PATCH":
            patch_media_type(content_type, strategic=t.rt.group in BUILTIN_GROUPS)
            return
        media = content_type.split(";")[0].strip().lower()
        if media not in ("", JSON):  # none means JSON, as the API server's negotiation has it
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                f"include: {JSON}",
            )

    async def _review(self, request: Request, t: Target, user: User) -> Response:
        """POST of a SelfSubjectAccessReview or SubjectAccessReview: the answer, stored nowhere."""
        if request.method != "POST" or t.name is not None:
            raise self._method_not_allowed(request.method)
        return json_response(review(t.rt, await self._body(request), user, self.authorizer), 201)

    def _fixed_path(self, path: str) -> Response | None:
        path = path.rstrip("/") or "/"
        if path in ("/healthz", "/readyz", "/livez"):
            return Response(b"ok", media_type="text/plain")
        if path == "/version":
            return json_response(discovery.version())
        if path == "/api":
            return json_response(discovery.core_versions())
        if path == "/apis":
            return json_response(discovery.group_list())
        parts = path.strip("/").split("/")
        body: JsonObject | None = None
        if path == "/openapi/v3":
            body = discovery.openapi_v3_index()
        elif parts[:2] == ["openapi", "v3"]:
            body = discovery.openapi_v3_document("/".join(parts[2:]))
        elif parts == ["api", "v1"]:
            body = discovery.resource_list("", "v1")
        elif len(parts) == 2 and parts[0] == "apis":
            body = discovery.group(parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            body = discovery.resource_list(parts[1], parts[2])
        else:
            return None
        if body is None:
            raise not_found_path()
        return json_response(body)

    @staticmethod
    def _method_not_allowed(method: str) -> ApiError:
        return ApiError(
            405, "MethodNotAllowed", f"the server does not allow this method ({method})"
        )

    async def _handle(self, request: Request, t: Target) -> Response:
        method = request.method
        if t.sub == "proxy":
            if method != "GET":
                raise self._method_not_allowed(method)
            return self._proxy(t)
        if t.sub == "scale":
            return await self._scale(request, t)
        if t.name is None:
            if method == "GET":
                if _flag(request.query_params, "watch"):
                    return self._watch(request, t)
                return self._list(request, t)
            if method == "POST":
                return self._create(t, await self._body(request), request)
            if method == "DELETE":
                return self._delete_collection(request, t)
        else:
            if method == "GET":
                obj = self.store.get(t.rt, t.namespace or "", t.name)
                if wants_table(request.headers.get("accept", "")):
                    meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
                    return json_response(table(t.rt.kind, [obj], meta, self.now()))
                return json_response(obj)
            if method == "PUT":
                return self._replace(t, await self._body(request), request)
            if method == "PATCH":
                return self._patch(request, t, await self._body(request, allow_list=True))
            if method == "DELETE" and t.sub is None:
                return self._delete(request, t, await self._optional_body(request))
        raise self._method_not_allowed(method)

    @staticmethod
    async def _body(request: Request, allow_list: bool = False) -> Any:
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError.bad_request(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict) and not (allow_list and isinstance(body, list)):
            raise ApiError.bad_request("the request body must be a JSON object")
        return body

    async def _optional_body(self, request: Request) -> JsonObject:
        raw = await request.body()
        if not raw.strip():
            return {}
        return await self._body(request)

    # -- reads ---------------------------------------------------------------------------------
    def _predicate(self, request: Request) -> Predicate | None:
        params = request.query_params
        return combine(
            parse_label_selector(params.get("labelSelector")),
            parse_field_selector(params.get("fieldSelector")),
        )

    def _list(self, request: Request, t: Target) -> Response:
        params = request.query_params
        pred = self._predicate(request)
        limit = _int_param(params, "limit") or 0
        token = params.get("continue")
        list_rv = self.store.resource_version
        after = None
        if token:
            list_rv, after = _decode_continue(token)
            try:
                self.store.check_resource_version(t.rt, list_rv)
            except ApiError:
                raise ApiError(410, "Expired", _CONTINUE_EXPIRED) from None
        items: list[JsonObject] = []
        objects = self.store.scan(t.rt, t.namespace, after)
        for obj in objects:
            if pred is None or pred(obj):
                items.append(obj)
                if limit and len(items) >= limit:
                    break
        meta: JsonObject = {"resourceVersion": str(list_rv)}
        if limit and len(items) >= limit:
            last = items[-1]["metadata"]
            key = (last.get("namespace", "") if t.rt.namespaced else "", last["name"])
            if pred is None:
                remaining = self.store.count_after(t.rt, t.namespace, key)
                more = remaining > 0
                if more:
                    meta["remainingItemCount"] = remaining
            else:
                more = any(pred(o) for o in objects)
            if more:
                meta["continue"] = _encode_continue(list_rv, key)
        if wants_table(request.headers.get("accept", "")):
            return json_response(table(t.rt.kind, items, meta, self.now()))
        body = {
            "kind": f"{t.rt.kind}List",
            "apiVersion": t.rt.api_version,
            "metadata": meta,
            "items": items,
        }
        return json_response(body)

    def _proxy(self, t: Target) -> Response:
        assert t.name is not None
        name, port = self._split_proxy_name(t.name)
        pod = self.store.get(POD, t.namespace or "", name)
        if not port:
            port = self._first_port(pod)
        handler = self.store.proxy_handler
        phase = (pod.get("status") or {}).get("phase")
        if handler is None or phase != "Running":
            why = "no endpoint is listening" if handler is None else f"pod is {phase or 'Pending'}"
            raise ApiError(
                503,
                "ServiceUnavailable",
                f'error trying to reach service: pod "{name}" port {port}: {why}',
            )
        status, content_type, body = handler(pod, port, t.rest)
        return Response(body, status_code=status, media_type=content_type)

    @staticmethod
    def _split_proxy_name(raw: str) -> tuple[str, str]:
        parts = raw.split(":")
        if len(parts) == 3:  # scheme:name:port
            return parts[1], parts[2]
        if len(parts) == 2:
            return parts[0], parts[1]
        return raw, ""

    @staticmethod
    def _first_port(pod: JsonObject) -> str:
        for container in (pod.get("spec") or {}).get("containers") or []:
            for port in container.get("ports") or []:
                if port.get("containerPort"):
                    return str(port["containerPort"])
        return "80"

    # -- writes --------------------------------------------------------------------------------
    def _check_identity(self, t: Target, obj: JsonObject, for_create: bool) -> JsonObject:
        """Reconcile kind/apiVersion/name/namespace of a body with the request path."""
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != t.rt.kind:
            raise ApiError.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({t.rt.kind})"
            )
        if api_version and api_version != t.rt.api_version:
            raise ApiError.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({t.rt.api_version})"
            )
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise ApiError.bad_request("metadata must be an object")
        if t.rt.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and body_ns != t.namespace:
                raise ApiError.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            if t.namespace is None:
                raise not_found_path()
            meta["namespace"] = t.namespace
        else:
            meta.pop("namespace", None)
        if not for_create:
            body_name = meta.get("name")
            if body_name and body_name != t.name:
                raise ApiError.bad_request(
                    f"the name of the object ({body_name}) does not match the name on the URL "
                    f"({t.name})"
                )
            meta["name"] = t.name
        return meta

    def _create(self, t: Target, obj: JsonObject, request: Request) -> Response:
        drop_nulls(obj)
        warnings = decode_body(t.rt, obj, field_validation(request.query_params, "CreateOptions"))
        meta = self._check_identity(t, obj, for_create=True)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(t, meta["generateName"])
        name = meta.get("name") or ""
        if not name:
            raise ApiError.invalid(
                t.rt, "", "metadata.name", "Required value: name or generateName is required"
            )
        validate_name(t.rt, name)
        if t.rt.namespaced and self.store.find(NAMESPACE, "", t.namespace or "") is None:
            raise ApiError.not_found(NAMESPACE, t.namespace or "")
        apply_defaults(t.rt, obj)
        validate(t.rt, obj)
        meta.pop("resourceVersion", None)
        meta.pop("uid", None)
        meta["creationTimestamp"] = self.store.timestamp()  # the server's, never the client's
        if t.rt.kind in _STATUS_ON_CREATE:
            initial = _STATUS_ON_CREATE[t.rt.kind]
            if initial is not None:
                obj["status"] = dict(initial)
        else:
            obj.pop("status", None)
        dry_run = self._dry_run(request)
        if not dry_run:
            admit_create(self.store, t.rt, obj)
        created = self.store.create(t.rt, obj, dry_run=dry_run)
        return written_response(created, warnings, 201)

    def _generate_name(self, t: Target, prefix: str) -> str:
        """``generateName`` plus five random characters, retried on a clash as the server does."""
        for _ in range(10):
            name = prefix + random_suffix()
            if self.store.find(t.rt, t.namespace or "", name) is None:
                return name
        raise ApiError(500, "AlreadyExists", "could not generate a unique name")

    @staticmethod
    def _dry_run(request: Request) -> bool:
        return bool(request.query_params.getlist("dryRun"))

    def _replace(self, t: Target, obj: JsonObject, request: Request) -> Response:
        drop_nulls(obj)
        warnings = decode_body(t.rt, obj, field_validation(request.query_params, "UpdateOptions"))
        self._check_identity(t, obj, for_create=False)
        apply_defaults(t.rt, obj)
        if t.sub != "status":
            old = self.store.get(t.rt, t.namespace or "", t.name or "")
            validate_update(t.rt, old, obj)
        subresource = "status" if t.sub == "status" else "main"
        updated = self.store.update(
            t.rt, obj, subresource=subresource, dry_run=self._dry_run(request)
        )
        return written_response(updated, warnings)

    def _patch(self, request: Request, t: Target, body: Any) -> Response:
        assert t.name is not None
        old = self.store.get(t.rt, t.namespace or "", t.name)
        content_type = request.headers.get("content-type", "")
        patched = apply_patch(content_type, old, body, strategic=t.rt.group in BUILTIN_GROUPS)
        if not isinstance(patched, dict):
            raise ApiError(422, "Invalid", "the patched object is not a JSON object")
        drop_nulls(patched)
        warnings = decode_patched(
            t.rt, patched, field_validation(request.query_params, "PatchOptions")
        )
        meta = patched.get("metadata")
        if not isinstance(meta, dict):
            meta = patched["metadata"] = {}
        meta["name"] = t.name
        if t.rt.namespaced:
            meta["namespace"] = t.namespace
        apply_defaults(t.rt, patched)
        if t.sub != "status":
            validate_update(t.rt, old, patched)
        subresource = "status" if t.sub == "status" else "main"
        updated = self.store.update(
            t.rt, patched, subresource=subresource, dry_run=self._dry_run(request)
        )
        return written_response(updated, warnings)

    async def _scale(self, request: Request, t: Target) -> Response:
        """GET/PUT/PATCH ``<deployment or replicaset>/scale``."""
        assert t.name is not None
        current = self.store.get(t.rt, t.namespace or "", t.name)
        if request.method == "GET":
            return json_response(to_scale(current))
        if request.method == "PUT":
            scale = await self._body(request)
        elif request.method == "PATCH":
            body = await self._body(request, allow_list=True)
            content_type = request.headers.get("content-type", "")
            scale = apply_patch(content_type, to_scale(current), body)
        else:
            raise self._method_not_allowed(request.method)
        updated = apply_scale(t.rt, current, scale)
        stored = self.store.update(
            t.rt, updated, subresource="main", dry_run=self._dry_run(request)
        )
        return json_response(to_scale(stored))

    def _delete(self, request: Request, t: Target, options: JsonObject) -> Response:
        assert t.name is not None
        ns = t.namespace or ""
        current = self.store.get(t.rt, ns, t.name)
        pre = options.get("preconditions") or {}
        cur_meta = current["metadata"]
        for field, label in (("resourceVersion", "ResourceVersion"), ("uid", "UID")):
            want = pre.get(field)
            if want and str(want) != str(cur_meta.get(field)):
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: {label} in precondition: {want}, {label} in object "
                    f"meta: {cur_meta.get(field)}",
                    rt=t.rt,
                    name=t.name,
                )
        dry_run = self._dry_run(request) or bool(options.get("dryRun"))
        if t.rt is NAMESPACE and not dry_run:
            self._delete_namespace_contents(t.name)
        return json_response(self.store.delete(t.rt, ns, t.name, dry_run=dry_run))

    def _delete_namespace_contents(self, namespace: str) -> None:
        """What the namespace controller does before a namespace goes away."""
        for rt in RESOURCE_TYPES:
            if not rt.namespaced:
                continue
            for obj in list(self.store.scan(rt, namespace)):
                self.store.delete(rt, namespace, obj["metadata"]["name"])

    def _delete_collection(self, request: Request, t: Target) -> Response:
        pred = self._predicate(request)
        victims = [o for o in self.store.scan(t.rt, t.namespace) if pred is None or pred(o)]
        dry_run = self._dry_run(request)
        for obj in victims:
            meta = obj["metadata"]
            self.store.delete(t.rt, meta.get("namespace", ""), meta["name"], dry_run=dry_run)
        return json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        )

    # -- watch ---------------------------------------------------------------------------------
    def _watch(self, request: Request, t: Target) -> Response:
        params = request.query_params
        pred = self._predicate(request)
        raw_rv = params.get("resourceVersion") or ""
        from_rv: int | None = None
        if raw_rv not in ("", "0"):
            from_rv = _int_param(params, "resourceVersion")
        timeout = _int_param(params, "timeoutSeconds")
        stream = WatchStream(
            self.store,
            t.rt,
            t.namespace,
            pred,
            from_rv,
            timeout=float(timeout) if timeout and timeout > 0 else DEFAULT_WATCH_TIMEOUT,
            bookmark_seconds=self.bookmark_seconds
            if _flag(params, "allowWatchBookmarks")
            else None,
            send_initial_events=_flag(params, "sendInitialEvents"),
            transform=self._table_row_maker(t.rt)
            if wants_table(request.headers.get("accept", ""))
            else None,
        )
        return StreamingResponse(stream, media_type=JSON)

    def _table_row_maker(self, rt: ResourceType) -> Callable[[JsonObject], JsonObject]:
        """Watch events for kubectl: each object becomes a one-row ``Table``."""

        def transform(obj: JsonObject) -> JsonObject:
            meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
            return table(rt.kind, [obj], meta, self.now())

        return transform


def create_app(store: Store, **settings: Any) -> Starlette:
    """The Starlette app serving ``store`` (settings: ``bookmark_seconds``)."""
    return KubeApi(store, **settings).app
