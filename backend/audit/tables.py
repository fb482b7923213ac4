"""The audit log's tables.

``audit_record`` holds one row per record; ``seq`` is assigned by the appender under a database
lock (never an autoincrement, whose gaps after a rollback would look like deleted rows).
JSON-valued fields are stored as canonical JSON text, the same on SQLite and PostgreSQL.
``audit_tenant`` indexes the tenants a record affects for the tenant filter; it is derived data,
the chained ``tenants`` field of the record is what counts.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel


class AuditRecordRow(SQLModel, table=True):
    __tablename__ = "audit_record"
    __table_args__ = (
        Index("ix_audit_record_actor_seq", "actor", "seq"),
        Index("ix_audit_record_action_seq", "action", "seq"),
        Index("ix_audit_record_target_seq", "target", "seq"),
        Index("ix_audit_record_outcome_seq", "outcome", "seq"),
        Index("ix_audit_record_at", "at"),
        Index("ix_audit_record_change_id", "change_id"),
    )

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    change_id: str = Field(max_length=64)
    stage: str = Field(max_length=16)
    at: str = Field(max_length=32, description="UTC, ISO 8601 with microseconds and a Z.")
    actor: str = Field(max_length=256)
    role: str = Field(max_length=32)
    source_address: str | None = Field(default=None, max_length=256)
    ssh_client: str | None = Field(default=None, max_length=256)
    user_agent: str | None = Field(default=None, max_length=512)
    action: str = Field(max_length=64)
    target: str = Field(max_length=512)
    tenants: str = Field(sa_column=Column(Text, nullable=False))
    reason: str = Field(sa_column=Column(Text, nullable=False))
    parameters: str = Field(sa_column=Column(Text, nullable=False))
    before: str = Field(sa_column=Column(Text, nullable=False))
    after: str = Field(sa_column=Column(Text, nullable=False))
    outcome: str | None = Field(default=None, max_length=16)
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    resource_versions: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditTenantRow(SQLModel, table=True):
    __tablename__ = "audit_tenant"

    tenant: str = Field(primary_key=True, max_length=253)
    seq: int = Field(primary_key=True, foreign_key="audit_record.seq")
