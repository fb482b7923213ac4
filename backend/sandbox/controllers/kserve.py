"""KServe InferenceService controller (serving.kserve.io/v1beta1, serverless mode).

Real KServe turns the predictor into a Knative Service: every change of the predictor spec makes
a new Revision ``<isvc>-predictor-0000N``, each backed by a Deployment ``<revision>-deployment``
whose pods are ``<revision>-deployment-<hash>-<suffix>``. The sandbox creates those Deployments
(owned by the InferenceService) and lets the workload controllers make ReplicaSets and pods, bind
them and mark them ready. This controller then mirrors KServe's status logic:

- ``canaryTrafficPercent: P`` with a rolled-out revision: P% to the latest ready revision (tag
  ``latest``), 100-P% to ``latestRolledoutRevision`` (tag ``prev``) — or, once the latest ready
  revision is the rolled-out one, to ``previousRolledoutRevision``; P = 0 pins that previous
  revision (rollback, also after a promotion).
- no ``canaryTrafficPercent`` (or 100): 100% to the latest ready revision, which becomes
  ``latestRolledoutRevision``; the one it replaces becomes ``previousRolledoutRevision``.
"""

from __future__ import annotations

import copy
import hashlib
import json

from backend.conventions import ISVC_LABEL
from backend.sandbox.defaults import apply_defaults
from backend.sandbox.store import DEPLOYMENT, INFERENCE_SERVICE, JsonObject, ResourceType

REVISION_LABEL = "serving.knative.dev/revision"
COMPONENT_LABEL = "component"
PREDICTOR_LABEL = "predictor"
HASH_ANNOTATION = "serving.kserve.io/predictor-spec-hash"
SERVING_IMAGE = "kserve/huggingfaceserver:v0.14.1-gpu"
_CONDITIONS = (
    "IngressReady",
    "LatestDeploymentReady",
    "PredictorConfigurationReady",
    "PredictorReady",
    "PredictorRouteReady",
    "Ready",
)


def revision_name(isvc: str, number: int) -> str:
    return f"{isvc}-predictor-{number:05d}"


