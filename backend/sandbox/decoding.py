"""Decoding a request body into a built-in kind, as the API server's JSON serializer does.

A real server decodes every write into the kind's Go struct before anything else: a value of the
wrong JSON type fails (``json: cannot unmarshal string into Go struct field ...``), and a field the
struct does not declare is dropped, reported as a warning, or refused, as the request's
``fieldValidation`` says (``Ignore``, ``Warn`` (the default) or ``Strict``). The structs' shapes
come from the official client's generated models (``openapi_types`` and ``attribute_map``), so
every nested type (containers, probes, volumes, ...) is checked, not only the top of a spec.
Custom resources (Kueue, KServe) have no model there and are stored as sent.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson
from kubernetes import client as models

from backend.sandbox.store import ApiError, ResourceType

JsonObject = dict[str, Any]

IGNORE, WARN, STRICT = "Ignore", "Warn", "Strict"
_DIRECTIVES = ("", IGNORE, STRICT, WARN)  # sorted, as the Unsupported value message lists them
_BUILTIN_GROUPS = frozenset({"", "apps", "batch", "rbac.authorization.k8s.io"})
# Model names that do not follow ``V1<Kind>`` (the core Event, next to events.k8s.io's).
_MODEL_NAMES = {"Event": "CoreV1Event"}
# Integer fields that are int64 in the Go types; every other integer is int32.
_INT64 = frozenset(
    {
        "activeDeadlineSeconds",
        "deletionGracePeriodSeconds",
        "expirationSeconds",
        "fsGroup",
        "generation",
        "observedGeneration",
        "runAsGroup",
        "runAsUser",
        "supplementalGroups",
        "terminationGracePeriodSeconds",
    }
)
# Fields holding resource quantities, which decode from a JSON string or number.
_QUANTITIES = frozenset(
    {"allocatable", "capacity", "divisor", "hard", "limits", "overhead", "requests", "sizeLimit"}
)
_VERSION_PREFIX = re.compile(r"^[A-Za-z]*?V\d+(?:alpha\d+|beta\d+)?(?=[A-Z])")


class DecodeError(Exception):
    """A value of the wrong JSON type, with the message Go's JSON decoder gives for it."""


def field_validation(params: Any, options_kind: str) -> str:
    """The request's ``fieldValidation`` (``Warn`` when absent); 422 for an unknown one, as the
    request's options (``CreateOptions``, ``UpdateOptions`` or ``PatchOptions``) fail."""
    value = str(params.get("fieldValidation", ""))
    if value not in _DIRECTIVES:
        supported = ", ".join(f'"{d}"' for d in _DIRECTIVES)
        why = f'Unsupported value: "{value}": supported values: {supported}'
        raise ApiError(
            422,
            "Invalid",
            f'{options_kind}.meta.k8s.io "" is invalid: fieldValidation: {why}',
            causes=[
                {"reason": "FieldValueNotSupported", "message": why, "field": "fieldValidation"}
            ],
            details={"group": "meta.k8s.io", "kind": options_kind},
        )
    return value or WARN


def decode_body(rt: ResourceType, obj: JsonObject, directive: str) -> list[str]:
    """Decode a created or replaced object in place; return the warnings to send.

    Fails as the create and update handlers do: 400 ``BadRequest`` naming the kind.
    """
    try:
        unknown = _decode(rt, obj)
    except DecodeError as err:
        raise _cannot_handle(rt, str(err)) from None
    if unknown and directive == STRICT:
        raise _cannot_handle(rt, _strict_error(unknown))
    return _warnings(unknown) if directive == WARN else []


def decode_patched(rt: ResourceType, patched: JsonObject, directive: str) -> list[str]:
    """Decode the result of a patch in place; return the warnings to send.

    Fails as the patch handler does: 422 ``Invalid`` on the field ``patch``, whose value is the
    patched object.
    """
    as_patched = orjson.dumps(patched).decode()  # before the unknown fields are dropped
    try:
        unknown = _decode(rt, patched)
    except DecodeError as err:
        raise _invalid_patch(as_patched, str(err)) from None
    if unknown and directive == STRICT:
        raise _invalid_patch(as_patched, _strict_error(unknown))
    return _warnings(unknown) if directive == WARN else []


