"""``step_runs.priority``: the priority (0-9) a run inherits from its workflow.

Revision ID: 0009_run_priority
Revises: 0008_step_run_trace_context
Create Date: 2026-12-02

A run's priority decides its broker lane (kombu's Redis transport keeps one list per priority)
and the order in which the beat's sweeps take runs. Stored on the run, not only the workflow,
so the lost-message sweep can count a queue's messages lane by lane without a join.

Expand only: a NOT NULL column with a constant default is a catalog change on PostgreSQL (11+)
and SQLite alike (no rewrite, no long lock); code of the parent revision neither writes nor
reads it, and every run it stores gets priority 0, what it meant before this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_run_priority"
down_revision: str | Sequence[str] | None = "0008_step_run_trace_context"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
#: The oldest revision whose code still runs against the schema this revision leaves.
min_compatible_revision: str = "0008_step_run_trace_context"


def upgrade() -> None:
    """Add the column (0: the lowest priority, every run's until now)."""
    op.add_column(
        "step_runs",
        sa.Column("priority", sa.SmallInteger(), nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    """Drop it (queued runs are then announced at the default priority)."""
    with op.batch_alter_table("step_runs") as batch:
        batch.drop_column("priority")
