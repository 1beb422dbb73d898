"""Interactions and ratings.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "interactions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("department", sa.String(128), nullable=True),
        sa.Column("checkpoint_id", sa.String(256), nullable=False),
        sa.Column("adapter", sa.String(256), nullable=True),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("prompt_key", sa.String(64), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("finish_reason", sa.String(32), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
    )
    op.create_index("ix_interactions_created_at", "interactions", ["created_at"])
    op.create_index(
        "ix_interactions_checkpoint_created", "interactions", ["checkpoint_id", "created_at"]
    )
    op.create_index("ix_interactions_prompt_key", "interactions", ["prompt_key"])
    op.create_table(
        "ratings",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column(
            "interaction_id",
            sa.Uuid(),
            sa.ForeignKey("interactions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("rater", sa.String(128), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reasons", sa.String(256), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("corrected_answer", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(128), nullable=True, unique=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("interaction_id", "rater", name="uq_ratings_interaction_rater"),
        sa.CheckConstraint(
            "verdict IN ('acceptable', 'unacceptable')", name="ck_ratings_verdict"
        ),
    )
    op.create_index("ix_ratings_created_at", "ratings", ["created_at"])


def downgrade() -> None:
    op.drop_table("ratings")
    op.drop_table("interactions")
