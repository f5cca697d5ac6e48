"""workflow_signals: named events sent to a workflow, kept until a WAIT_FOR_EVENT consumes them.

Revision ID: 0007_signals
Revises: 0006_prefix_indexes
Create Date: 2026-12-02

``ruvon signal ID NAME`` (``Client.signal``, ``POST /api/v1/workflows/{id}/signals/{name}``)
stores the event here first, so one sent before the workflow reaches its wait is kept; the
unique ``(workflow_id, event_id)`` makes a second send with the same event id a no-op. Which
signals a workflow consumed is recorded with the workflow (``runtime.signals_consumed``), in the
save of the transition that consumed it.

Expand only (a new table): code of the parent revision runs against it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_signals"
down_revision: str | Sequence[str] | None = "0006_prefix_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
#: The oldest revision whose code still runs against the schema this revision leaves.
min_compatible_revision: str = "0005_updated_at_index"

JSON_DOC = postgresql.JSONB(astext_type=sa.Text()).with_variant(sa.Text(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create workflow_signals."""
    op.create_table(
        "workflow_signals",
        sa.Column("id", SERIAL, sa.Identity(always=False), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("data", JSON_DOC, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("sent_by", sa.Text(), nullable=True),
        sa.Column("sent_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflow_executions.id"],
            name=op.f("fk_workflow_signals_workflow_id_workflow_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_signals")),
        sa.UniqueConstraint(
            "workflow_id", "event_id", name=op.f("uq_workflow_signals_workflow_id_event_id")
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_workflow_signals_workflow_name", "workflow_signals", ["workflow_id", "name", "id"]
    )


def downgrade() -> None:
    """Drop workflow_signals."""
    op.drop_index("ix_workflow_signals_workflow_name", table_name="workflow_signals")
    op.drop_table("workflow_signals")
