"""A workflow's state and definition snapshot as ``json``, compressed with lz4 where available.

Revision ID: 0004_whole_json_documents
Revises: 0003_parallel_joins
Create Date: 2026-11-25

The engine writes these two documents whole and reads them whole; nothing queries inside them.
As ``jsonb`` every save made PostgreSQL parse the state into its binary form and every load or
claim print it back to text: per MiB of state, 45 ms per UPDATE and 28 ms per read on the
benchmark machine, against 12 ms and 16 ms as ``json`` (stored as sent, validated only) and 6 ms
per UPDATE once TOAST compresses with lz4 instead of pglz (see docs/performance.md).

PostgreSQL only (SQLite stores TEXT either way). The type change rewrites workflow_executions
under an ACCESS EXCLUSIVE lock: on a large table, run it in a maintenance window. lz4 needs
PostgreSQL 14+ built with it (Debian's and the official images are); elsewhere the columns keep
the server's default compression. Values already stored keep theirs until their next save.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_whole_json_documents"
down_revision: str | Sequence[str] | None = "0003_parallel_joins"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("state", "definition_snapshot")


def upgrade() -> None:
    """state and definition_snapshot: jsonb -> json (lz4 where the server has it)."""
    _convert(postgresql.JSONB(), postgresql.JSON(), cast="json", compression="lz4")


def downgrade() -> None:
    """Back to jsonb with the server's default compression."""
    _convert(postgresql.JSON(), postgresql.JSONB(), cast="jsonb", compression="default")


def _convert(
    old: sa.types.TypeEngine[object],
    new: sa.types.TypeEngine[object],
    *,
    cast: str,
    compression: str,
) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for column in COLUMNS:
        op.alter_column(
            "workflow_executions",
            column,
            type_=new,
            existing_type=old,
            existing_nullable=False,
            postgresql_using=f"{column}::{cast}",
        )
    if _server_has_lz4(bind):
        op.execute(
            "ALTER TABLE workflow_executions "
            + ", ".join(f"ALTER COLUMN {c} SET COMPRESSION {compression}" for c in COLUMNS)
        )


def _server_has_lz4(bind: sa.engine.Connection) -> bool:
    """PostgreSQL 14+ built with lz4 lists it among default_toast_compression's values."""
    found = bind.execute(
        sa.text(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
    ).scalar()
    return bool(found)
