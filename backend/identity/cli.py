"""``opsconsole token create|list|revoke``: operators' tokens, managed in the database directly.

Working on the database (``--database URL``, else ``OPSCONSOLE_DATABASE_URL``, else the backend's
default) means the first admin token can be made before anyone can log in: whoever can reach the
database already holds every right. Creations and revocations are written to the audit log with
the local login name as the actor and ``database`` as the source; the token itself never is.
Like every change, an intent is recorded first and nothing is done unless it is: with the audit
log unwritable, no token is created and none is revoked. Exit codes: 0 done, 1 not done (no such
token, or the database or its audit log refused), 2 bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import re
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from sqlalchemy.exc import SQLAlchemyError

from backend.audit.store import AuditStore, utc_timestamp
from backend.db.engine import create_db_engine
from backend.db.migrate import upgrade
from backend.identity.tokens import ROLES, Identity, TokenStore, new_token_id
from backend.schemas import AuditEntry, AuditOutcome, AuditStage
from backend.settings import Settings

EXIT_OK, EXIT_NOT_DONE, EXIT_USAGE = 0, 1, 2
_DURATION = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parser() -> argparse.ArgumentParser:
    """The ``token`` subcommand's verbs and options."""
    token = argparse.ArgumentParser(
        prog="opsconsole token", description="Operators' API tokens, in the database directly."
    )
    verbs = token.add_subparsers(dest="token_command", required=True)
    create = verbs.add_parser("create", help="issue a token (printed once, never stored)")
    create.add_argument("--operator", required=True, help="who the token is for")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--tenants", help="a,b: only these tenants (default: every tenant)")
    create.add_argument("--expires", help="lifetime: 90m, 12h, 30d, 2w (default: no expiry)")
    listing = verbs.add_parser("list", help="every token issued, without the tokens")
    revoke = verbs.add_parser("revoke", help="refuse a token from now on")
    revoke.add_argument("id", help="the token's id, as token list shows it")
    for verb in (create, listing, revoke):
        verb.add_argument("--database", help="SQLAlchemy URL (env OPSCONSOLE_DATABASE_URL)")
        verb.add_argument("--output", choices=["text", "json"], default="text")
    return token


