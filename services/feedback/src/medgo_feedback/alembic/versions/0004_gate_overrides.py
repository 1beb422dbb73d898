"""Recorded overrides of the online canary gate (who went to 100 % against it, and why).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
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
        "gate_overrides",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("stable", sa.String(128), nullable=False),
        sa.Column("candidate", sa.String(128), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
    )
    op.create_index(
        "ix_gate_overrides_pair", "gate_overrides", ["stable", "candidate", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("gate_overrides")
