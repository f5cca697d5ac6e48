"""Converting between Ruvon records and asyncpg parameters and rows.

asyncpg maps ``timestamptz`` to aware ``datetime`` (UTC), ``boolean`` to ``bool`` and, with the
codecs of :mod:`.codecs`, ``jsonb`` to Python values, so little is left to convert. The
queries in ``sql/workflows.sql`` select and bind ``workflow_executions`` columns in the order of
the :class:`~ruvon.records.WorkflowRecord` fields, so a row becomes a record positionally.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ruvon.models import WorkflowStatus
from ruvon.records import (
    AuditEntry,
    CompensationEntry,
    ExecutionLogEntry,
    ScheduleRecord,
    WorkflowRecord,
)
from ruvon.serialization import dumps, encode_state

__all__ = [
    "audit_from_row",
    "audit_json",
    "compensation_from_row",
    "compensation_params",
    "execution_log_from_row",
    "execution_log_params",
    "schedule_from_row",
    "schedule_params",
    "utc",
    "workflow_from_row",
    "workflow_from_values",
    "workflow_params",
]

_STATUSES = {status.value: status for status in WorkflowStatus}
_STATUS_COLUMN = 2  # position of `status` in the workflow column order


def utc(value: datetime | None) -> datetime | None:
    """Naive datetimes are UTC (as on every backend); asyncpg would read them as local time."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def workflow_params(record: WorkflowRecord, version: int, limit: int | None) -> tuple[Any, ...]:
    """Parameters $1..$25 of create_workflow: save's $1..$21, then the fields fixed at creation.

    The state is encoded here, before any I/O, so an invalid or oversized state is rejected
    without touching the database.
    """
    return (
        *save_params(record, version, limit),
        record.workflow_type,
        dumps(record.definition_snapshot),
        utc(record.created_at),
        utc(record.deadline_at),
    )


def workflow_from_row(row: asyncpg.Record) -> WorkflowRecord:
    """A ``workflow_executions`` row selected in field order."""
    return workflow_from_values(list(row))


def workflow_from_values(values: list[Any]) -> WorkflowRecord:
    """The record of ``workflow_executions`` columns in field order (a list it may change)."""
    values[_STATUS_COLUMN] = _STATUSES[values[_STATUS_COLUMN]]
    return WorkflowRecord(*values)


def audit_json(audit: Sequence[AuditEntry]) -> bytes:
    """All audit rows of one write as one JSON array of arrays (one ``jsonb`` parameter).

    One parameter keeps the write a single statement however many rows it carries; naive
    timestamps are read as UTC because every session runs with ``TimeZone=UTC``.
    """
    return dumps(
        [
            (e.workflow_id, e.event_type, e.step_name, e.old_status, e.new_status, e.details,
             e.recorded_at)
            for e in audit
        ]
    )  # fmt: skip


def audit_from_row(row: asyncpg.Record) -> AuditEntry:
    """A ``workflow_audit_log`` row selected in field order."""
    return AuditEntry(*row)


def save_params(record: WorkflowRecord, version: int, limit: int | None) -> tuple[Any, ...]:
    """Parameters $1..$21 of save_workflow: the mutable fields only; ``version`` goes to $6."""
    return (
        record.id,
        str(record.status),
        encode_state(record.state, workflow_id=record.id, limit=limit),
        record.current_step,
        record.workflow_version,
        version,
        record.parent_execution_id,
        record.blocked_on_child_id,
        record.idempotency_key,
        record.saga_mode,
        dumps(record.completed_steps),
        utc(record.run_at),
        record.error,
        dumps(record.runtime),
        dumps(record.metadata),
        record.data_region,
        record.priority,
        record.owner_id,
        record.org_id,
        utc(record.updated_at),
        utc(record.completed_at),
    )


def execution_log_params(entry: ExecutionLogEntry) -> tuple[Any, ...]:
    """Parameters of insert_execution_log."""
    return (entry.workflow_id, entry.level, entry.message, entry.step_name,
            dumps(entry.details), utc(entry.logged_at))  # fmt: skip


def execution_log_from_row(row: asyncpg.Record) -> ExecutionLogEntry:
    """A ``workflow_execution_logs`` row selected in field order."""
    return ExecutionLogEntry(*row)


def compensation_params(entry: CompensationEntry) -> tuple[Any, ...]:
    """Parameters of insert_compensation."""
    return (entry.workflow_id, entry.step_name, entry.function, entry.succeeded, entry.error,
            dumps(entry.state_before), utc(entry.executed_at))  # fmt: skip


def compensation_from_row(row: asyncpg.Record) -> CompensationEntry:
    """A ``compensation_log`` row selected in field order."""
    return CompensationEntry(*row)


def schedule_params(schedule: ScheduleRecord) -> tuple[Any, ...]:
    """Parameters of upsert_schedule."""
    return (schedule.name, schedule.workflow_type, schedule.cron, dumps(schedule.initial_data),
            schedule.enabled, schedule.source_workflow_id, utc(schedule.next_run_at),
            utc(schedule.last_run_at), utc(schedule.created_at))  # fmt: skip


def schedule_from_row(row: asyncpg.Record) -> ScheduleRecord:
    """A ``scheduled_workflows`` row selected in field order."""
    return ScheduleRecord(*row)
