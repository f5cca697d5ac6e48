"""Every table Ruvon stores, as SQLAlchemy Core ``Table`` objects on one ``MetaData``.

This module is the single source of truth: Alembic migrations (``migrations/``) are generated
from it and checked against it, for PostgreSQL and SQLite alike. Runtime queries are raw SQL
(asyncpg / sqlite3), so nothing here is imported on the hot path.

Types differ per dialect: JSON is JSONB on PostgreSQL and TEXT on SQLite, timestamps are
``timestamptz`` on PostgreSQL and ISO-8601 TEXT on SQLite, autoincrement keys are BIGINT
identities on PostgreSQL and rowid aliases on SQLite.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Dialect-specific column types.
JSON_DOC: TypeEngine[Any] = JSONB().with_variant(Text(), "sqlite")
TIMESTAMP: TypeEngine[Any] = DateTime(timezone=True).with_variant(Text(), "sqlite")
SERIAL: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")

_EMPTY_OBJECT = text("'{}'")
_EMPTY_ARRAY = text("'[]'")


def _workflow_fk(*, nullable: bool = False) -> Column[str]:
    return Column(
        "workflow_id",
        Text,
        ForeignKey("workflow_executions.id", ondelete="CASCADE"),
        nullable=nullable,
    )


workflow_executions = Table(
    "workflow_executions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("workflow_type", Text, nullable=False),
    Column("workflow_version", Text),
    Column("status", Text, nullable=False),
    Column("current_step", Integer, nullable=False, server_default=text("0")),
    Column("state", JSON_DOC, nullable=False),
    Column("definition_snapshot", JSON_DOC, nullable=False),
    Column("version", Integer, nullable=False),
    Column("parent_execution_id", Text),
    Column("blocked_on_child_id", Text),
    Column("idempotency_key", Text),
    Column("saga_mode", Boolean, nullable=False, server_default=text("false")),
    Column("completed_steps", JSON_DOC, nullable=False, server_default=_EMPTY_ARRAY),
    Column("run_at", TIMESTAMP),
    Column("error", Text),
    Column("runtime", JSON_DOC, nullable=False, server_default=_EMPTY_OBJECT),
    Column("metadata", JSON_DOC, nullable=False, server_default=_EMPTY_OBJECT),
    Column("data_region", Text),
    Column("priority", Integer, nullable=False, server_default=text("0")),
    Column("owner_id", Text),
    Column("org_id", Text),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("updated_at", TIMESTAMP, nullable=False),
    Column("completed_at", TIMESTAMP),
    UniqueConstraint("idempotency_key"),
    # Due timers and approval deadlines: WHERE status IN (...) AND run_at <= now().
    Index("ix_workflow_executions_status_run_at", "status", "run_at"),
    # `ruvon list --type --status` and per-type dashboards.
    Index("ix_workflow_executions_type_status", "workflow_type", "status"),
    # Children of a parent (fan-in reconciliation, `list_workflows(parent_execution_id=)`).
    Index("ix_workflow_executions_parent", "parent_execution_id"),
    # Newest-first listings.
    Index("ix_workflow_executions_created_at", "created_at"),
)

step_runs = Table(
    "step_runs",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    _workflow_fk(),
    Column("step_name", Text, nullable=False),
    # PARALLEL branch name; '' for a step that is not a branch (NULL would defeat the unique key).
    Column("branch", Text, nullable=False, server_default=text("''")),
    Column("run_number", Integer, nullable=False, server_default=text("1")),
    Column("status", Text, nullable=False),
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    Column("queue", Text, nullable=False, server_default=text("'default'")),
    Column("lease_owner", Text),
    Column("lease_expires_at", TIMESTAMP),
    Column("run_at", TIMESTAMP),
    Column("dispatched_at", TIMESTAMP),
    Column("started_at", TIMESTAMP),
    Column("finished_at", TIMESTAMP),
    Column("result", JSON_DOC),
    Column("error", Text),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("updated_at", TIMESTAMP, nullable=False),
    UniqueConstraint("workflow_id", "step_name", "branch", "run_number"),
    # Claimable and due work: WHERE status = 'QUEUED' AND run_at <= now().
    Index("ix_step_runs_status_run_at", "status", "run_at"),
    # Zombie sweep: running steps whose lease expired.
    Index("ix_step_runs_lease_expires_at", "lease_expires_at"),
    sqlite_autoincrement=True,
)

parallel_branch_results = Table(
    "parallel_branch_results",
    metadata,
    _workflow_fk(),
    Column("step_name", Text, nullable=False),
    Column("run_number", Integer, nullable=False),
    Column("branch", Text, nullable=False),
    Column("branch_index", Integer, nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Column("result", JSON_DOC),
    Column("error", Text),
    Column("recorded_at", TIMESTAMP, nullable=False),
    PrimaryKeyConstraint("workflow_id", "step_name", "run_number", "branch"),
)

workflow_audit_log = Table(
    "workflow_audit_log",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    _workflow_fk(),
    Column("event_type", Text, nullable=False),
    Column("step_name", Text),
    Column("old_status", Text),
    Column("new_status", Text),
    Column("details", JSON_DOC, nullable=False, server_default=_EMPTY_OBJECT),
    Column("recorded_at", TIMESTAMP, nullable=False),
    Index("ix_workflow_audit_log_workflow", "workflow_id", "id"),
    sqlite_autoincrement=True,
)

workflow_execution_logs = Table(
    "workflow_execution_logs",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    _workflow_fk(),
    Column("level", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("step_name", Text),
    Column("details", JSON_DOC, nullable=False, server_default=_EMPTY_OBJECT),
    Column("logged_at", TIMESTAMP, nullable=False),
    Index("ix_workflow_execution_logs_workflow", "workflow_id", "id"),
    sqlite_autoincrement=True,
)

compensation_log = Table(
    "compensation_log",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    _workflow_fk(),
    Column("step_name", Text, nullable=False),
    Column("function", Text, nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Column("error", Text),
    Column("state_before", JSON_DOC, nullable=False, server_default=_EMPTY_OBJECT),
    Column("executed_at", TIMESTAMP, nullable=False),
    Index("ix_compensation_log_workflow", "workflow_id", "id"),
    sqlite_autoincrement=True,
)

workflow_heartbeats = Table(
    "workflow_heartbeats",
    metadata,
    Column(
        "workflow_id",
        Text,
        ForeignKey("workflow_executions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("worker_id", Text, nullable=False),
    Column("current_step", Text),
    Column("last_heartbeat", TIMESTAMP, nullable=False),
    Column("metadata", JSON_DOC, nullable=False, server_default=_EMPTY_OBJECT),
    # Stale-heartbeat scans.
    Index("ix_workflow_heartbeats_last_heartbeat", "last_heartbeat"),
)

scheduled_workflows = Table(
    "scheduled_workflows",
    metadata,
    Column("name", Text, primary_key=True),
    Column("workflow_type", Text, nullable=False),
    Column("cron", Text, nullable=False),
    Column("initial_data", JSON_DOC, nullable=False, server_default=_EMPTY_OBJECT),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("source_workflow_id", Text),
    Column("next_run_at", TIMESTAMP),
    Column("last_run_at", TIMESTAMP),
    Column("created_at", TIMESTAMP, nullable=False),
    # Due schedules: WHERE enabled AND next_run_at <= now().
    Index("ix_scheduled_workflows_enabled_next_run_at", "enabled", "next_run_at"),
)

workflow_definitions = Table(
    "workflow_definitions",
    metadata,
    Column("definition_hash", Text, primary_key=True),
    Column("workflow_type", Text, nullable=False),
    Column("workflow_version", Text),
    Column("definition", JSON_DOC, nullable=False),
    Column("created_at", TIMESTAMP, nullable=False),
    Index("ix_workflow_definitions_type", "workflow_type", "workflow_version"),
)

worker_nodes = Table(
    "worker_nodes",
    metadata,
    Column("worker_id", Text, primary_key=True),
    Column("hostname", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("queues", JSON_DOC, nullable=False, server_default=_EMPTY_ARRAY),
    Column("status", Text, nullable=False),
    Column("started_at", TIMESTAMP, nullable=False),
    Column("last_seen_at", TIMESTAMP, nullable=False),
    Column("metadata", JSON_DOC, nullable=False, server_default=_EMPTY_OBJECT),
    Index("ix_worker_nodes_last_seen_at", "last_seen_at"),
)
