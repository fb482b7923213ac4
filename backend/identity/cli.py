"""``opsconsole token create|list|revoke``: operators' tokens, managed in the database directly.

Working on the database (``--database URL``, else ``OPSCONSOLE_DATABASE_URL``, else the backend's
default) means the first admin token can be made before anyone can log in: whoever can reach the
database already holds every right. Creations and revocations are written to the audit log with
the local login name as the actor and ``database`` as the source, intent first, failing closed
(``backend.identity.changes``). Exit codes: 0 done, 1 not done (no such token, or the database
or its audit log refused), 2 bad usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError

from backend.audit.store import AuditStore
from backend.db.engine import create_db_engine
from backend.db.migrate import upgrade
from backend.identity.changes import (
    Grant,
    NotDone,
    Requester,
    create_token,
    first_line,
    identity_fields,
    revoke_token,
)
from backend.identity.tokens import ROLES, Identity, TokenStore
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
        return _not_done(f"the database cannot be reached ({first_line(exc)})")
    requester = Requester(_login_name(), os.environ.get("SSH_CONNECTION") or None)
    try:
        store, audit = TokenStore(engine), AuditStore(engine)
        if args.token_command == "create":
            expires = datetime.now(UTC) + lifetime if lifetime else None
            grant = Grant(args.operator.strip(), args.role, tenants, expires)
            token, identity = create_token(store, audit, grant, requester)
            _show_created(token, identity, args.output, out)
        elif args.token_command == "list":
            _show_list(store.list(), args.output, out)
        else:
            _show(revoke_token(store, audit, args.id, requester), args.output, out)
        return EXIT_OK
    except ValueError as exc:
        print(f"opsconsole token: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NotDone as exc:
        return _not_done(str(exc))
    except SQLAlchemyError as exc:
        return _not_done(f"the database cannot be reached ({first_line(exc)})")
    finally:
        engine.dispose()


def _not_done(message: str) -> int:
    print(f"opsconsole token: {message}", file=sys.stderr)
    return EXIT_NOT_DONE


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (some containers)
        return f"uid {os.getuid()}"


def _show_created(token: str, identity: Identity, output: str, out: TextIO) -> None:
    if output == "json":
        out.write(json.dumps({"token": token, **identity_fields(identity)}, indent=2) + "\n")
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
        out.write(json.dumps(identity_fields(identity), indent=2) + "\n")
    else:
        out.write(f"revoked token {identity.token_id} of {identity.operator}\n")


def _show_list(identities: list[Identity], output: str, out: TextIO) -> None:
    if output == "json":
        out.write(json.dumps([identity_fields(i) for i in identities], indent=2) + "\n")
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
