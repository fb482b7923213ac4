"""The ``api_token`` table: one row per token ever issued; the token itself is never stored.

``token_hash`` is the SHA-256 of the token (tokens are long random strings, so a plain hash is
enough: there is nothing to guess). ``tenants`` is a JSON list, NULL for every tenant. Times are
UTC text in the audit log's fixed-width format, so text order is time order; ``revoked`` is the
time of revocation, NULL while the token is valid.
"""

from __future__ import annotations

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel


class TokenRow(SQLModel, table=True):
    __tablename__ = "api_token"

    id: str = Field(primary_key=True, max_length=32)
    token_hash: str = Field(max_length=64, unique=True)
    operator: str = Field(max_length=256)
    role: str = Field(max_length=16)
    tenants: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created: str = Field(max_length=32)
    expires: str | None = Field(default=None, max_length=32)
    revoked: str | None = Field(default=None, max_length=32)
