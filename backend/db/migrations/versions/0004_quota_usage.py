"""The quota usage history: ``quota_usage``, one row per tenant, GPU model and recording.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quota_usage",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("tenant", sa.String(253), nullable=False),
        sa.Column("gpu_model", sa.String(253), nullable=False),
        sa.Column("allocated", sa.Integer(), nullable=False),
        sa.Column("busy", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
    )
    op.create_index("ix_quota_usage_at", "quota_usage", ["at"])


def downgrade() -> None:
    op.drop_table("quota_usage")
