"""The change path's connection to the Kubernetes API: fresh reads for plans, and the patches.

This is the only module of the backend that sends a write to Kubernetes (an import contract and a
test keep it so). Every call is synchronous (the official client); the change path runs it in a
thread. Answers are raw JSON parsed with orjson; errors become ``KubeError`` with the API server's
own ``Status`` message, ``Conflict`` for 409.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
import urllib3
from kubernetes import client

JsonObject = dict[str, Any]
PATCH_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
}


@dataclass(frozen=True)
class ObjectRef:
    """Which object: enough to build its URL and to name it in the audit log."""

    group: str  # "" for the core API
    version: str
    plural: str
    kind: str
    namespace: str | None
    name: str

    def path(self) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespace:
            base += f"/namespaces/{quote(self.namespace, safe='')}"
        return f"{base}/{self.plural}/{quote(self.name, safe='')}"

    def collection_path(self) -> str:
        return self.path().rsplit("/", 1)[0]

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind.lower()}/{where}{self.name}"

    def as_dict(self) -> dict[str, str | None]:
        return {
            "group": self.group,
            "version": self.version,
            "plural": self.plural,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }


class KubeError(Exception):
    """The API server refused or failed a request; ``str()`` is its message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class Conflict(KubeError):
    """409: the object changed since it was read (or already exists)."""


class Unreachable(KubeError):
    """No answer (refused, reset, timed out): a write may or may not have happened."""


def _error(status: int, http_reason: str | None, data: bytes | None) -> KubeError:
    """The API server's ``Status`` answer as an exception."""
    try:
        body = orjson.loads(data or b"{}")
    except orjson.JSONDecodeError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("message") or http_reason or "request failed")
    reason = str(body.get("reason") or "")
    cls = Conflict if status == 409 else KubeError
    return cls(status, reason, message)


class ClusterClient:
    """GET, LIST and PATCH of any kind, as raw JSON, through the official client."""

    def __init__(self, api_client: client.ApiClient, timeout: tuple[float, float] = (5, 30)):
        self.api_client = api_client
        self.timeout = timeout

    def get(self, ref: ObjectRef) -> JsonObject:
        return self._request("GET", ref.path())

    def list(self, ref: ObjectRef, label_selector: str | None = None) -> list[JsonObject]:
        """Every object of ``ref``'s kind in ``ref``'s namespace (``ref.name`` is ignored)."""
        query = [("labelSelector", label_selector)] if label_selector else []
        return list(self._request("GET", ref.collection_path(), query=query).get("items") or [])

    def patch(self, ref: ObjectRef, body: Any, patch_type: str) -> JsonObject:
        """Send one patch; ``Conflict`` when its resourceVersion precondition fails."""
        return self._request("PATCH", ref.path(), body=body, content_type=PATCH_TYPES[patch_type])

    def put(self, ref: ObjectRef, body: JsonObject) -> JsonObject:
        return self._request("PUT", ref.path(), body=body, content_type="application/json")

    def create(self, ref: ObjectRef, body: JsonObject) -> JsonObject:
        return self._request(
            "POST", ref.collection_path(), body=body, content_type="application/json"
        )

    def _request(
        self,
        method: str,
        path: str,
        query: builtins.list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> JsonObject:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        method, url, headers, body, _ = self.api_client.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api_client.call_api(
                method, url, header_params=headers, body=body, _request_timeout=self.timeout
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Unreachable(0, "Unreachable", f"the API server did not answer ({exc})") from exc
        try:
            data = response.read()
        finally:
            response.response.release_conn()
        if response.status >= 400:
            raise _error(response.status, response.reason, data)
        return orjson.loads(data)
