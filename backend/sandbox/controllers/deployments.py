"""The Deployment controller: ReplicaSets per pod template, revisions, rollouts, history pruning.

Revision bookkeeping follows kube-controller-manager (pkg/controller/deployment, sync.go and
util/deployment_util.go) exactly, because clients read it: ``kubectl rollout history`` and
``kubectl rollout undo`` (whose client side is ``backend.k8s.rollout``) rely on these rules:
- the "new" ReplicaSet is the oldest one whose template equals the Deployment's once the
  ``pod-template-hash`` label is dropped; all others are "old";
- its revision is ``max(old revisions) + 1`` when that is higher than its current one; a reused
  ReplicaSet that had a revision appends the old number to ``revision-history``;
- the Deployment's annotations (all but the revision bookkeeping ones) are copied onto the new
  ReplicaSet on every sync, and the Deployment gets the new ReplicaSet's revision;
- old ReplicaSets beyond ``revisionHistoryLimit`` (default 10) are deleted, lowest revision first,
  but only once they have no replicas and only when the rollout is complete or paused.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta

import orjson

from backend.k8s import rollout
from backend.k8s.annotations import (
    BOOKKEEPING_ANNOTATIONS,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
)
from backend.k8s.names import safe_encode
from backend.k8s.rollout import equal_ignore_hash
from backend.sandbox.controllers.base import (
    ControllerContext,
    JsonObject,
    clone,
    due,
    owned_by,
    owner_reference,
    set_condition,
)
from backend.sandbox.store import DEPLOYMENT, REPLICA_SET, ResourceType

MAX_REVISION_HISTORY_CHARS = 2000
DEFAULT_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE = 600
DEADLINE_CHECK_SECONDS = 5.0


def template_hash(template: JsonObject, collision_count: int = 0) -> str:
    """The ``pod-template-hash`` of a template: a 32-bit hash of its canonical form, written
    as the real controller writes its FNV-32a value (decimal digits, safe-encoded)."""
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    if collision_count:
        data += str(collision_count).encode()
    value = int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "big")
    return safe_encode(str(value))


def revision_of(obj: JsonObject) -> int:
    """The ``deployment.kubernetes.io/revision`` annotation; missing or malformed counts as 0."""
    return rollout.revision(obj) or 0


def _by_creation(rs: JsonObject) -> tuple[str, str]:
    return (rs["metadata"].get("creationTimestamp", ""), rs["metadata"]["name"])


def _replicas(obj: JsonObject) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _resolve_percent(value: int | str | None, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = int(value[:-1]) * total / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value) if value is not None else 0


def max_surge(deploy: JsonObject) -> int:
    strategy = (deploy.get("spec") or {}).get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0
    rolling = strategy.get("rollingUpdate") or {}
    return _resolve_percent(rolling.get("maxSurge", "25%"), _replicas(deploy), True)


def max_unavailable(deploy: JsonObject) -> int:
    strategy = (deploy.get("spec") or {}).get("strategy") or {}
    replicas = _replicas(deploy)
    if strategy.get("type") == "Recreate":
        return replicas
    rolling = strategy.get("rollingUpdate") or {}
    value = _resolve_percent(rolling.get("maxUnavailable", "25%"), replicas, False)
    return min(value, replicas)


def new_rs_annotations(
    deploy: JsonObject, rs_annotations: dict[str, str], new_revision: int, exists: bool
) -> dict[str, str]:
    """``SetNewReplicaSetAnnotations``: the new ReplicaSet's annotations after a sync."""
    out = dict(rs_annotations)
    for key, value in (deploy["metadata"].get("annotations") or {}).items():
        if key not in BOOKKEEPING_ANNOTATIONS:
            out[key] = value
    old_text = out.get(REVISION_ANNOTATION)
    try:
        old = int(old_text) if old_text else 0
    except ValueError:
        return out
    if old < new_revision:
        out[REVISION_ANNOTATION] = str(new_revision)
        if old_text is not None:
            _append_history(out, old_text)
    if not exists:
        out[DESIRED_REPLICAS_ANNOTATION] = str(_replicas(deploy))
        out[MAX_REPLICAS_ANNOTATION] = str(_replicas(deploy) + max_surge(deploy))
    return out


