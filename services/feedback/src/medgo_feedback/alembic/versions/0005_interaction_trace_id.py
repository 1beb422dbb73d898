"""The OpenTelemetry trace id of each interaction (nullable: tracing is optional).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("interactions", sa.Column("trace_id", sa.String(32), nullable=True))


def downgrade() -> None:
    # Batch mode: SQLite cannot drop a column in place.
    with op.batch_alter_table("interactions") as batch:
        batch.drop_column("trace_id")
