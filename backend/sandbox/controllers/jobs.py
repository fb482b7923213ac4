"""The Job controller: runs ``parallelism`` pods until ``completions`` succeed; honours suspend.

Status and conditions are the real ones: ``active``/``ready``/``succeeded``/``failed``,
``startTime`` (reset when a suspended Job resumes, as Kueue's admission does), ``completionTime``,
``Suspended`` (JobSuspended / JobResumed), ``SuccessCriteriaMet`` + ``Complete``
(CompletionsReached) and ``FailureTarget`` + ``Failed`` (BackoffLimitExceeded).
How long a pod runs is the sandbox's business (see podstatus.RUNTIME_ANNOTATION).
"""

from __future__ import annotations

from backend.sandbox.controllers.base import (
    TERMINAL_PHASES,
    ControllerContext,
    JsonObject,
    due,
    gpu_request,
    new_pod,
    owned_by,
    pod_phase,
    pod_ready,
    set_condition,
    unique_pod_name,
)
from backend.sandbox.controllers.replicasets import (
    RETRY_SECONDS,
    quota_refusal,
)
from backend.sandbox.store import JOB, POD, ApiError, ResourceType

DEFAULT_BACKOFF_LIMIT = 6


def _finished(job: JsonObject) -> bool:
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return True
    return False