def parse_lifetime(value: str) -> timedelta:
    match = _DURATION.match(value.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{value!r} is not a lifetime: use 90m, 12h, 30d or 2w")
    amount, unit = match.groups()
    return timedelta(**{_UNITS[unit]: int(amount)})


def parse_tenants(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    tenants = frozenset(t.strip() for t in value.split(",") if t.strip())
    if not tenants:
        raise ValueError("--tenants names no tenant: leave it out for every tenant")
    return tenants


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        url = args.database or Settings().database_url
        if args.token_command == "create":
            tenants = parse_tenants(args.tenants)
            lifetime = parse_lifetime(args.expires) if args.expires else None
    except ValueError as exc:
        print(f"opsconsole token: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        upgrade(url)
        engine = create_db_engine(url)
    except SQLAlchemyError as exc:
        return _not_done(f"the database cannot be reached ({_first_line(exc)})")
    try:
        store, audit = TokenStore(engine), AuditStore(engine)
        if args.token_command == "create":
            expires = datetime.now(UTC) + lifetime if lifetime else None
            grant = Grant(args.operator.strip(), args.role, tenants, expires)
            return _create(store, audit, grant, args.output, out)
        if args.token_command == "list":
            _show_list(store.list(), args.output, out)
            return EXIT_OK
        return _revoke(store, audit, args.id, args.output, out)
    except SQLAlchemyError as exc:
        return _not_done(f"the database cannot be reached ({_first_line(exc)})")
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Grant:
    """What ``token create`` was asked for."""

    operator: str
    role: str
    tenants: frozenset[str] | None
    expires: datetime | None

    def fields(self, token_id: str) -> dict[str, Any]:
        return {
            "id": token_id,
            "operator": self.operator,
            "role": self.role,
            "tenants": None if self.tenants is None else sorted(self.tenants),
            "expires": None if self.expires is None else utc_timestamp(self.expires),
        }


class NotRecorded(Exception):
    """The audit log refused a record; the message says why."""


def _create(store: TokenStore, audit: AuditStore, grant: Grant, output: str, out: TextIO) -> int:
    """Intent, token, outcome: no token exists that the audit log does not know of. A token whose
    outcome cannot be recorded is revoked and never shown."""
    token_id = new_token_id()
    change = TokenChange("token.create", token_id, grant.fields(token_id))
    try:
        _record(audit, change.intent(before=None, after=change.parameters))
    except NotRecorded as exc:
        return _not_done(f"no token created: {exc}")
    try:
        token, identity = store.create(
            grant.operator, grant.role, grant.tenants, grant.expires, token_id=change.token_id
        )
    except ValueError as exc:
        _record_quietly(audit, change.outcome(AuditOutcome.INVALID, error=str(exc)))
        print(f"opsconsole token: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        _record_quietly(audit, change.outcome(AuditOutcome.FAILED, error=_first_line(exc)))
        return _not_done(f"no token created ({_first_line(exc)})")
    try:
        _record(audit, change.outcome(AuditOutcome.SUCCEEDED, after=_fields(identity)))
    except NotRecorded as exc:
        return _not_done(f"token {change.token_id} not issued: {exc}; {_withdraw(store, identity)}")
    _show_created(token, identity, output, out)
    return EXIT_OK


def _withdraw(store: TokenStore, identity: Identity) -> str:
    """Revoke a token whose creation could not be recorded; say what became of it."""
    try:
        store.revoke(identity.token_id)
    except SQLAlchemyError as exc:
        return (
            f"it is not shown, so nobody holds it, but it could not be revoked "
            f"({_first_line(exc)}): revoke {identity.token_id} once the database is back"
        )
    return "it was revoked and is not shown"


def _revoke(store: TokenStore, audit: AuditStore, token_id: str, output: str, out: TextIO) -> int:
    """Intent, revocation, outcome; nothing is revoked unless the intent is on record."""
    current = store.get(token_id)
    if current is None:
        return _not_done(f"no token with id {token_id!r}")
    change = TokenChange("token.revoke", token_id, _fields(current))
    try:
        _record(audit, change.intent(before={"revoked": current.revoked}, after={"revoked": "now"}))
    except NotRecorded as exc:
        return _not_done(f"token {token_id} not revoked: {exc}")
    revoked = store.revoke(token_id)
    assert revoked is not None  # tokens are never deleted
    try:
        _record(
            audit,
            change.outcome(
                AuditOutcome.SUCCEEDED,
                before={"revoked": current.revoked},
                after={"revoked": revoked.revoked},
            ),
        )
    except NotRecorded as exc:
        # Revoked all the same: refusing a token is always the safe side.
        return _not_done(f"token {token_id} revoked, but {exc}")
    _show(revoked, output, out)
    return EXIT_OK


@dataclass(frozen=True)
class TokenChange:
    """The audit records of one token change: who ran the command, and the token's grant."""

    action: str
    token_id: str
    parameters: dict[str, Any]
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
            actor=_login_name(),
            role="admin",
            source_address="database",
            ssh_client=os.environ.get("SSH_CONNECTION") or None,
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
        raise NotRecorded(f"the audit log cannot be written ({_first_line(exc)})") from exc


def _record_quietly(audit: AuditStore, entry: AuditEntry) -> None:
    """A failure's outcome, if the database takes it (the failure is what gets reported)."""
    with contextlib.suppress(SQLAlchemyError):
        audit.append(entry)


def _not_done(message: str) -> int:
    print(f"opsconsole token: {message}", file=sys.stderr)
    return EXIT_NOT_DONE


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text.splitlines()[0] if text else ''}"


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (some containers)
        return f"uid {os.getuid()}"


def _fields(identity: Identity) -> dict[str, Any]:
    return {
        "id": identity.token_id,
        "operator": identity.operator,
        "role": identity.role,
        "tenants": None if identity.tenants is None else sorted(identity.tenants),
        "created": identity.created,
        "expires": identity.expires,
        "revoked": identity.revoked,
    }


def _show_created(token: str, identity: Identity, output: str, out: TextIO) -> None:
    if output == "json":
        out.write(json.dumps({"token": token, **_fields(identity)}, indent=2) + "\n")
        return
    out.write(f"{token}\n")
    print(
        f"token {identity.token_id} for {identity.operator} ({_grant(identity)}); it is shown "
        "only now: keep it in a file of mode 0600 or in OPSCONSOLE_TOKEN",
        file=sys.stderr,
    )


def _grant(identity: Identity) -> str:
    tenants = "every tenant" if identity.tenants is None else ", ".join(sorted(identity.tenants))
    expires = f", expires {identity.expires}" if identity.expires else ""
    return f"{identity.role} of {tenants}{expires}"


def _show(identity: Identity, output: str, out: TextIO) -> None:
    if output == "json":
        out.write(json.dumps(_fields(identity), indent=2) + "\n")
    else:
        out.write(f"revoked token {identity.token_id} of {identity.operator}\n")


def _show_list(identities: list[Identity], output: str, out: TextIO) -> None:
    if output == "json":
        out.write(json.dumps([_fields(i) for i in identities], indent=2) + "\n")
        return
    rows = [["ID", "OPERATOR", "ROLE", "TENANTS", "CREATED", "EXPIRES", "STATE"]]
    now = datetime.now(UTC)
    for i in identities:
        state = "revoked" if i.revoked else ("expired" if i.expired(now) else "valid")
        tenants = "*" if i.tenants is None else ",".join(sorted(i.tenants))
        rows.append(
            [
                i.token_id,
                i.operator,
                i.role,
                tenants,
                i.created[:19],
                (i.expires or "-")[:19],
                state,
            ]
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
