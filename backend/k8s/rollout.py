"""The client side of ``kubectl rollout undo`` for a Deployment, as kubectl does it.

kubectl (``polymorphichelpers/rollback.go``) reads the Deployment and the ReplicaSets it controls,
picks the target revision, refuses or skips in a few cases, and sends one JSON patch; the
deployment controller does the rest (reusing the old ReplicaSet, renumbering it, recording
``revision-history``). These functions are that client side over plain dicts, so the product's
rollback behaves exactly like ``kubectl rollout undo``:

- the revisions are the ReplicaSets' ``deployment.kubernetes.io/revision`` annotations (missing
  counts as 0; a malformed one is ignored);
- with no target revision the previous one is the second-highest; a named one must exist;
- a paused Deployment is refused; a target whose template already equals the Deployment's
  (``pod-template-hash`` aside) is skipped without patching;
- otherwise the patch replaces ``/spec/template`` with the ReplicaSet's (without
  ``pod-template-hash``) and ``/metadata/annotations`` with the Deployment's revision bookkeeping
  plus every other annotation of the ReplicaSet (``kubernetes.io/change-cause`` included).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from backend.k8s.annotations import (
    BOOKKEEPING_ANNOTATIONS,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
)
from backend.k8s.selectors import match_label_selector

JsonObject = dict[str, Any]
JsonPatch = list[JsonObject]

_REVISION = re.compile(r"[+-]?[0-9]+", re.ASCII)


# kubectl 1.31's wording (later releases name the Deployment in the suggested command).
PAUSED = (
    "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' "
    "and try again"
)


class RollbackError(Exception):
    """kubectl refuses the undo; the message is kubectl's, word for word."""


@dataclass(frozen=True)
class Undo:
    """What ``kubectl rollout undo`` does: the ReplicaSet it goes back to, and the JSON patch it
    sends to the Deployment (None when the rollback is skipped)."""

    to_revision: int  # as asked: 0 means "the previous revision"
    target: JsonObject
    patch: JsonPatch | None

    @property
    def message(self) -> str:
        """kubectl's report after ``deployment.apps/<name>``."""
        if self.patch is None:
            return (
                f"skipped rollback (current template already matches revision {self.to_revision})"
            )
        return "rolled back"


def revision(obj: Mapping[str, Any]) -> int | None:
    """An object's ``deployment.kubernetes.io/revision``: 0 when absent, None when it is not an
    integer (kubectl then leaves the ReplicaSet out of the history)."""
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    if value is None:
        return 0
    if not isinstance(value, str) or not _REVISION.fullmatch(value):
        return None
    return int(value)


def controlled_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    """Whether ``obj``'s controlling ownerReference points at ``owner`` (by uid)."""
    uid = (owner.get("metadata") or {}).get("uid")
    refs = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return any(ref.get("controller") and ref.get("uid") == uid for ref in refs)


def owned_replica_sets(
    deployment: Mapping[str, Any], replica_sets: Iterable[JsonObject]
) -> list[JsonObject]:
    """The Deployment's ReplicaSets in the order kubectl considers them: the old ones by
    creation time (then name), then the one whose template is the Deployment's.

    Like kubectl, only ReplicaSets in its namespace, matching its selector and controlled by it
    count; among several with the current template the oldest is the new one.
    """
    meta = deployment.get("metadata") or {}
    selector = (deployment.get("spec") or {}).get("selector")
    owned = sorted(
        (
            rs
            for rs in replica_sets
            if (rs.get("metadata") or {}).get("namespace") == meta.get("namespace")
            and match_label_selector(selector, (rs.get("metadata") or {}).get("labels") or {})
            and controlled_by(rs, deployment)
        ),
        key=lambda rs: (rs["metadata"].get("creationTimestamp") or "", rs["metadata"]["name"]),
    )
    current = _template(deployment)
    new = next((rs for rs in owned if equal_ignore_hash(_template(rs), current)), None)
    if new is None:
        return owned
    return [rs for rs in owned if rs is not new] + [new]


