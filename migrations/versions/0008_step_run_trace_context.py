"""``step_runs.trace_context``: the W3C trace context a run continues (opt-in tracing).

Revision ID: 0008_step_run_trace_context
Revises: 0007_signals
Create Date: 2026-12-02

With ``RUVON_OTEL`` on, a run stores the ``traceparent`` of the span that enqueued it, so the
worker that claims it continues the workflow's trace (messages stay ids-only). NULL without
tracing, and for every run stored before this revision.

Expand only (a new nullable column): code of the parent revision runs against it unchanged (it
neither writes nor reads the column). Adding a nullable column without a default is a catalog
change on PostgreSQL and SQLite alike: no rewrite, no long lock.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_step_run_trace_context"
down_revision: str | Sequence[str] | None = "0007_signals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
#: The oldest revision whose code still runs against the schema this revision leaves.
min_compatible_revision: str = "0007_signals"

JSON_DOC = postgresql.JSONB(astext_type=sa.Text()).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    """Add the column (NULL: no trace context)."""
    op.add_column("step_runs", sa.Column("trace_context", JSON_DOC, nullable=True))


def downgrade() -> None:
    """Drop it (traces of runs still queued then start afresh on their workers)."""
    with op.batch_alter_table("step_runs") as batch:
        batch.drop_column("trace_context")