class JobController:
    """Creates a Job's pods, deletes them on suspend, counts outcomes, marks completion."""

    watches: tuple[ResourceType, ...] = (JOB,)

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        # Jobs short of pods because a quota refused them: retried now and then.
        self._refused: set[tuple[str, str]] = set()
        self._attempts: dict[tuple[str, str], str] = {}
        self._last_refusal: dict[tuple[str, str], str] = {}
        self._retrying = False
        self._next_retry = 0.0

    def tick(self, now: float) -> None:
        if not self._refused or not due(now, self._next_retry, RETRY_SECONDS):
            return
        self._next_retry = now + RETRY_SECONDS
        self._retrying = True
        try:
            for namespace, name in sorted(self._refused):
                self.reconcile(JOB, namespace, name)
        finally:
            self._retrying = False

    def reconcile(self, rt: ResourceType, namespace: str, name: str) -> None:
        store = self.ctx.store
        found = [
            store.find(POD, namespace, n) for n in self.ctx.index.children("Job", namespace, name)
        ]
        job = store.find(JOB, namespace, name)
        if job is None:
            self._refused.discard((namespace, name))
            self._attempts.pop((namespace, name), None)
            self._last_refusal.pop((namespace, name), None)
            for pod in found:  # garbage collection of the dependents
                if pod is not None:
                    store.delete(POD, namespace, pod["metadata"]["name"])
            return
        pods = [p for p in found if p is not None and owned_by(p, job)]
        if _finished(job):  # its counts are final, even if its pods are deleted later
            return
        self._sync(job, pods)

    def _sync(self, job: JsonObject, pods: list[JsonObject]) -> None:
        spec = job["spec"]
        now = self.ctx.now_text()
        status = dict(job.get("status") or {})
        conditions = list(status.get("conditions") or ())
        active = [p for p in pods if pod_phase(p) not in TERMINAL_PHASES]
        succeeded = sum(1 for p in pods if pod_phase(p) == "Succeeded")
        failed = sum(1 for p in pods if pod_phase(p) == "Failed")
        suspended = bool(spec.get("suspend"))
        was_suspended = any(
            c.get("type") == "Suspended" and c.get("status") == "True" for c in conditions
        )
        if suspended:
            for pod in active:
                self.ctx.store.delete(POD, job["metadata"]["namespace"], pod["metadata"]["name"])
            active = []
            if not was_suspended:
                conditions = set_condition(
                    conditions, _cond("Suspended", "True", "JobSuspended", "Job suspended"), now
                )
                self.ctx.record_event(job, "Normal", "Suspended", "Job suspended")
        else:
            if was_suspended:
                conditions = set_condition(
                    conditions, _cond("Suspended", "False", "JobResumed", "Job resumed"), now
                )
                status["startTime"] = now
                self.ctx.record_event(job, "Normal", "Resumed", "Job resumed")
            status.setdefault("startTime", now)
            backoff = spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT)
            if failed > backoff:
                conditions = self._fail(job, active, conditions, now)
                active = []
                status["active"] = 0
            elif self._done(spec, succeeded, active):
                conditions = self._complete(job, conditions, now)
                status["completionTime"] = now
            else:
                active = active + self._create(job, self._wanted(spec, succeeded) - len(active))
        status["conditions"] = conditions
        self._write_status(
            job, [*active, *[p for p in pods if pod_phase(p) in TERMINAL_PHASES]], status
        )

    @staticmethod
    def _wanted(spec: JsonObject, succeeded: int) -> int:
        parallelism = spec.get("parallelism")
        parallelism = 1 if parallelism is None else int(parallelism)
        completions = spec.get("completions")
        if completions is None:
            return 0 if succeeded else parallelism
        return max(0, min(parallelism, int(completions) - succeeded))

    @staticmethod
    def _done(spec: JsonObject, succeeded: int, active: list[JsonObject]) -> bool:
        completions = spec.get("completions")
        if completions is None:
            return succeeded > 0 and not active
        return succeeded >= int(completions)

    def _create(self, job: JsonObject, count: int) -> list[JsonObject]:
        meta = job["metadata"]
        labels = {
            "batch.kubernetes.io/controller-uid": meta["uid"],
            "batch.kubernetes.io/job-name": meta["name"],
            "controller-uid": meta["uid"],
            "job-name": meta["name"],
        }
        template = job["spec"].get("template") or {}
        gpus = gpu_request(template.get("spec") or {})
        created = []
        key = (meta["namespace"], meta["name"])
        if key in self._refused and not self._retrying:
            return []  # retried from tick only, as the real controller's backoff does
        for _ in range(count):
            name = self._attempts.pop(key, None) or unique_pod_name(
                self.ctx, meta["namespace"], meta["name"]
            )
            refusal = quota_refusal(self.ctx.store, meta["namespace"], gpus, name)
            if refusal:
                repeated = key in self._refused and self._last_refusal.get(key) == refusal
                self._attempts[key] = name
                self._last_refusal[key] = refusal
                if not repeated:  # a retry refused alike adds nothing new
                    self.ctx.record_event(job, "Warning", "FailedCreate", refusal)
                self._refused.add(key)
                break
            self._refused.discard(key)
            pod = new_pod(self.ctx, template, meta["namespace"], name, job, labels)
            try:
                created.append(self.ctx.store.create(POD, pod))
            except ApiError as err:
                self.ctx.record_event(job, "Warning", "FailedCreate", f"Error creating: {err}")
                break
            self.ctx.record_event(job, "Normal", "SuccessfulCreate", f"Created pod: {name}")
        return created

    def _complete(self, job: JsonObject, conditions: list[JsonObject], now: str) -> list:
        message = "Reached expected number of succeeded pods"
        for type_ in ("SuccessCriteriaMet", "Complete"):
            conditions = set_condition(
                conditions, _cond(type_, "True", "CompletionsReached", message), now
            )
        self.ctx.record_event(job, "Normal", "Completed", "Job completed")
        return conditions

    def _fail(
        self, job: JsonObject, active: list[JsonObject], conditions: list[JsonObject], now: str
    ) -> list:
        for pod in active:
            self.ctx.store.delete(POD, job["metadata"]["namespace"], pod["metadata"]["name"])
        message = "Job has reached the specified backoff limit"
        for type_ in ("FailureTarget", "Failed"):
            conditions = set_condition(
                conditions, _cond(type_, "True", "BackoffLimitExceeded", message), now
            )
        self.ctx.record_event(job, "Warning", "BackoffLimitExceeded", message)
        return conditions

    def _write_status(self, job: JsonObject, pods: list[JsonObject], status: JsonObject) -> None:
        active = [p for p in pods if pod_phase(p) not in TERMINAL_PHASES]
        status.update(
            active=len(active),
            ready=sum(1 for p in active if pod_ready(p)),
            succeeded=sum(1 for p in pods if pod_phase(p) == "Succeeded"),
            failed=sum(1 for p in pods if pod_phase(p) == "Failed"),
            terminating=0,
            uncountedTerminatedPods={},
        )
        if status != job.get("status"):
            self.ctx.store.update(JOB, {**job, "status": status})


def _cond(type_: str, status: str, reason: str, message: str) -> JsonObject:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastProbeTime": None,
    }
