"""Partial indexes: unfinished step runs only, workflows with a parent or a deadline only.

Revision ID: 0012_partial_indexes
Revises: 0011_flow_control
Create Date: 2026-12-08

Four indexes held an entry for every row although their queries only ever look for a few:

* ``ix_step_runs_status_run_at`` (claimable and due work): only ``QUEUED`` and ``RUNNING``
  runs; ``ix_step_runs_lease_expires_at`` (the zombie sweep): only ``RUNNING`` ones. Finished
  runs (``DONE``, ``FAILED``, ``SKIPPED``...) are nearly all of the table and never looked up
  by them, and a run's closing ``UPDATE`` no longer writes an entry into either;
* ``ix_workflow_executions_parent``: only children (``parent_execution_id IS NOT NULL``);
  ``ix_workflow_executions_status_deadline_at``: only workflows with a deadline. A top-level
  workflow without a ``timeout`` is in neither, so none of its saves writes into them.

Every query these indexes serve names the predicate (``status = 'QUEUED'``, ``status =
'RUNNING' AND lease_expires_at < now()``, ``parent_execution_id = $1``, ``deadline_at <= $1``),
so the planner still uses them: tests/integration/test_partial_indexes.py checks each plan.

Expand only (the same index names and columns, fewer rows in them): code of the parent
revision runs against it unchanged. Each index is dropped and built again; on PostgreSQL each
build scans its table once and blocks writes to it meanwhile: on a large table run the
migration in a quiet moment.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_partial_indexes"
down_revision: str | Sequence[str] | None = "0011_flow_control"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
#: The oldest revision whose code still runs against the schema this revision leaves.
min_compatible_revision: str = "0008_step_run_trace_context"

UNFINISHED_RUN = "status IN ('QUEUED', 'RUNNING')"
RUNNING_RUN = "status = 'RUNNING'"

#: (index, table, columns, predicate): each index as this revision leaves it.
PARTIAL = (
    ("ix_step_runs_status_run_at", "step_runs", ["status", "run_at"], UNFINISHED_RUN),
    ("ix_step_runs_lease_expires_at", "step_runs", ["lease_expires_at"], RUNNING_RUN),
    (
        "ix_workflow_executions_parent",
        "workflow_executions",
        ["parent_execution_id"],
        "parent_execution_id IS NOT NULL",
    ),
    (
        "ix_workflow_executions_status_deadline_at",
        "workflow_executions",
        ["status", "deadline_at"],
        "deadline_at IS NOT NULL",
    ),
)


def upgrade() -> None:
    """Rebuild each index with its predicate."""
    for name, table, columns, predicate in PARTIAL:
        op.drop_index(name, table_name=table)
        where = sa.text(predicate)
        op.create_index(name, table, columns, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    """Rebuild each index over every row again."""
    for name, table, columns, _ in PARTIAL:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns)
