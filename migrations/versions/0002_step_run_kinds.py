"""Step runs get a kind (step, branch, join, advance) that is part of their identity.

Revision ID: 0002_step_run_kinds
Revises: 0001_initial
Create Date: 2026-11-25

The distributed runtime keeps four kinds of work in ``step_runs``: an ASYNC step, one PARALLEL
branch, the join of a PARALLEL step, and "advance" (move a workflow forward from where it is: its
start, a child that finished). The same step can have a step run and a join run, so the kind
joins the unique key that makes an enqueue idempotent. ``last_dispatched_at`` stays the column
``dispatched_at``; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_step_run_kinds"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_KEY = ["workflow_id", "step_name", "branch", "run_number"]
_NEW_KEY = ["workflow_id", "kind", "step_name", "branch", "run_number"]


def upgrade() -> None:
    """Add ``kind`` (existing rows are ASYNC step runs) and widen the unique key with it."""
    with op.batch_alter_table("step_runs") as batch:
        batch.add_column(
            sa.Column("kind", sa.Text(), server_default=sa.text("'step'"), nullable=False)
        )
        batch.drop_constraint(
            op.f("uq_step_runs_workflow_id_step_name_branch_run_number"), type_="unique"
        )
        batch.create_unique_constraint(
            op.f("uq_step_runs_workflow_id_kind_step_name_branch_run_number"), _NEW_KEY
        )


def downgrade() -> None:
    """Drop the kinds; runs other than ASYNC step runs go with them (they cannot be told apart)."""
    op.execute("DELETE FROM step_runs WHERE kind <> 'step'")
    with op.batch_alter_table("step_runs") as batch:
        batch.drop_constraint(
            op.f("uq_step_runs_workflow_id_kind_step_name_branch_run_number"), type_="unique"
        )
        batch.create_unique_constraint(
            op.f("uq_step_runs_workflow_id_step_name_branch_run_number"), _OLD_KEY
        )
        batch.drop_column("kind")
