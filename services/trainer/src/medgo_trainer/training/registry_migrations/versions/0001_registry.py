"""The registry's tables: checkpoints (lineage, status, registration order) and the
one-row promotion pointer.

A SQLite registry written before migrations existed already has `checkpoints` (the
same columns, no `seq`): it is adopted, `seq` filled from SQLite's insertion order.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("checkpoints"):
        op.add_column("checkpoints", sa.Column("seq", sa.Integer))
        op.execute("UPDATE checkpoints SET seq = rowid")  # only SQLite files predate this
    else:
        op.create_table(
            "checkpoints",
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("parent", sa.Text, sa.ForeignKey("checkpoints.id")),
            sa.Column("base", sa.Text, nullable=False),
            sa.Column("stage", sa.Text, nullable=False),
            sa.Column("path", sa.Text, nullable=False),
            sa.Column("data_sha256", sa.Text, nullable=False),
            sa.Column("recipe", sa.Text, nullable=False),
            sa.Column("metrics", sa.Text, nullable=False),
            sa.Column("created_at", sa.Text, nullable=False),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("seq", sa.Integer),
        )
    promotion = op.create_table(
        "promotion",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("checkpoint_id", sa.Text, sa.ForeignKey("checkpoints.id")),
    )
    promoted = op.get_bind().execute(
        sa.text("SELECT id FROM checkpoints WHERE status = 'promoted'")).scalars().all()
    op.bulk_insert(promotion, [{"id": 1, "checkpoint_id": promoted[0] if promoted else None}])


def downgrade() -> None:
    op.drop_table("promotion")
    op.drop_column("checkpoints", "seq")
