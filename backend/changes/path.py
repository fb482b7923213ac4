"""The one path every change to the cluster takes.

request → authorize → validate → plan → audit intent → apply (patches with resourceVersion
preconditions) → audit outcome → the returned objects into the cache → the audit head outside the
database. Kinds of change (quota, rollback, ...) supply only their plan; this module does the rest,
the same way for all of them:

- Nothing is written unless the intent is on record (``AuditUnavailable`` otherwise).
- What is applied is what was reviewed: apply re-plans from fresh reads and refuses (``StalePlan``)
  when anything the operator reviewed differs. When only resourceVersions moved (a controller
  wrote the status), the fresh plan is applied with the fresh versions as preconditions and the
  record keeps both fingerprints.
- A change of several objects is all or nothing: when a write fails, the objects already written
  are put back, newest first, and the outcome says ``reverted`` (or ``failed`` with what remains).
- Denied, invalid and stale attempts are recorded too.
- ``recover`` finishes changes whose intent has no outcome (the backend died between writes).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from backend.audit.log import AuditLog
from backend.changes.kube import (
    ClusterClient,
    Conflict,
    JsonObject,
    KubeError,
    ObjectRef,
    Unreachable,
)
from backend.changes.plan import FieldChange, ObjectChange, Plan, reviewed_part
from backend.changes.request import Actor, ChangeDenied, ChangeInvalid, StalePlan
from backend.changes.roles import RoleAuthorizer
from backend.schemas import AuditEntry, AuditOutcome, AuditRecord, AuditStage

log = logging.getLogger("opsconsole.changes")

MAX_REASON = 1000


class ChangeKind(Protocol):
    """A kind of change: it reads what it needs and says what it would write."""

    action: str

    def plan(self, parameters: Mapping[str, Any], cluster: ClusterClient) -> Plan:
        """Raise ``ChangeInvalid`` with an operator-readable message for bad parameters."""
        ...


class Authorizer(Protocol):
    def denial(self, actor: Actor, plan: Plan) -> str | None:
        """Why ``actor`` may not apply ``plan``, or None when it may."""
        ...


@dataclass
class ChangeResult:
    change_id: str
    outcome: AuditOutcome
    plan: Plan
    error: str | None = None
    written: list[JsonObject] = field(default_factory=list)
    status: int | None = None  # the API server's status for a failed write


CacheUpdate = Callable[[JsonObject], None]
# Waits (bounded) until what the API serves is made from the objects written so far.
Settled = Callable[[], Awaitable[None]]


class ChangePath:
    def __init__(
        self,
        kinds: list[ChangeKind],
        cluster: ClusterClient,
        audit: AuditLog,
        authorizer: Authorizer | None = None,
        cache_update: CacheUpdate | None = None,
        settled: Settled | None = None,
    ) -> None:
        self.kinds = {k.action: k for k in kinds}
        self.cluster = cluster
        self.audit = audit
        self.authorizer = authorizer or RoleAuthorizer()
        self.cache_update = cache_update
        self.settled = settled

    # -- plan ------------------------------------------------------------------------------------
    async def plan(self, action: str, parameters: Mapping[str, Any], actor: Actor) -> Plan:
        """Plan and authorize without writing; invalid and denied attempts are recorded."""
        kind = self.kinds.get(action)
        if kind is None:
            raise ChangeInvalid(f"unknown action {action!r}")
        try:
            plan = await asyncio.to_thread(kind.plan, parameters, self.cluster)
        except ChangeInvalid as exc:
            await self._refused(actor, action, parameters, AuditOutcome.INVALID, str(exc))
            raise
        except KubeError as exc:
            raise ChangeInvalid(f"reading the cluster failed: {exc}") from exc
        denial = self.authorizer.denial(actor, plan)
        if denial:
            await self._refused(actor, action, parameters, AuditOutcome.DENIED, denial, plan)
            raise ChangeDenied(denial)
        return plan

    # -- apply -----------------------------------------------------------------------------------
    async def apply(
        self,
        action: str,
        parameters: Mapping[str, Any],
        fingerprint: str,
        reason: str,
        actor: Actor,
    ) -> ChangeResult:
        reason = reason.strip()
        if not reason or len(reason) > MAX_REASON:
            why = "a reason is required" if not reason else f"the reason is over {MAX_REASON}"
            await self._refused(actor, action, parameters, AuditOutcome.INVALID, why, reason=reason)
            raise ChangeInvalid(why)
        plan = await self.plan(action, parameters, actor)
        if plan.fingerprint != fingerprint and plan.reviewed == reviewed_part(fingerprint):
            plan.confirmed = fingerprint  # only resourceVersions moved (a status write, say)
        elif plan.fingerprint != fingerprint:
            error = "the cluster changed since the plan was made; nothing was changed"
            await self._refused(actor, action, parameters, AuditOutcome.FAILED, error, plan, reason)
            raise StalePlan(plan)
        change_id = uuid.uuid4().hex
        if plan.noop:
            await self._refused(
                actor, action, parameters, AuditOutcome.SUCCEEDED, None, plan, reason, change_id
            )
            return ChangeResult(change_id, AuditOutcome.SUCCEEDED, plan)
        await self.audit.record(self._entry(actor, plan, reason, change_id, AuditStage.INTENT))
        result = await self._write(plan, change_id)
        await self._finish(actor, plan, reason, result)
        if self.settled is not None:
            # The answer comes once reads show every object written (or put back) together: a
            # change of several objects is never seen half applied after its answer.
            await self.settled()
        return result

    async def _write(self, plan: Plan, change_id: str) -> ChangeResult:
        """Write every object; on a failure put back the ones written, newest first."""
        written: list[tuple[ObjectChange, JsonObject]] = []
        for change in plan.objects:
            try:
                obj = await self._patch(change)
            except Unreachable as exc:  # it may have landed: look before putting things back
                landed = await self._landed(change)
                if landed is not None:
                    written.append((change, landed))
                return await self._undo(plan, change_id, written, change, exc)
            except KubeError as exc:
                return await self._undo(plan, change_id, written, change, exc)
            written.append((change, obj))
            self._update_cache(obj)
        return ChangeResult(
            change_id, AuditOutcome.SUCCEEDED, plan, written=[o for _, o in written]
        )

    async def _patch(self, change: ObjectChange, attempts: int = 3) -> JsonObject:
        """Send one object's patch. A 409 caused by fields the change does not touch (a
        controller writing the status, say) is not a conflict with the reviewed change: while
        the planned fields still hold their reviewed values, the patch is sent again on the
        object's new resourceVersion. Anything else stays a conflict."""
        for _ in range(attempts - 1):
            try:
                return await asyncio.to_thread(
                    self.cluster.patch, change.ref, change.patch(), "json"
                )
            except Conflict:
                current = await asyncio.to_thread(self.cluster.get, change.ref)
                values = [_at_pointer(current, f.path) for f in change.fields]
                if values != [f.before for f in change.fields]:
                    raise
                version = str((current.get("metadata") or {}).get("resourceVersion") or "")
                change = replace(change, resource_version=version)
        return await asyncio.to_thread(self.cluster.patch, change.ref, change.patch(), "json")

    async def _landed(self, change: ObjectChange) -> JsonObject | None:
        """The object, if it holds the change's values now; None if not or if unreadable."""
        try:
            obj = await asyncio.to_thread(self.cluster.get, change.ref)
        except KubeError:
            return None
        values = [_at_pointer(obj, f.path) for f in change.fields]
        return obj if values == [f.after for f in change.fields] else None

    async def _undo(
        self,
        plan: Plan,
        change_id: str,
        written: list[tuple[ObjectChange, JsonObject]],
        failed: ObjectChange,
        exc: KubeError,
    ) -> ChangeResult:
        error = f"writing {failed.ref} failed: {exc}"
        if not written:
            return ChangeResult(change_id, AuditOutcome.FAILED, plan, error, status=exc.status)
        left: list[str] = []
        for change, obj in reversed(written):
            revert = change.reverted(obj["metadata"]["resourceVersion"])
            try:
                back = await self._patch(revert)  # a status write since is no conflict
            except KubeError as revert_exc:
                left.append(f"{change.ref} ({revert_exc})")
                continue
            self._update_cache(back)
        if left:
            error += "; putting back failed, still changed: " + ", ".join(left)
            return ChangeResult(change_id, AuditOutcome.FAILED, plan, error, status=exc.status)
        error += "; the objects already written were put back"
        return ChangeResult(change_id, AuditOutcome.REVERTED, plan, error, status=exc.status)

    async def _finish(self, actor: Actor, plan: Plan, reason: str, result: ChangeResult) -> None:
        entry = self._entry(actor, plan, reason, result.change_id, AuditStage.OUTCOME)
        entry.outcome = result.outcome
        entry.error = result.error
        entry.resource_versions = {
            **plan.resource_versions(),
            **{f"{ref} (after)": rv for ref, rv in _written_versions(result.written).items()},
        }
        await self.audit.record_outcome(entry)

    def _update_cache(self, obj: JsonObject) -> None:
        if self.cache_update is not None:
            self.cache_update(obj)

    # -- records ---------------------------------------------------------------------------------
    def _entry(
        self, actor: Actor, plan: Plan, reason: str, change_id: str, stage: AuditStage
    ) -> AuditEntry:
        return AuditEntry(
            change_id=change_id,
            stage=stage,
            **_who(actor),
            action=plan.action,
            target=plan.target,
            tenants=plan.tenants,
            reason=reason,
            parameters={
                **plan.parameters,
                "fingerprint": plan.fingerprint,
                **({"confirmed_fingerprint": plan.confirmed} if plan.confirmed else {}),
                "plan": _plan_refs(plan),
            },
            before=[o.as_record("before") for o in plan.objects],
            after=[o.as_record("after") for o in plan.objects],
            resource_versions=plan.resource_versions(),
        )

    async def _refused(
        self,
        actor: Actor,
        action: str,
        parameters: Mapping[str, Any],
        outcome: AuditOutcome,
        error: str | None,
        plan: Plan | None = None,
        reason: str = "",
        change_id: str | None = None,
    ) -> None:
        """One outcome record for an attempt that wrote nothing."""
        if plan is not None:
            entry = self._entry(
                actor, plan, reason, change_id or uuid.uuid4().hex, AuditStage.OUTCOME
            )
        else:
            entry = AuditEntry(
                change_id=change_id or uuid.uuid4().hex,
                stage=AuditStage.OUTCOME,
                **_who(actor),
                action=action,
                target=_target_of(parameters),
                reason=reason,
                parameters=dict(parameters),
            )
        entry.outcome = outcome
        entry.error = error
        await self.audit.record_outcome(entry)

    # -- recovery --------------------------------------------------------------------------------
    async def recover(self) -> list[ChangeResult]:
        """Finish every change whose intent has no outcome: keep it if every write landed, else
        put back what landed; record the outcome. Only the cluster changes of this path's kinds:
        a token command that died mid-way left nothing in the cluster to finish."""
        intents = await asyncio.to_thread(self.audit.store.unfinished)
        results = []
        for intent in (i for i in intents if i.action in self.kinds):
            results.append(await self._recover(intent))
        return results

    async def _recover(self, intent: AuditRecord) -> ChangeResult:
        plan = _plan_from_record(intent)
        landed: list[tuple[ObjectChange, JsonObject]] = []
        foreign: list[str] = []
        for change in plan.objects:
            obj = await asyncio.to_thread(self.cluster.get, change.ref)
            values = [_at_pointer(obj, f.path) for f in change.fields]
            if values == [f.after for f in change.fields]:
                landed.append((change, obj))
            elif values != [f.before for f in change.fields]:
                foreign.append(str(change.ref))
        actor = Actor(
            intent.actor,
            intent.role,
            None,
            intent.source_address,
            intent.ssh_client,
            intent.user_agent,
        )
        result = await self._recovered(plan, intent.change_id, landed, foreign)
        await self._finish(actor, plan, intent.reason, result)
        return result

    async def _recovered(
        self,
        plan: Plan,
        change_id: str,
        landed: list[tuple[ObjectChange, JsonObject]],
        foreign: list[str],
    ) -> ChangeResult:
        if len(landed) == len(plan.objects):
            return ChangeResult(
                change_id,
                AuditOutcome.SUCCEEDED,
                plan,
                "completed on restart: every write had landed",
                written=[o for _, o in landed],
            )
        if foreign:
            error = "interrupted; changed since by someone else, left as found: " + ", ".join(
                foreign
            )
        else:
            error = "interrupted by a backend restart"
        if not landed:
            return ChangeResult(
                change_id, AuditOutcome.FAILED, plan, error + "; nothing was written"
            )
        failed = KubeError(0, "Interrupted", error)
        result = await self._undo(plan, change_id, landed, plan.objects[len(landed)], failed)
        return result


