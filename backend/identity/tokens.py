"""Issuing, listing, revoking and checking bearer tokens in the database.

A token is ``opsc_`` followed by 43 random URL-safe characters (256 bits): shown once when it is
created, then only its SHA-256 is kept. Its public ``id`` (a short random hex string) names it in
listings, revocations and the audit log. ``lookup`` finds a token's identity by its hash.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, insert, select, update
from sqlmodel import SQLModel

from backend.audit.store import utc_timestamp
from backend.identity.tables import TokenRow

TOKEN_PREFIX = "opsc_"
ROLES = ("viewer", "operator", "admin")
TOKENS = SQLModel.metadata.tables[TokenRow.__tablename__]


@dataclass(frozen=True)
class Identity:
    """Who a token speaks for. ``tenants`` None: every tenant."""

    token_id: str
    operator: str
    role: str
    tenants: frozenset[str] | None
    created: str
    expires: str | None = None
    revoked: str | None = None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires is not None and self.expires <= utc_timestamp(now)


def new_token_id() -> str:
    """A token's public id; made before the token so that the audit intent can name it."""
    return secrets.token_hex(6)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _identity(row: Any) -> Identity:
    """A selected ``api_token`` row as an Identity."""
    return Identity(
        token_id=row.id,
        operator=row.operator,
        role=row.role,
        tenants=None if row.tenants is None else frozenset(orjson.loads(row.tenants)),
        created=row.created,
        expires=row.expires,
        revoked=row.revoked,
    )


class TokenStore:
    """The ``api_token`` table of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self,
        operator: str,
        role: str,
        tenants: frozenset[str] | None = None,
        expires: datetime | None = None,
        token_id: str | None = None,
    ) -> tuple[str, Identity]:
        """A new token and its identity (``token_id`` from ``new_token_id``, or a new one); the
        token is returned here and never again."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of: {', '.join(ROLES)}")
        if not operator.strip():
            raise ValueError("an operator name is required")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = token_id or new_token_id()
        row = {
            "id": token_id,
            "token_hash": token_hash(token),
            "operator": operator.strip(),
            "role": role,
            "tenants": None if tenants is None else orjson.dumps(sorted(tenants)).decode(),
            "created": utc_timestamp(),
            "expires": None if expires is None else utc_timestamp(expires),
            "revoked": None,
        }
        with self.engine.begin() as conn:
            conn.execute(insert(TOKENS), [row])
        identity = self.get(token_id)
        assert identity is not None
        return token, identity

    def list(self) -> list[Identity]:
        """Every token ever issued, oldest first (revoked and expired ones included)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(TOKENS).order_by(TOKENS.c.created, TOKENS.c.id)).all()
        return [_identity(row) for row in rows]

    def get(self, token_id: str) -> Identity | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(TOKENS).where(TOKENS.c.id == token_id)).first()
        return _identity(row) if row else None

    def revoke(self, token_id: str) -> Identity | None:
        """Revoke the token (again is harmless: the first time is kept); None if unknown."""
        with self.engine.begin() as conn:
            conn.execute(
                update(TOKENS)
                .where(TOKENS.c.id == token_id, TOKENS.c.revoked.is_(None))
                .values(revoked=utc_timestamp())
            )
        return self.get(token_id)

    def lookup(self, token: str) -> Identity | None:
        """The token's identity (revoked and expired ones too: the caller says why it refuses);
        None when no such token was issued."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                select(TOKENS).where(TOKENS.c.token_hash == token_hash(token))
            ).first()
        return _identity(row) if row else None
