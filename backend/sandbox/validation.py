"""The checks the API server (and the Kueue/KServe webhooks) make before storing an object.

Checked: names, label keys and values, a pod's containers (a Pod, or the template of a
Deployment, ReplicaSet or Job), replica counts, a Deployment's selector against its template,
canary percentages and GPU quotas; each failure is the 422 ``Invalid`` Status a real cluster
answers, with the same field paths and ``causes``. What a real server refuses while decoding the
body (a value of the wrong type, an unknown field) is ``decoding``'s.
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
    POD,
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


_LABEL_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_NAME_RE = re.compile(rf"^{_LABEL_NAME}$")


def _label_key_error(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if "/" in prefix or (key.count("/") == 1 and not prefix):
        return (
            f'Invalid value: "{key}": a qualified name must consist of alphanumeric characters, '
            "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
            "'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            f"'{_LABEL_NAME}') with an optional DNS subdomain prefix and '/' (e.g. "
            "'example.com/MyName')"
        )
    if prefix and (why := _name_error(prefix, label=False)):
        return why.replace("Invalid value:", "Invalid value:", 1) + " (prefix part)"
    if not name:
        return f'Invalid value: "{key}": name part must be non-empty'
    if len(name) > 63:
        return f'Invalid value: "{key}": name part must be no more than 63 characters'
    if not _LABEL_NAME_RE.match(name):
        return (
            f'Invalid value: "{key}": name part must consist of alphanumeric characters, '
            "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
            "'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            f"'{_LABEL_NAME}')"
        )
    return None


def _label_value_error(value: object) -> str | None:
    if not isinstance(value, str):
        return f"Invalid value: {value!r}: must be a string"
    if len(value) > 63:
        return f'Invalid value: "{value}": must be no more than 63 characters'
    if value and not _LABEL_NAME_RE.match(value):
        return (
            f'Invalid value: "{value}": a valid label must be an empty string or consist of '
            "alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
            f"for validation is '(({_LABEL_NAME})?')"
        )
    return None


def _check_labels(rt: ResourceType, name: str, labels: object, path: str) -> None:
    if labels is None:
        return
    if not isinstance(labels, dict):
        raise ApiError.invalid(rt, name, path, "Invalid value: must be a map of strings")
    for key, value in labels.items():
        why = _label_key_error(str(key)) or _label_value_error(value)
        if why:
            raise ApiError.invalid(rt, name, path, why)


_RESTART_POLICIES = ("Always", "OnFailure", "Never")


def _supported(value: object, allowed: tuple[str, ...]) -> str:
    listed = ", ".join(f'"{a}"' for a in allowed)
    return f'Unsupported value: "{value}": supported values: {listed}'


def _check_pod_spec(rt: ResourceType, name: str, spec: object, path: str) -> None:
    if not isinstance(spec, dict):
        raise ApiError.invalid(rt, name, path, "Required value")
    containers = spec.get("containers")
    if not containers:
        raise ApiError.invalid(rt, name, f"{path}.containers", "Required value")
    # Containers first, then init containers, whose names may clash with either.
    seen: set[str] = set()
    for key in ("containers", "initContainers"):
        for i, container in enumerate(spec.get(key) or ()):
            _check_container(rt, name, container, f"{path}.{key}[{i}]", seen)
    restart = spec.get("restartPolicy")
    if restart not in _RESTART_POLICIES:
        raise ApiError.invalid(
            rt, name, f"{path}.restartPolicy", _supported(restart, _RESTART_POLICIES)
        )


def _check_container(
    rt: ResourceType, name: str, container: object, where: str, seen: set[str]
) -> None:
    """A container needs a name unique in its pod and an image."""
    if not isinstance(container, dict) or not container.get("name"):
        raise ApiError.invalid(rt, name, f"{where}.name", "Required value")
    if container["name"] in seen:
        raise ApiError.invalid(rt, name, f"{where}.name", f'Duplicate value: "{container["name"]}"')
    seen.add(container["name"])
    if not container.get("image"):
        raise ApiError.invalid(rt, name, f"{where}.image", "Required value")


def _check_template_restart_policy(rt: ResourceType, name: str, spec: JsonObject) -> None:
    """A Deployment's or ReplicaSet's pods restart Always; a Job's OnFailure or Never (its
    template is defaulted to Always, so a missing policy reads as Always)."""
    restart = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
    path = "spec.template.spec.restartPolicy"
    if rt is JOB and restart in ("Always", None):
        raise ApiError.invalid(rt, name, path, 'Required value: valid values: "OnFailure", "Never"')
    if rt in (DEPLOYMENT, REPLICA_SET) and restart != "Always":
        raise ApiError.invalid(rt, name, path, _supported(restart, ("Always",)))


def _check_template(rt: ResourceType, name: str, spec: JsonObject) -> None:
    template = spec.get("template")
    if not isinstance(template, dict):
        raise ApiError.invalid(rt, name, "spec.template", "Required value")
    labels = (template.get("metadata") or {}).get("labels")
    _check_labels(rt, name, labels, "spec.template.metadata.labels")
    _check_pod_spec(rt, name, template.get("spec"), "spec.template.spec")
    _check_template_restart_policy(rt, name, spec)


def validate(rt: ResourceType, obj: JsonObject) -> None:
    """Raise the 422 a real cluster would answer for ``obj``; return when it is acceptable."""
    name = obj.get("metadata", {}).get("name", "")
    _check_labels(rt, name, obj.get("metadata", {}).get("labels"), "metadata.labels")
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        raise ApiError.invalid(rt, name, "spec", "Invalid value: must be an object")
    if rt is POD:
        _check_pod_spec(rt, name, spec, "spec")
    elif rt in (DEPLOYMENT, REPLICA_SET):
        _check_non_negative(rt, name, spec, ("replicas", "minReadySeconds"))
        _check_selector(rt, name, spec)
        _check_template(rt, name, spec)
    elif rt is JOB:
        _check_non_negative(rt, name, spec, ("parallelism", "completions", "backoffLimit"))
        _check_template(rt, name, spec)
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