def _append_history(annotations: dict[str, str], old_revision: str) -> None:
    history = annotations.get(REVISION_HISTORY_ANNOTATION, "")
    if not history:
        annotations[REVISION_HISTORY_ANNOTATION] = old_revision
        return
    parts = history.split(",")
    total = len(history) + len(old_revision) + 1
    start = 0
    while total > MAX_REVISION_HISTORY_CHARS and start < len(parts):
        total -= len(parts[start]) + 1
        start += 1
    if total <= MAX_REVISION_HISTORY_CHARS:
        annotations[REVISION_HISTORY_ANNOTATION] = ",".join([*parts[start:], old_revision])


def build_replica_set(
    deploy: JsonObject, revision: int, replicas: int, *, uid: str, created: str
) -> JsonObject:
    """The ReplicaSet the controller creates for the Deployment's current template.

    Fleet builders use it too, to lay down a history the controller then agrees with.
    """
    meta = deploy["metadata"]
    template = clone(deploy["spec"].get("template") or {})
    collisions = (deploy.get("status") or {}).get("collisionCount", 0)
    pod_hash = template_hash(template, collisions)
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), POD_TEMPLATE_HASH_LABEL: pod_hash}
    selector = clone(deploy["spec"].get("selector") or {})
    selector["matchLabels"] = {
        **(selector.get("matchLabels") or {}),
        POD_TEMPLATE_HASH_LABEL: pod_hash,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{meta['name']}-{pod_hash}",
            "namespace": meta["namespace"],
            "uid": uid,
            "creationTimestamp": created,
            "labels": dict(tmeta["labels"]),
            "annotations": new_rs_annotations(deploy, {}, revision, exists=False),
            "ownerReferences": [owner_reference(deploy)],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": deploy["spec"].get("minReadySeconds", 0),
            "selector": selector,
            "template": template,
        },
        "status": {"replicas": 0, "observedGeneration": 0},
    }


