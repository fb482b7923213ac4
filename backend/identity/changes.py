"""Token creations and revocations, recorded like every change: intent, change, outcome.

Nothing is done unless the intent is on record: with the audit log unwritable no token is created
and none is revoked. A token whose outcome cannot be recorded is revoked and never handed out, so
no token anyone holds is missing from the log. The records name a token by its public id and its
grant; the token itself never is.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from backend.audit.store import AuditStore, utc_timestamp
from backend.identity.tokens import Identity, TokenStore, new_token_id
from backend.schemas import AuditEntry, AuditOutcome, AuditStage


class NotDone(Exception):
    """The change was not made (or was withdrawn); the message says why, for the operator."""


@dataclass(frozen=True)
class Requester:
    """Who asks, as the records name them: working on the database directly, an admin."""

    actor: str
    ssh_client: str | None = None


@dataclass(frozen=True)
class Grant:
    """What a new token is to allow."""

    operator: str
    role: str
    tenants: frozenset[str] | None = None
    expires: datetime | None = None

    def fields(self, token_id: str) -> dict[str, Any]:
        return {
            "id": token_id,
            "operator": self.operator,
            "role": self.role,
            "tenants": None if self.tenants is None else sorted(self.tenants),
            "expires": None if self.expires is None else utc_timestamp(self.expires),
        }


def identity_fields(identity: Identity) -> dict[str, Any]:
    """A token's grant and state, as records and listings show it."""
    return {
        "id": identity.token_id,
        "operator": identity.operator,
        "role": identity.role,
        "tenants": None if identity.tenants is None else sorted(identity.tenants),
        "created": identity.created,
        "expires": identity.expires,
        "revoked": identity.revoked,
    }


def create_token(
    store: TokenStore, audit: AuditStore, grant: Grant, requester: Requester
) -> tuple[str, Identity]:
    """A new token, on record; ``NotDone`` when it could not be, ``ValueError`` for a grant the
    store refuses (recorded as invalid)."""
    token_id = new_token_id()
    change = _TokenChange("token.create", token_id, grant.fields(token_id), requester)
    try:
        _record(audit, change.intent(before=None, after=change.parameters))
    except NotDone as exc:
        raise NotDone(f"no token created: {exc}") from exc
    try:
        token, identity = store.create(
            grant.operator, grant.role, grant.tenants, grant.expires, token_id=token_id
        )
    except ValueError as exc:
        _record_quietly(audit, change.outcome(AuditOutcome.INVALID, error=str(exc)))
        raise
    except SQLAlchemyError as exc:
        _record_quietly(audit, change.outcome(AuditOutcome.FAILED, error=first_line(exc)))
        raise NotDone(f"no token created ({first_line(exc)})") from exc
    try:
        _record(audit, change.outcome(AuditOutcome.SUCCEEDED, after=identity_fields(identity)))
    except NotDone as exc:
        raise NotDone(f"token {token_id} not issued: {exc}; {_withdraw(store, token_id)}") from exc
    return token, identity


def revoke_token(
    store: TokenStore, audit: AuditStore, token_id: str, requester: Requester
) -> Identity:
    """Revoke a token, on record; ``NotDone`` for an unknown token or an unwritable log."""
    current = store.get(token_id)
    if current is None:
        raise NotDone(f"no token with id {token_id!r}")
    change = _TokenChange("token.revoke", token_id, identity_fields(current), requester)
    before = {"revoked": current.revoked}
    try:
        _record(audit, change.intent(before=before, after={"revoked": "now"}))
    except NotDone as exc:
        raise NotDone(f"token {token_id} not revoked: {exc}") from exc
    revoked = store.revoke(token_id)
    assert revoked is not None  # tokens are never deleted
    after = {"revoked": revoked.revoked}
    try:
        _record(audit, change.outcome(AuditOutcome.SUCCEEDED, before=before, after=after))
    except NotDone as exc:  # revoked all the same: refusing a token is always the safe side
        raise NotDone(f"token {token_id} revoked, but {exc}") from exc
    return revoked


def _withdraw(store: TokenStore, token_id: str) -> str:
    """Revoke a token whose creation could not be recorded; say what became of it."""
    try:
        store.revoke(token_id)
    except SQLAlchemyError as exc:
        return (
            f"it is not shown, so nobody holds it, but it could not be revoked "
            f"({first_line(exc)}): revoke {token_id} once the database is back"
        )
    return "it was revoked and is not shown"


@dataclass(frozen=True)
class _TokenChange:
    """The records of one token change, linked by their change id."""

    action: str
    token_id: str
    parameters: dict[str, Any]
    requester: Requester
    change_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def intent(self, before: Any, after: Any) -> AuditEntry:
        return self._entry(AuditStage.INTENT, before=before, after=after)

    def outcome(
        self, outcome: AuditOutcome, before: Any = None, after: Any = None, error: str | None = None
    ) -> AuditEntry:
        return self._entry(
            AuditStage.OUTCOME, before=before, after=after, outcome=outcome, error=error
        )

    def _entry(self, stage: AuditStage, **fields: Any) -> AuditEntry:
        return AuditEntry(
            change_id=self.change_id,
            stage=stage,
            actor=self.requester.actor,
            role="admin",
            source_address="database",
            ssh_client=self.requester.ssh_client,
            user_agent="opsconsole token",
            action=self.action,
            target=f"token/{self.token_id}",
            parameters=self.parameters,
            **fields,
        )


def _record(audit: AuditStore, entry: AuditEntry) -> None:
    try:
        audit.append(entry)
    except SQLAlchemyError as exc:
        raise NotDone(f"the audit log cannot be written ({first_line(exc)})") from exc


def _record_quietly(audit: AuditStore, entry: AuditEntry) -> None:
    """A failure's outcome, if the database takes it (the failure is what gets reported)."""
    with contextlib.suppress(SQLAlchemyError):
        audit.append(entry)


def first_line(exc: Exception) -> str:
    """``OperationalError: connection refused``: the exception's class and first line."""
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text.splitlines()[0] if text else ''}"
