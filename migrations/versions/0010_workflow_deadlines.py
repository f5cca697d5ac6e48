"""``workflow_executions.deadline_at``: a workflow's deadline (its start + its ``timeout``).

Revision ID: 0010_workflow_deadlines
Revises: 0009_run_priority
Create Date: 2026-12-02

Fixed when a workflow with a workflow-level ``timeout`` is created; NULL for every other
workflow (and for every workflow stored before this revision). The deadline sweeps (the beat's,
``ruvon worker --embedded``'s) look for unfinished workflows past it: ``WHERE status IN
(<not terminal>) AND deadline_at <= now``, which ``(status, deadline_at)`` serves as
``(status, run_at)`` serves the timer sweep.

Expand only (a nullable column and an index): code of the parent revision runs against it
unchanged (it neither writes nor reads the column). Adding a nullable column without a default
is a catalog change on PostgreSQL and SQLite alike: no rewrite, no long lock.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_workflow_deadlines"
down_revision: str | Sequence[str] | None = "0009_run_priority"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
#: The oldest revision whose code still runs against the schema this revision leaves.
min_compatible_revision: str = "0008_step_run_trace_context"

TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    """Add the column (NULL: no deadline) and the sweep's index."""
    op.add_column("workflow_executions", sa.Column("deadline_at", TIMESTAMP, nullable=True))
    op.create_index(
        "ix_workflow_executions_status_deadline_at",
        "workflow_executions",
        ["status", "deadline_at"],
    )


def downgrade() -> None:
    """Drop them (workflows then run without their deadlines)."""
    op.drop_index("ix_workflow_executions_status_deadline_at", "workflow_executions")
    with op.batch_alter_table("workflow_executions") as batch:
        batch.drop_column("deadline_at")
