"""rollout pending actions: the claim of the actuation protocol (DESIGN §10)

Revision ID: 0002
Revises: 0006
Create Date: 2026-12-01 21:55:12.660461
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision: str = "0002"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Text = sqlmodel.sql.sqltypes.AutoString


def columns() -> list[sa.Column[object]]:
    return [
        sa.Column("pending_action", Text(length=20), nullable=True),
        sa.Column("pending_actor", Text(length=64), nullable=True),
        sa.Column("pending_reason", Text(length=2000), nullable=True),
        sa.Column("pending_since", storage.types.UtcDateTime(), nullable=True),
        sa.Column("pending_key", Text(length=200), nullable=True),
        sa.Column("pending_owner", Text(length=120), nullable=True),
        sa.Column("pending_state", Text(length=20), nullable=True),
        sa.Column("pending_wave_index", sa.Integer(), nullable=True),
        sa.Column("pending_target", Text(length=100), nullable=True),
        sa.Column("pending_body", Text(), nullable=True),
        sa.Column("pending_note", Text(), nullable=True),
        sa.Column("queued_pause", Text(), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("rollout", schema=None) as batch_op:
        for column in columns():
            batch_op.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("rollout", schema=None) as batch_op:
        for column in reversed(columns()):
            batch_op.drop_column(column.name)