def _who(actor: Actor) -> dict[str, Any]:
    """The audit record's fields that say who acted and from where."""
    return {
        "actor": actor.name,
        "role": actor.role,
        "source_address": actor.source_address,
        "ssh_client": actor.ssh_client,
        "user_agent": actor.user_agent,
    }


def _written_versions(objects: list[JsonObject]) -> dict[str, str]:
    out = {}
    for obj in objects:
        meta = obj.get("metadata") or {}
        kind = str(obj.get("kind") or "").lower()
        where = f"{meta['namespace']}/" if meta.get("namespace") else ""
        out[f"{kind}/{where}{meta.get('name')}"] = str(meta.get("resourceVersion") or "")
    return out


def _plan_refs(plan: Plan) -> list[dict[str, Any]]:
    """Enough of the plan to redo or undo it from the intent record alone."""
    return [{"ref": o.ref.as_dict(), "resourceVersion": o.resource_version} for o in plan.objects]


def _plan_from_record(intent: AuditRecord) -> Plan:
    params = dict(intent.parameters)
    refs = params.pop("plan")
    params.pop("fingerprint", None)
    befores, afters = intent.before, intent.after
    assert isinstance(befores, list) and isinstance(afters, list) and isinstance(refs, list)
    objects = []
    for ref, before, after in zip(refs, befores, afters, strict=True):
        fields = tuple(
            FieldChange(path, before["fields"][path], after["fields"][path])
            for path in before["fields"]
        )
        objects.append(ObjectChange(ObjectRef(**ref["ref"]), ref["resourceVersion"], fields))
    return Plan(intent.action, intent.target, list(intent.tenants), params, objects)


def _at_pointer(obj: Any, pointer: str) -> Any:
    """The value at a JSON pointer, None where it is absent."""
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(obj, list):
            index = int(part) if part.isdigit() else len(obj)
            obj = obj[index] if index < len(obj) else None
        elif isinstance(obj, dict):
            obj = obj.get(part)
        else:
            return None
        if obj is None:
            return None
    return obj


def _target_of(parameters: Mapping[str, Any]) -> str:
    """What an attempt that could not be planned was aimed at, as far as its parameters say."""
    for key in ("target", "name", "tenant"):
        if isinstance(parameters.get(key), str):
            return str(parameters[key])
    return ""