def target_replica_set(
    deployment: Mapping[str, Any], replica_sets: Iterable[JsonObject], to_revision: int = 0
) -> JsonObject:
    """The ReplicaSet ``kubectl rollout undo [--to-revision N]`` goes back to.

    Raises :class:`RollbackError` with kubectl's message when there is none.
    """
    if to_revision < 0:
        raise RollbackError(_not_found(to_revision))
    latest: tuple[int, JsonObject | None] = (-1, None)
    previous: tuple[int, JsonObject | None] = (-1, None)
    for rs in owned_replica_sets(deployment, replica_sets):
        number = revision(rs)
        if number is None:
            continue
        if to_revision:
            if number == to_revision:
                return rs
        elif number > latest[0]:
            latest, previous = (number, rs), latest
        elif number > previous[0]:
            previous = (number, rs)
    if to_revision:
        raise RollbackError(_not_found(to_revision))
    if previous[1] is None:
        name = (deployment.get("metadata") or {}).get("name", "")
        raise RollbackError(f'no rollout history found for deployment "{name}"')
    return previous[1]


def _not_found(to_revision: int) -> str:
    return f"unable to find specified revision {to_revision} in history"


def plan_undo(
    deployment: Mapping[str, Any], replica_sets: Iterable[JsonObject], to_revision: int = 0
) -> Undo:
    """``kubectl rollout undo``: the target and the patch, or :class:`RollbackError`.

    The checks run in kubectl's order: the target revision first, then the paused Deployment,
    then the already-matching template.
    """
    target = target_replica_set(deployment, replica_sets, to_revision)
    if (deployment.get("spec") or {}).get("paused"):
        raise RollbackError(PAUSED)
    if equal_ignore_hash(_template(target), _template(deployment)):
        return Undo(to_revision, target, None)
    return Undo(to_revision, target, undo_patch(deployment, target))


def undo_patch(deployment: Mapping[str, Any], replica_set: Mapping[str, Any]) -> JsonPatch:
    """The JSON patch (RFC 6902) kubectl sends to put ``replica_set``'s template back."""
    return [
        {"op": "replace", "path": "/spec/template", "value": without_hash(_template(replica_set))},
        {
            "op": "replace",
            "path": "/metadata/annotations",
            "value": restored_annotations(deployment, replica_set),
        },
    ]


def restored_annotations(
    deployment: Mapping[str, Any], replica_set: Mapping[str, Any]
) -> dict[str, str]:
    """The Deployment's annotations after the undo: its own revision bookkeeping kept, every
    other annotation taken from the ReplicaSet (the Deployment's other ones are dropped)."""
    own = (deployment.get("metadata") or {}).get("annotations") or {}
    theirs = (replica_set.get("metadata") or {}).get("annotations") or {}
    kept = {k: v for k, v in own.items() if k in BOOKKEEPING_ANNOTATIONS}
    return kept | {k: v for k, v in theirs.items() if k not in BOOKKEEPING_ANNOTATIONS}


def with_resource_version(patch: JsonPatch, resource_version: str) -> JsonPatch:
    """``patch`` made conditional on the object still being at ``resource_version``: the API
    server answers 409 Conflict instead of applying it over a change made in between."""
    precondition = {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version}
    return [*patch, precondition]


def without_hash(template: Mapping[str, Any]) -> JsonObject:
    """A pod template without the ``pod-template-hash`` label (empty labels dropped)."""
    meta = template.get("metadata") or {}
    labels = meta.get("labels") or {}
    if POD_TEMPLATE_HASH_LABEL not in labels:
        return dict(template)
    rest = {k: v for k, v in labels.items() if k != POD_TEMPLATE_HASH_LABEL}
    new_meta = {k: v for k, v in meta.items() if k != "labels"}
    if rest:
        new_meta["labels"] = rest
    return {**template, "metadata": new_meta}


def equal_ignore_hash(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two pod templates are the same once ``pod-template-hash`` is dropped from both.

    Kubernetes compares typed structs, where an empty or null field and a missing one are the
    same thing (``resources: {}`` is what kubectl sends back); so empties are ignored here.
    """
    return _without_empties(without_hash(a)) == _without_empties(without_hash(b))


def _without_empties(value: object) -> object:
    if isinstance(value, Mapping):
        pruned = {k: _without_empties(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_without_empties(v) for v in value]
    return value


def _template(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("spec") or {}).get("template") or {}