def warning_header(text: str) -> str:
    """A ``Warning`` header value as the API server writes it (code 299, no agent)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'


def _cannot_handle(rt: ResourceType, why: str) -> ApiError:
    return ApiError.bad_request(
        f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {why}'
    )


def _invalid_patch(patched: str, why: str) -> ApiError:
    why = f"Invalid value: {orjson.dumps(patched).decode()}: {why}"
    return ApiError(
        422,
        "Invalid",
        f' "" is invalid: patch: {why}',
        causes=[{"reason": "FieldValueInvalid", "message": why, "field": "patch"}],
    )


def _strict_error(unknown: list[str]) -> str:
    return "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown)


def _warnings(unknown: list[str]) -> list[str]:
    return [f'unknown field "{f}"' for f in unknown]


def _model(rt: ResourceType) -> Any:
    if rt.group not in _BUILTIN_GROUPS:
        return None
    return getattr(models, _MODEL_NAMES.get(rt.kind, f"V1{rt.kind}"), None)


def _decode(rt: ResourceType, obj: JsonObject) -> list[str]:
    """Drop the fields the kind does not declare, in place, and return their paths; raise
    ``DecodeError`` for the first value of the wrong type."""
    model = _model(rt)
    unknown: list[str] = []
    if model is not None:
        _Walk(unknown).struct(model, obj, "", "")
    return unknown


class _Walk:
    """One pass over a body against the generated models.

    Two paths are kept: the strict-decoding path with list indices (``spec.containers[1].foo``)
    and the Go decoder's path without them (``spec.containers.ports.containerPort``).
    """

    def __init__(self, unknown: list[str]) -> None:
        self.unknown = unknown

    def struct(self, model: Any, value: JsonObject, path: str, go_path: str) -> None:
        fields = _fields(model)
        struct_name = _VERSION_PREFIX.sub("", model.__name__)
        for key in list(value):
            where = f"{path}.{key}" if path else key
            if key not in fields:
                self.unknown.append(where)
                del value[key]
                continue
            field = _Field(struct_name, f"{go_path}.{key}" if go_path else key, key)
            self.value(fields[key], value[key], where, field)

    def value(self, type_name: str, value: Any, path: str, field: _Field) -> None:
        if value is None or type_name == "object":
            return
        if type_name.startswith("List["):
            inner = type_name[len("List[") : -1]
            if not isinstance(value, list):
                raise field.error(value, "[]" + _go_type(inner, field.key))
            for i, item in enumerate(value):
                self.value(inner, item, f"{path}[{i}]", field)
        elif type_name.startswith("Dict[str, "):
            inner = type_name[len("Dict[str, ") : -1]
            if not isinstance(value, dict):
                raise field.error(value, _go_type(type_name, field.key))
            for key, item in value.items():
                self.value(inner, item, f"{path}[{key}]", field)
        elif hasattr(models, type_name):
            if not isinstance(value, dict):
                raise field.error(value, _go_type(type_name, field.key))
            self.struct(getattr(models, type_name), value, path, field.go_path)
        elif not _scalar_fits(type_name, value, field.key):
            raise field.error(value, _go_type(type_name, field.key))


@functools.cache
def _fields(model: Any) -> dict[str, str]:
    """A model's fields by their JSON names, with their model types (``List[V1Container]``)."""
    types = model.openapi_types
    return {json_name: types[attr] for attr, json_name in model.attribute_map.items()}


class _Field:
    """Where a value sits, for the decoder's message: the struct holding it and its Go path."""

    def __init__(self, struct_name: str, go_path: str, key: str) -> None:
        self.struct_name = struct_name
        self.go_path = go_path
        self.key = key

    def error(self, value: Any, go_type: str) -> DecodeError:
        return DecodeError(
            f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
            f"{self.struct_name}.{self.go_path} of type {go_type}"
        )


def _scalar_fits(type_name: str, value: Any, key: str) -> bool:
    if key in _QUANTITIES and type_name == "str":
        return isinstance(value, str | int | float) and not isinstance(value, bool)
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name == "bool":
        return isinstance(value, bool)
    return isinstance(value, str)  # str, datetime and bytes (base64) are JSON strings


def _json_kind(value: Any) -> str:
    """How Go's decoder names the JSON value it could not store (``number 3.5`` for a number
    that is not an integer)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float):
        return f"number {value:g}"
    if isinstance(value, int):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _go_type(type_name: str, key: str) -> str:
    """The Go type a model type stands for, as the decoder's message names it."""
    if type_name.startswith("List["):
        return "[]" + _go_type(type_name[len("List[") : -1], key)
    if type_name.startswith("Dict[str, "):
        inner = type_name[len("Dict[str, ") : -1]
        if key in _QUANTITIES:
            return "map[v1.ResourceName]resource.Quantity"
        return f"map[string]{_go_type(inner, key)}"
    if type_name == "int":
        return "int64" if key in _INT64 else "int32"
    scalars = {"str": "string", "bool": "bool", "float": "float64", "datetime": "v1.Time"}
    if type_name in scalars:
        return "resource.Quantity" if key in _QUANTITIES else scalars[type_name]
    if type_name == "bytes":
        return "[]uint8"
    return "v1." + _VERSION_PREFIX.sub("", type_name)
