"""Indexes for the id and idempotency-key prefix filters (PostgreSQL).

Revision ID: 0006_prefix_indexes
Revises: 0005_updated_at_index
Create Date: 2026-12-02

``GET /api/v1/workflows?id_prefix=`` (and ``idempotency_key_prefix``, ``ruvon list``) reads the
ids that start with a text as a range in byte order (``~>=~`` / ``~<~``). The primary key's
index cannot serve that unless the database's collation is C; these ``text_pattern_ops``
indexes can, whatever the collation. Before them such a page scanned the whole table: 50-90 ms
at 100,000 workflows (docs/performance.md, "Ruvon Server"). SQLite compares bytes, so its
existing indexes serve the range: nothing to do there.

Expand only (new indexes): code of the parent revision runs against them unchanged. On
PostgreSQL ``CREATE INDEX`` blocks writes to workflow_executions while it builds; on a large
table run the migration in a quiet moment (or create the indexes ``CONCURRENTLY`` by hand first,
under these names: the migration then only records the revision).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_prefix_indexes"
down_revision: str | Sequence[str] | None = "0005_updated_at_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
#: The oldest revision whose code still runs against the schema this revision leaves.
min_compatible_revision: str = "0005_updated_at_index"

ID_INDEX = "ix_workflow_executions_id_pattern"
KEY_INDEX = "ix_workflow_executions_idempotency_key_pattern"


def _postgres() -> bool:
    return op.get_context().dialect.name == "postgresql"


def upgrade() -> None:
    """Create both indexes on PostgreSQL (unless an operator already built them)."""
    if not _postgres():
        return
    op.create_index(
        ID_INDEX,
        "workflow_executions",
        ["id"],
        postgresql_ops={"id": "text_pattern_ops"},
        if_not_exists=True,
    )
    op.create_index(
        KEY_INDEX,
        "workflow_executions",
        ["idempotency_key"],
        postgresql_ops={"idempotency_key": "text_pattern_ops"},
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        if_not_exists=True,
    )


def downgrade() -> None:
    """Drop them."""
    if not _postgres():
        return
    op.drop_index(KEY_INDEX, table_name="workflow_executions", if_exists=True)
    op.drop_index(ID_INDEX, table_name="workflow_executions", if_exists=True)
