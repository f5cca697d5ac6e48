"""The join counter of each PARALLEL step run: branches recorded of branches expected.

Revision ID: 0003_parallel_joins
Revises: 0002_step_run_kinds
Create Date: 2026-11-25

A branch's commit increments its join's counter with an upsert (``INSERT ... ON CONFLICT DO
UPDATE SET recorded = recorded + 1 RETURNING``), which PostgreSQL serializes on the row: exactly
one commit sees ``recorded = expected`` and fires the join, in the same statement that stores the
branch outcome and closes its run.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_parallel_joins"
down_revision: str | Sequence[str] | None = "0002_step_run_kinds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    """Create parallel_joins."""
    op.create_table(
        "parallel_joins",
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("step_name", sa.Text(), nullable=False),
        sa.Column("run_number", sa.Integer(), nullable=False),
        sa.Column("expected", sa.Integer(), nullable=False),
        sa.Column("recorded", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflow_executions.id"],
            name=op.f("fk_parallel_joins_workflow_id_workflow_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "workflow_id", "step_name", "run_number", name=op.f("pk_parallel_joins")
        ),
    )


def downgrade() -> None:
    """Drop parallel_joins."""
    op.drop_table("parallel_joins")
