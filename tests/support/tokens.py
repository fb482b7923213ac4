"""Tokens for tests: issued by the real token store into a backend's database."""

from __future__ import annotations

from datetime import datetime

from backend.db.engine import create_db_engine
from backend.db.migrate import upgrade
from backend.identity.tokens import TokenStore


def issue_token(
    database_url: str,
    operator: str = "admin",
    role: str = "admin",
    tenants: frozenset[str] | None = None,
    expires: datetime | None = None,
) -> str:
    """A new token in the database at ``database_url`` (migrated first: the backend using it
    may not have started yet)."""
    upgrade(database_url)
    engine = create_db_engine(database_url)
    try:
        token, _ = TokenStore(engine).create(operator, role, tenants, expires)
    finally:
        engine.dispose()
    return token


def bearer(token: str) -> dict[str, str]:
    """The header that authenticates a request with ``token``."""
    return {"Authorization": f"Bearer {token}"}


def admin_headers(database_url: str) -> dict[str, str]:
    """An admin's header for the backend using ``database_url`` (migrated first if need be)."""
    return bearer(issue_token(database_url))
