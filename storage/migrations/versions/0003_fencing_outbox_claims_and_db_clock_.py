"""fencing: leases on the database's clock with an epoch; outbox claims, dead posts, rate limits

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-01 21:59:52.743599
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import storage.types

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _lease_table(expires_at: Any, *, epoch: bool) -> None:
    columns = [
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("expires_at", expires_at, nullable=False),
    ]
    if epoch:
        columns.append(sa.Column("epoch", sa.Integer(), nullable=False))
    op.create_table("lease", *columns, sa.PrimaryKeyConstraint("name"))


def upgrade() -> None:
    op.create_table(
        "slack_rate_limit",
        sa.Column("method", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("method"),
    )
    # The lease's expiry changes meaning (the database's unix seconds, not a replica's time).
    # Its one row is only the current election: dropped, the next renewal writes it afresh.
    op.drop_table("lease")
    _lease_table(sa.Float(), epoch=True)

    with op.batch_alter_table("outbox_post", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "client_msg_id",
                sqlmodel.sql.sqltypes.AutoString(length=40),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch_op.add_column(sa.Column("claim_epoch", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", storage.types.UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("dead_at", storage.types.UtcDateTime(), nullable=True))
    # Posts queued before the upgrade get a stable id of their own (new ones get a UUID).
    op.execute("UPDATE outbox_post SET client_msg_id = 'wavegate-outbox-' || id")
    with op.batch_alter_table("outbox_post", schema=None) as batch_op:
        batch_op.alter_column("client_msg_id", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("outbox_post", schema=None) as batch_op:
        batch_op.drop_column("dead_at")
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("claim_epoch")
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("client_msg_id")
    op.drop_table("lease")
    _lease_table(storage.types.UtcDateTime(), epoch=False)
    op.drop_table("slack_rate_limit")
