"""Remember every idempotency key a rating was written with, not only the latest.

With only `ratings.idempotency_key`, a late retry of an older write (its key since
replaced by a newer one) looked new and overwrote the newer rating. Existing keys are
carried over.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rating_keys",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column(
            "rating_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("ratings.id", ondelete="CASCADE"),
            nullable=False,
        ),
    )
    op.create_index("ix_rating_keys_rating_id", "rating_keys", ["rating_id"])
    op.execute(
        "INSERT INTO rating_keys (key, rating_id) "
        "SELECT idempotency_key, id FROM ratings WHERE idempotency_key IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("rating_keys")