class DeploymentController:
    """Keeps each Deployment's ReplicaSets, revisions, scale and status as the real one does."""

    watches: tuple[ResourceType, ...] = (DEPLOYMENT,)

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self._rolling: set[tuple[str, str]] = set()  # rollouts not complete yet
        self._next_check = 0.0

    def tick(self, now: float) -> None:
        """Rollouts in progress are looked at again now and then: without progress they pass
        their ``progressDeadlineSeconds``."""
        if not self._rolling or not due(now, self._next_check, DEADLINE_CHECK_SECONDS):
            return
        self._next_check = now + DEADLINE_CHECK_SECONDS
        for namespace, name in sorted(self._rolling):
            self.reconcile(DEPLOYMENT, namespace, name)

    def reconcile(self, rt: ResourceType, namespace: str, name: str) -> None:
        store = self.ctx.store
        names = self.ctx.index.children("Deployment", namespace, name)
        found = [store.find(REPLICA_SET, namespace, n) for n in names]
        deploy = store.find(DEPLOYMENT, namespace, name)
        if deploy is None:
            self._rolling.discard((namespace, name))
            for rs in found:  # garbage collection of the dependents
                if rs is not None:
                    store.delete(REPLICA_SET, namespace, rs["metadata"]["name"])
            return
        owned = [rs for rs in found if rs is not None and owned_by(rs, deploy)]
        self._sync(deploy, owned)

    # -- the sync -----------------------------------------------------------------------------
    def _sync(self, deploy: JsonObject, owned: list[JsonObject]) -> None:
        paused = bool(deploy["spec"].get("paused"))
        template = deploy["spec"].get("template") or {}
        new_rs = next(
            (
                rs
                for rs in sorted(owned, key=_by_creation)
                if equal_ignore_hash(rs["spec"].get("template") or {}, template)
            ),
            None,
        )
        olds = [rs for rs in owned if rs is not new_rs]
        new_revision = max((revision_of(rs) for rs in olds), default=0) + 1
        if new_rs is not None:
            new_rs = self._sync_new_annotations(deploy, new_rs, new_revision)
        strategy = (deploy["spec"].get("strategy") or {}).get("type")
        if strategy == "Recreate" and not paused:
            new_rs, scaled = self._recreate(deploy, new_rs, olds, new_revision)
        else:
            if new_rs is None and not paused:
                new_rs = self._create_new(deploy, new_revision)
            scaled = self._scale(deploy, new_rs, olds, paused)
        refreshed = [
            self.ctx.store.find(REPLICA_SET, rs["metadata"]["namespace"], rs["metadata"]["name"])
            for rs in olds
        ]
        olds = [rs for rs in refreshed if rs is not None]
        if new_rs is not None:
            new_rs = self.ctx.store.find(
                REPLICA_SET, new_rs["metadata"]["namespace"], new_rs["metadata"]["name"]
            )
        status = self._status(deploy, new_rs, olds, paused)
        if not scaled and (paused or _complete(deploy, status)):
            self._cleanup(deploy, olds)
        self._write_deployment(deploy, new_rs, status)

    def _sync_new_annotations(
        self, deploy: JsonObject, rs: JsonObject, new_revision: int
    ) -> JsonObject:
        current = rs["metadata"].get("annotations") or {}
        wanted = new_rs_annotations(deploy, current, new_revision, exists=True)
        min_ready = deploy["spec"].get("minReadySeconds", 0)
        if wanted == current and rs["spec"].get("minReadySeconds", 0) == min_ready:
            return rs
        updated = {
            **rs,
            "metadata": {**rs["metadata"], "annotations": wanted},
            "spec": {**rs["spec"], "minReadySeconds": min_ready},
        }
        return self.ctx.store.update(REPLICA_SET, updated)

    def _create_new(self, deploy: JsonObject, revision: int) -> JsonObject:
        replicas = _replicas(deploy)
        rs = build_replica_set(
            deploy, revision, replicas, uid=self.ctx.new_uid(), created=self.ctx.now_text()
        )
        created = self.ctx.store.create(REPLICA_SET, rs)
        if replicas > 0:
            self.ctx.record_event(
                deploy,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {rs['metadata']['name']} from 0 to {replicas}",
            )
        return created

    def _scale(
        self,
        deploy: JsonObject,
        new_rs: JsonObject | None,
        olds: list[JsonObject],
        paused: bool,
    ) -> bool:
        """Scale the new ReplicaSet to the desired count and the old ones down as it becomes
        available (a simplified rolling update: new pods first, old ones leave as new ones are
        ready). Returns whether anything was scaled."""
        desired = _replicas(deploy)
        scaled = False
        if new_rs is None:
            # Paused with a changed template: keep the current pods at the desired count.
            active = sorted(olds, key=lambda rs: (revision_of(rs), _by_creation(rs)))
            total = sum(_replicas(rs) for rs in active)
            if active and total != desired:
                target = active[-1]
                scaled = self._scale_rs(deploy, target, max(0, _replicas(target) + desired - total))
            return scaled
        if _replicas(new_rs) != desired:
            scaled = self._scale_rs(deploy, new_rs, desired)
        if paused:
            return scaled
        available = (new_rs.get("status") or {}).get("availableReplicas", 0)
        allowed = max(0, desired - available)
        for rs in sorted(olds, key=_by_creation, reverse=True):
            keep = min(_replicas(rs), allowed)
            allowed -= keep
            if keep != _replicas(rs):
                scaled = self._scale_rs(deploy, rs, keep) or scaled
        return scaled

    def _recreate(
        self,
        deploy: JsonObject,
        new_rs: JsonObject | None,
        olds: list[JsonObject],
        revision: int,
    ) -> tuple[JsonObject | None, bool]:
        """``rolloutRecreate``: old pods all gone first, only then the new ReplicaSet (created
        at that moment) scales up. GPU model servers use it to avoid needing twice the GPUs."""
        scaled = False
        for rs in olds:
            if _replicas(rs) > 0:
                scaled = self._scale_rs(deploy, rs, 0) or scaled
        if scaled or any((rs.get("status") or {}).get("replicas", 0) > 0 for rs in olds):
            return new_rs, scaled
        if new_rs is None:
            return self._create_new(deploy, revision), True
        if _replicas(new_rs) != _replicas(deploy):
            return new_rs, self._scale_rs(deploy, new_rs, _replicas(deploy))
        return new_rs, False

    def _scale_rs(self, deploy: JsonObject, rs: JsonObject, replicas: int) -> bool:
        current = _replicas(rs)
        annotations = {
            **(rs["metadata"].get("annotations") or {}),
            DESIRED_REPLICAS_ANNOTATION: str(_replicas(deploy)),
            MAX_REPLICAS_ANNOTATION: str(_replicas(deploy) + max_surge(deploy)),
        }
        updated = {
            **rs,
            "metadata": {**rs["metadata"], "annotations": annotations},
            "spec": {**rs["spec"], "replicas": replicas},
        }
        self.ctx.store.update(REPLICA_SET, updated)
        direction = "up" if replicas > current else "down"
        self.ctx.record_event(
            deploy,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {rs['metadata']['name']} from {current} to {replicas}",
        )
        return True

    def _cleanup(self, deploy: JsonObject, olds: list[JsonObject]) -> None:
        limit = deploy["spec"].get("revisionHistoryLimit")
        limit = DEFAULT_HISTORY_LIMIT if limit is None else int(limit)
        excess = len(olds) - limit
        if excess <= 0:
            return
        by_revision = sorted(olds, key=lambda rs: (revision_of(rs), _by_creation(rs)))
        for rs in by_revision[:excess]:
            status = rs.get("status") or {}
            busy = status.get("replicas", 0) != 0 or _replicas(rs) != 0
            stale = rs["metadata"].get("generation", 1) > status.get("observedGeneration", 0)
            if busy or stale:
                continue
            self.ctx.store.delete(REPLICA_SET, rs["metadata"]["namespace"], rs["metadata"]["name"])

    # -- status ---------------------------------------------------------------------------------
    def _status(
        self,
        deploy: JsonObject,
        new_rs: JsonObject | None,
        olds: list[JsonObject],
        paused: bool,
    ) -> JsonObject:
        every = [*olds, *([new_rs] if new_rs is not None else [])]

        def total(field: str, items: list[JsonObject]) -> int:
            return sum((rs.get("status") or {}).get(field, 0) for rs in items)

        desired = _replicas(deploy)
        available = total("availableReplicas", every)
        old_status = deploy.get("status") or {}
        status: JsonObject = {
            "observedGeneration": deploy["metadata"].get("generation", 1),
            "replicas": total("replicas", every),
            "updatedReplicas": total("replicas", [new_rs]) if new_rs is not None else 0,
            "readyReplicas": total("readyReplicas", every),
            "availableReplicas": available,
            "unavailableReplicas": max(0, desired - available),
        }
        if "collisionCount" in old_status:
            status["collisionCount"] = old_status["collisionCount"]
        now = self.ctx.now_text()
        conditions = list(old_status.get("conditions") or [])
        if available >= desired - max_unavailable(deploy):
            avail = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            avail = (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        conditions = set_condition(
            conditions,
            {"type": "Available", "status": avail[0], "reason": avail[1], "message": avail[2]},
            now,
            update_time=True,
        )
        progressing = self._progressing(deploy, new_rs, status, paused)
        previous = next((c for c in conditions if c.get("type") == "Progressing"), None)
        progressed = any(
            status[k] != old_status.get(k)
            for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
        )
        key = (deploy["metadata"]["namespace"], deploy["metadata"]["name"])
        self._rolling.discard(key)
        if progressing["reason"] == "ReplicaSetUpdated":
            self._rolling.add(key)
            if (
                previous is not None
                and not progressed
                and self._timed_out(deploy, previous, progressing)
            ):
                progressing = {
                    **progressing,
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": progressing["message"].replace(
                        "is progressing.", "has timed out progressing."
                    ),
                }
        conditions = set_condition(conditions, progressing, now, update_time=True)
        if progressed and progressing["reason"] == "ReplicaSetUpdated":  # progress: new deadline
            conditions = [
                {**c, "lastUpdateTime": now} if c.get("type") == "Progressing" else c
                for c in conditions
            ]
        status["conditions"] = _ordered(conditions)
        return status

    def _timed_out(self, deploy: JsonObject, previous: JsonObject, wanted: JsonObject) -> bool:
        """No progress for ``progressDeadlineSeconds`` (default 600) since the last update."""
        if previous.get("reason") == "ProgressDeadlineExceeded":
            return previous.get("message", "").split('"')[1:2] == wanted["message"].split('"')[1:2]
        if previous.get("reason") != "ReplicaSetUpdated" or previous.get("message") != wanted.get(
            "message"
        ):
            return False
        deadline = deploy["spec"].get("progressDeadlineSeconds")
        deadline = DEFAULT_PROGRESS_DEADLINE if deadline is None else int(deadline)
        try:
            since = datetime.strptime(previous.get("lastUpdateTime", ""), "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return False
        return since.replace(tzinfo=UTC) + timedelta(seconds=deadline) < self.ctx.clock.now()

    def _progressing(
        self, deploy: JsonObject, new_rs: JsonObject | None, status: JsonObject, paused: bool
    ) -> JsonObject:
        if paused:
            return {
                "type": "Progressing",
                "status": "Unknown",
                "reason": "DeploymentPaused",
                "message": "Deployment is paused",
            }
        name = new_rs["metadata"]["name"] if new_rs is not None else ""
        if _complete(deploy, status):
            return {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable",
                "message": f'ReplicaSet "{name}" has successfully progressed.',
            }
        return {
            "type": "Progressing",
            "status": "True",
            "reason": "ReplicaSetUpdated",
            "message": f'ReplicaSet "{name}" is progressing.',
        }

    def _write_deployment(
        self, deploy: JsonObject, new_rs: JsonObject | None, status: JsonObject
    ) -> None:
        annotations = deploy["metadata"].get("annotations") or {}
        if new_rs is not None:
            revision = (new_rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION)
            if revision is not None and annotations.get(REVISION_ANNOTATION) != revision:
                annotations = {**annotations, REVISION_ANNOTATION: revision}
        if annotations == (deploy["metadata"].get("annotations") or {}) and status == deploy.get(
            "status"
        ):
            return
        updated = {
            **deploy,
            "metadata": {**deploy["metadata"], "annotations": annotations},
            "status": status,
        }
        self.ctx.store.update(DEPLOYMENT, updated)


def _complete(deploy: JsonObject, status: JsonObject) -> bool:
    """``DeploymentComplete``: every replica updated and available, the spec observed."""
    desired = _replicas(deploy)
    return (
        status["updatedReplicas"] == desired
        and status["replicas"] == desired
        and status["availableReplicas"] == desired
        and status["observedGeneration"] >= deploy["metadata"].get("generation", 1)
    )


def _ordered(conditions: list[JsonObject]) -> list[JsonObject]:
    order = {"Available": 0, "Progressing": 1, "ReplicaFailure": 2}
    return sorted(conditions, key=lambda c: order.get(c.get("type", ""), 9))
