"""The checks the API server (and the Kueue/KServe webhooks) make before storing an object.

Only what operators can plausibly get wrong through the product is checked: names, replica
counts, a Deployment's selector against its template, canary percentages and GPU quotas. Each
failure is the 422 ``Invalid`` Status a real cluster answers, with the same field paths.
"""

from __future__ import annotations

import re
from typing import Any

from backend.k8s.selectors import match_label_selector
from backend.sandbox.store import (
    CLUSTER_QUEUE,
    DEPLOYMENT,
    INFERENCE_SERVICE,
    JOB,
    NAMESPACE,
    REPLICA_SET,
    ApiError,
    ResourceType,
)

JsonObject = dict[str, Any]

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*"
_LABEL_RE = re.compile(rf"^{_DNS1123_LABEL}$")
_SUBDOMAIN_RE = re.compile(rf"^{_DNS1123_SUBDOMAIN}$")


def _name_error(name: str, label: bool) -> str | None:
    if label:
        if len(name) > 63:
            return f'Invalid value: "{name}": must be no more than 63 characters'
        if not _LABEL_RE.match(name):
            return (
                f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower case '
                "alphanumeric characters or '-', and must start and end with an alphanumeric "
                "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
                f"'{_DNS1123_LABEL}')"
            )
        return None
    if len(name) > 253:
        return f'Invalid value: "{name}": must be no more than 253 characters'
    if not _SUBDOMAIN_RE.match(name):
        return (
            f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
            "character (e.g. 'example.com', regex used for validation is "
            f"'{_DNS1123_SUBDOMAIN}')"
        )
    return None


def validate_name(rt: ResourceType, name: str) -> None:
    """422 unless ``name`` is a DNS-1123 subdomain (a DNS-1123 label for namespaces)."""
    why = _name_error(name, label=rt is NAMESPACE)
    if why:
        raise ApiError.invalid(rt, name, "metadata.name", why)


def _quantity_is_negative(value: Any) -> bool:
    if isinstance(value, int | float):
        return value < 0
    return isinstance(value, str) and value.strip().startswith("-")


def _check_non_negative(rt: ResourceType, name: str, spec: JsonObject, fields: tuple[str, ...]):
    for field in fields:
        value = spec.get(field)
        if isinstance(value, int | float) and value < 0:
            raise ApiError.invalid(
                rt,
                name,
                f"spec.{field}",
                f"Invalid value: {value}: must be greater than or equal to 0",
            )


def _go_map(labels: dict[str, str]) -> str:
    inner = ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
    return "map[string]string{" + inner + "}"


def _check_selector(rt: ResourceType, name: str, spec: JsonObject) -> None:
    selector = spec.get("selector")
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        raise ApiError.invalid(rt, name, "spec.selector", "Required value")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not match_label_selector(selector, labels):
        raise ApiError.invalid(
            rt,
            name,
            "spec.template.metadata.labels",
            f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`",
        )


def _check_cluster_queue(name: str, spec: JsonObject) -> None:
    for g, group in enumerate(spec.get("resourceGroups") or []):
        for f, flavor in enumerate(group.get("flavors") or []):
            for r, res in enumerate(flavor.get("resources") or []):
                for field in ("nominalQuota", "borrowingLimit", "lendingLimit"):
                    value = res.get(field)
                    if _quantity_is_negative(value):
                        path = f"spec.resourceGroups[{g}].flavors[{f}].resources[{r}].{field}"
                        raise ApiError.invalid(
                            CLUSTER_QUEUE,
                            name,
                            path,
                            f'Invalid value: "{value}": {path} in body should be greater '
                            "than or equal to 0",
                        )


def _check_inference_service(name: str, spec: JsonObject) -> None:
    for component in ("predictor", "transformer", "explainer"):
        value = (spec.get(component) or {}).get("canaryTrafficPercent")
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
            raise ApiError.invalid(
                INFERENCE_SERVICE,
                name,
                f"spec.{component}.canaryTrafficPercent",
                f"Invalid value: {value}: must be an integer between 0 and 100",
            )


def validate(rt: ResourceType, obj: JsonObject) -> None:
    """Raise the 422 a real cluster would answer for ``obj``; return when it is acceptable."""
    name = obj.get("metadata", {}).get("name", "")
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        raise ApiError.invalid(rt, name, "spec", "Invalid value: must be an object")
    if rt in (DEPLOYMENT, REPLICA_SET):
        _check_non_negative(rt, name, spec, ("replicas", "minReadySeconds"))
        _check_selector(rt, name, spec)
    elif rt is JOB:
        _check_non_negative(rt, name, spec, ("parallelism", "completions", "backoffLimit"))
    elif rt is CLUSTER_QUEUE:
        _check_cluster_queue(name, spec)
    elif rt is INFERENCE_SERVICE:
        _check_inference_service(name, spec)


def validate_update(rt: ResourceType, old: JsonObject, new: JsonObject) -> None:
    """``validate`` plus the fields that may not change once set (a selector, for instance)."""
    validate(rt, new)
    if rt in (DEPLOYMENT, REPLICA_SET, JOB):
        before = (old.get("spec") or {}).get("selector")
        after = (new.get("spec") or {}).get("selector")
        if rt is JOB and after is None:
            return
        if before != after:
            raise ApiError.invalid(
                rt, new["metadata"].get("name", ""), "spec.selector", "field is immutable"
            )
