"""An index on ``workflow_executions.updated_at``: the server's live streams read by it.

Revision ID: 0005_updated_at_index
Revises: 0004_whole_json_documents
Create Date: 2026-12-02

``ruvon server`` streams the workflows that changed (``GET /api/v1/events``, and one workflow's
commits) by asking the database, a few times a second, for the rows whose ``updated_at`` sorts
after the last one it saw. Without this index every such poll scans the table.

Expand only (a new index): code of the parent revision runs against it unchanged. On
PostgreSQL ``CREATE INDEX`` blocks writes to workflow_executions while it builds; on a large
table run the migration in a quiet moment (or create the index ``CONCURRENTLY`` by hand first,
under this name: the migration then only records the revision).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005_updated_at_index"
down_revision: str | Sequence[str] | None = "0004_whole_json_documents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
#: The oldest revision whose code still runs against the schema this revision leaves.
min_compatible_revision: str = "0004_whole_json_documents"

INDEX = "ix_workflow_executions_updated_at"


def upgrade() -> None:
    """Create the index (unless an operator already built it concurrently)."""
    op.create_index(INDEX, "workflow_executions", ["updated_at", "id"], if_not_exists=True)


def downgrade() -> None:
    """Drop the index."""
    op.drop_index(INDEX, table_name="workflow_executions", if_exists=True)
