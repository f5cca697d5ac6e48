"""Flow control: concurrency slots, rate-limit cells and ``step_runs.reserved_step``.

Revision ID: 0011_flow_control
Revises: 0010_workflow_deadlines
Create Date: 2026-12-03

``concurrency_slots`` holds one row per holder or waiter of a ``concurrency`` key; a holder's
liveness is bound to its workflow and to its step run's lease (a cluster) or its process
(embedded), so a killed worker's slot frees with its lease. ``rate_limits`` keeps each
``rate_limit`` key's theoretical arrival time. ``step_runs.reserved_step`` marks a run deferred
to its rate-limit turn, whose next claim must not reserve again.

Expand only (two new tables, one nullable column): code of the parent revision runs against it
unchanged, never touching either.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_flow_control"
down_revision: str | Sequence[str] | None = "0010_workflow_deadlines"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
#: The oldest revision whose code still runs against the schema this revision leaves.
min_compatible_revision: str = "0008_step_run_trace_context"

TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    """Create the tables and add the column."""
    op.add_column("step_runs", sa.Column("reserved_step", sa.Text(), nullable=True))
    op.create_table(
        "concurrency_slots",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("step_name", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("slot_limit", sa.Integer(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("since", TIMESTAMP, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflow_executions.id"],
            name="fk_concurrency_slots_workflow_id_workflow_executions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key", "holder", name="pk_concurrency_slots"),
    )
    op.create_index("ix_concurrency_slots_workflow_id", "concurrency_slots", ["workflow_id"])
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("tat", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_rate_limits"),
    )


def downgrade() -> None:
    """Drop them (gated steps then run without their limits)."""
    op.drop_table("rate_limits")
    op.drop_index("ix_concurrency_slots_workflow_id", "concurrency_slots")
    op.drop_table("concurrency_slots")
    with op.batch_alter_table("step_runs") as batch:
        batch.drop_column("reserved_step")
