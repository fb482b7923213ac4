"""The audit log: ``audit_record`` (hash-chained records) and ``audit_tenant`` (tenant index).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_record",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("change_id", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("source_address", sa.String(256), nullable=True),
        sa.Column("ssh_client", sa.String(256), nullable=True),
        sa.Column("user_agent", sa.String(512), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("tenants", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("before", sa.Text(), nullable=False),
        sa.Column("after", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("resource_versions", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    for name, columns in {
        "ix_audit_record_actor_seq": ["actor", "seq"],
        "ix_audit_record_action_seq": ["action", "seq"],
        "ix_audit_record_target_seq": ["target", "seq"],
        "ix_audit_record_outcome_seq": ["outcome", "seq"],
        "ix_audit_record_at": ["at"],
        "ix_audit_record_change_id": ["change_id"],
    }.items():
        op.create_index(name, "audit_record", columns)
    op.create_table(
        "audit_tenant",
        sa.Column("tenant", sa.String(253), primary_key=True),
        sa.Column("seq", sa.Integer(), sa.ForeignKey("audit_record.seq"), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("audit_tenant")
    op.drop_table("audit_record")