def revision_number(name: str) -> int:
    """The N of ``<isvc>-predictor-0000N`` (0 when the name has another shape)."""
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def predictor_hash(predictor: JsonObject) -> str:
    """What makes a new revision: the predictor spec without the traffic split."""
    spec = {k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def _min_replicas(predictor: JsonObject) -> int:
    value = predictor.get("minReplicas")
    return 1 if value is None else max(0, int(value))


def revision_deployment(
    isvc: JsonObject, number: int, replicas: int, created: str | None = None
) -> JsonObject:
    """The Deployment backing revision ``number`` of ``isvc``'s current predictor spec."""
    meta = isvc["metadata"]
    name, ns = meta["name"], meta["namespace"]
    predictor = isvc["spec"]["predictor"]
    model = predictor.get("model", {})
    rev = revision_name(name, number)
    labels = {
        REVISION_LABEL: rev,
        "serving.knative.dev/configuration": f"{name}-predictor",
        "serving.knative.dev/service": f"{name}-predictor",
        ISVC_LABEL: name,
        COMPONENT_LABEL: PREDICTOR_LABEL,
        "app": rev,
    }
    pod_labels = {**labels, **predictor.get("labels", {})}
    annotations = {
        HASH_ANNOTATION: predictor_hash(predictor),
        "serving.knative.dev/revision-number": str(number),
        "autoscaling.knative.dev/min-scale": str(_min_replicas(predictor)),
        "autoscaling.knative.dev/max-scale": str(predictor.get("maxReplicas", 0)),
    }
    container = {
        "name": "kserve-container",
        "image": SERVING_IMAGE,
        "args": [f"--model_name={name}", "--model_id=/mnt/models"],
        "env": [{"name": "STORAGE_URI", "value": model.get("storageUri", "")}],
        "ports": [{"name": "user-port", "containerPort": 8080, "protocol": "TCP"}],
        "resources": copy.deepcopy(model.get("resources", {})),
    }
    queue_proxy = {
        "name": "queue-proxy",
        "image": "knative-releases/knative.dev/serving/cmd/queue:v1.15.2",
        "ports": [{"name": "http-queueadm", "containerPort": 8022, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "25m"}},
    }
    pod_spec: JsonObject = {"containers": [container, queue_proxy]}
    if predictor.get("nodeSelector"):
        pod_spec["nodeSelector"] = dict(predictor["nodeSelector"])
    out_meta: JsonObject = {
        "name": f"{rev}-deployment",
        "namespace": ns,
        "labels": labels,
        "annotations": annotations,
        "ownerReferences": [
            {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceService",
                "name": name,
                "uid": meta.get("uid", ""),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if created:
        out_meta["creationTimestamp"] = created
    return {
        "metadata": out_meta,
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {REVISION_LABEL: rev}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": pod_labels, "annotations": dict(annotations)},
                "spec": pod_spec,
            },
        },
    }


def _deployment_ready(deploy: JsonObject) -> bool:
    status = deploy.get("status", {})
    want = max(1, int(deploy["spec"].get("replicas") or 0))
    ready = max(int(status.get("readyReplicas") or 0), int(status.get("availableReplicas") or 0))
    return ready >= want


class InferenceServiceController:
    """Keeps revisions, their Deployments' replicas and the InferenceService status in step."""

    watches: tuple[ResourceType, ...] = (INFERENCE_SERVICE, DEPLOYMENT)

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.store = ctx.store

    def tick(self, now: float) -> None:
        """Nothing is time-driven: readiness arrives as Deployment changes."""

    def reconcile(self, rt: ResourceType, namespace: str, name: str) -> None:
        if rt == DEPLOYMENT:
            deploy = self.store.find(DEPLOYMENT, namespace, name)
            labels = (deploy or {}).get("metadata", {}).get("labels", {})
            isvc_name = labels.get(ISVC_LABEL)
            if isvc_name is None and name.endswith("-deployment") and "-predictor-" in name:
                isvc_name = name.split("-predictor-")[0]
            if isvc_name:
                self._reconcile_isvc(namespace, isvc_name)
            return
        if rt == INFERENCE_SERVICE:
            self._reconcile_isvc(namespace, name)

    # -- one InferenceService ------------------------------------------------------------------
    def _revisions(self, namespace: str, isvc: str) -> dict[int, JsonObject]:
        out = {}
        for deploy in self.store.list(DEPLOYMENT, namespace):
            labels = deploy["metadata"].get("labels", {})
            if labels.get(ISVC_LABEL) == isvc and labels.get(COMPONENT_LABEL) == PREDICTOR_LABEL:
                out[revision_number(labels.get(REVISION_LABEL, ""))] = deploy
        return out

    def _reconcile_isvc(self, namespace: str, name: str) -> None:
        isvc = self.store.find(INFERENCE_SERVICE, namespace, name)
        revisions = self._revisions(namespace, name)
        if isvc is None:
            for deploy in revisions.values():
                self.store.delete(DEPLOYMENT, namespace, deploy["metadata"]["name"])
            return
        predictor = isvc.get("spec", {}).get("predictor", {})
        old = isvc.get("status", {}).get("components", {}).get(PREDICTOR_LABEL, {})
        latest = max(revisions, default=0)
        known = max(latest, revision_number(old.get("latestCreatedRevision", "")))
        if not revisions or revisions[latest]["metadata"].get("annotations", {}).get(
            HASH_ANNOTATION
        ) != predictor_hash(predictor):
            latest = known + 1
            deploy = revision_deployment(isvc, latest, _min_replicas(predictor))
            apply_defaults(DEPLOYMENT, deploy)  # it is written through the API server
            revisions[latest] = self.store.create(DEPLOYMENT, deploy)
            self.ctx.record_event(
                isvc,
                "Normal",
                "Created",
                f'Created Revision "{revision_name(name, latest)}"',
                component="kserve-controller",
            )
        status = self._status(isvc, predictor, old, revisions, latest)
        self._scale_revisions(namespace, predictor, revisions, status, latest)
        self._write_status(isvc, status)

    def _status(
        self,
        isvc: JsonObject,
        predictor: JsonObject,
        old: JsonObject,
        revisions: dict[int, JsonObject],
        latest: int,
    ) -> JsonObject:
        meta = isvc["metadata"]
        name, ns = meta["name"], meta["namespace"]
        scale_to_zero = _min_replicas(predictor) == 0  # Knative: a revision at zero stays Ready
        ready_now = [
            n
            for n, d in revisions.items()
            if _deployment_ready(d) or (scale_to_zero and not d["spec"].get("replicas"))
        ]
        old_ready = revision_number(old.get("latestReadyRevision", ""))
        if old_ready not in revisions:
            old_ready = 0
        ready = max([old_ready, *ready_now])
        ready_rev = revision_name(name, ready) if ready else None
        rolled = old.get("latestRolledoutRevision")
        if rolled and revision_number(rolled) not in revisions:
            rolled = None
        previous = old.get("previousRolledoutRevision")
        canary = predictor.get("canaryTrafficPercent")
        tagging = meta.get("annotations", {}).get("serving.kserve.io/enable-tag-routing") == "true"
        host = f"{name}-predictor.{ns}.example.com"
        traffic: list[JsonObject] = []
        percent = None if canary is None else max(0, min(100, int(canary)))
        splitting = percent is not None and percent < 100
        # Once the latest revision is ready and rolled out (promoted), a canary's remaining
        # traffic goes to the revision rolled out before it: that is how KServe rolls back.
        promoted = rolled == ready_rev and ready == latest
        remaining = previous if splitting and promoted else rolled
        if ready_rev and percent is not None and splitting and remaining:
            p = percent
            traffic = [
                _target(ready_rev, p, True, "latest", host),
                _target(remaining, 100 - p, False, "prev", host),
            ]
        elif ready_rev:
            traffic = [_target(ready_rev, 100, True, "latest" if tagging else None, host)]
            if rolled != ready_rev:
                previous = rolled or previous
                rolled = ready_rev
        component: JsonObject = {"latestCreatedRevision": revision_name(name, latest)}
        if ready_rev:
            component["latestReadyRevision"] = ready_rev
        if rolled:
            component["latestRolledoutRevision"] = rolled
        if previous:
            component["previousRolledoutRevision"] = previous
        component["traffic"] = traffic
        component["url"] = f"http://{host}"
        component["address"] = {"url": f"http://{name}-predictor.{ns}.svc.cluster.local"}
        served = bool(traffic) and all(
            revision_number(t["revisionName"]) in ready_now or t["percent"] == 0 for t in traffic
        )
        status: JsonObject = {
            "observedGeneration": meta.get("generation", 1),
            "url": f"http://{name}.{ns}.example.com",
            "address": {"url": f"http://{name}.{ns}.svc.cluster.local"},
            "components": {PREDICTOR_LABEL: component},
            "conditions": self._conditions(served, latest == ready, latest in ready_now),
            "modelStatus": {
                "states": {
                    "activeModelState": "Loaded" if served else "Pending",
                    "targetModelState": "Loaded",
                },
                "transitionStatus": "UpToDate" if latest == ready else "InProgress",
            },
        }
        return status

    def _conditions(self, served: bool, latest_ready: bool, latest_up: bool) -> list[JsonObject]:
        now = self.ctx.clock.rfc3339()
        values = {
            "IngressReady": True,
            "LatestDeploymentReady": latest_ready and latest_up,
            "PredictorConfigurationReady": latest_ready,
            "PredictorReady": served,
            "PredictorRouteReady": served,
            "Ready": served,
        }
        out = []
        for kind in _CONDITIONS:
            cond: JsonObject = {
                "type": kind,
                "status": "True" if values[kind] else "False",
                "lastTransitionTime": now,
            }
            if not values[kind]:
                cond["reason"] = "RevisionMissing" if kind != "Ready" else "PredictorNotReady"
                cond["message"] = (
                    "Revision is not ready yet"
                    if kind != "Ready"
                    else "Predictor component is not ready"
                )
            if kind in ("LatestDeploymentReady", "PredictorConfigurationReady"):
                cond["severity"] = "Info"
            out.append(cond)
        return out

    def _scale_revisions(
        self,
        namespace: str,
        predictor: JsonObject,
        revisions: dict[int, JsonObject],
        status: JsonObject,
        latest: int,
    ) -> None:
        """Revisions that carry traffic (or are coming up) keep minReplicas; others scale to 0."""
        traffic = status["components"][PREDICTOR_LABEL]["traffic"]
        live = {revision_number(t["revisionName"]) for t in traffic} | {latest}
        want_live = _min_replicas(predictor)
        for number, deploy in revisions.items():
            want = want_live if number in live else 0
            if deploy["spec"].get("replicas") != want:
                changed = copy.deepcopy(deploy)
                changed["spec"]["replicas"] = want
                changed["metadata"].pop("resourceVersion", None)
                self.store.update(DEPLOYMENT, changed)

    def _write_status(self, isvc: JsonObject, status: JsonObject) -> None:
        old = isvc.get("status", {})
        old_conditions = {c["type"]: c for c in old.get("conditions", [])}
        for cond in status["conditions"]:
            before = old_conditions.get(cond["type"])
            if before and before.get("status") == cond["status"]:
                cond["lastTransitionTime"] = before.get("lastTransitionTime")
        if status == old:
            return
        changed = {**isvc, "metadata": {**isvc["metadata"]}, "status": status}
        stored = self.store.update(INFERENCE_SERVICE, changed, subresource="status")
        was_ready = old_conditions.get("Ready", {}).get("status")
        now_ready = next(c["status"] for c in status["conditions"] if c["type"] == "Ready")
        if now_ready != was_ready and (was_ready is not None or now_ready == "True"):
            name = isvc["metadata"]["name"]
            if now_ready == "True":
                reason, kind, message = "InferenceServiceReady", "Normal", "is Ready"
            else:
                reason, kind, message = "InferenceServiceNotReady", "Warning", "is not Ready"
            self.ctx.record_event(
                stored,
                kind,
                reason,
                f"InferenceService [{name}] {message}",
                component="kserve-controller",
            )


def _target(rev: str, percent: int, latest: bool, tag: str | None, host: str) -> JsonObject:
    target: JsonObject = {"latestRevision": latest, "percent": percent, "revisionName": rev}
    if tag:
        target["tag"] = tag
        target["url"] = f"http://{tag}-{host}"
    return target
