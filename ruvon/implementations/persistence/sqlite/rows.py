"""Converting between Ruvon records and SQLite rows and parameters.

SQLite has no timestamp, JSON or boolean types, so timestamps are stored as ISO-8601 UTC text
(text order is then time order), JSON columns as TEXT and booleans as 0/1. These helpers do that
conversion both ways for :mod:`ruvon.implementations.persistence.sqlite`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ruvon.errors import PersistenceError
from ruvon.models import WorkflowStatus
from ruvon.records import AuditEntry, WorkflowRecord
from ruvon.serialization import datetime_to_text, dumps, encode_state, loads, text_to_datetime

__all__ = [
    "Row",
    "audit_rows",
    "dicts",
    "json",
    "text",
    "time",
    "time_or_none",
    "workflow_from_row",
    "workflow_params",
]

Row = tuple[Any, ...]
_STATUSES = {status.value: status for status in WorkflowStatus}
_ZERO = timedelta(0)


def text(value: datetime | None) -> str | None:
    """UTC ISO text (naive values are taken as UTC) so text order is time order."""
    if value is None:
        return None
    if value.tzinfo is not UTC:  # the engine's clock gives UTC already: skip the checks
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        elif value.utcoffset() != _ZERO:
            value = value.astimezone(UTC)
    return datetime_to_text(value)


def time_or_none(value: str | None) -> datetime | None:
    """Stored text back to an aware UTC datetime (rows written elsewhere may lack the offset)."""
    parsed = text_to_datetime(value)
    if parsed is None or parsed.tzinfo is UTC:
        return parsed
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def time(value: str) -> datetime:
    """A NOT NULL timestamp column."""
    parsed = time_or_none(value)
    if parsed is None:
        raise PersistenceError(f"empty timestamp {value!r} in a NOT NULL column (corrupt row?)")
    return parsed


def json(value: Any) -> str:
    """``value`` as JSON text for a TEXT column."""
    return dumps(value).decode()


def workflow_params(
    record: WorkflowRecord, version: int, limit: int | None, *, insert: bool = True
) -> dict[str, Any]:
    """Named parameters for insert_workflow: the columns are named after the fields.

    ``insert=False`` is for update_workflow and update_workflow_indexed, which never write the
    columns fixed at insert: those are not encoded (their keys keep the Python values, unused).
    """
    params = record.__dict__.copy()
    params.update(
        status=str(record.status),
        state=encode_state(record.state, workflow_id=record.id, limit=limit).decode(),
        version=version,
        saga_mode=int(record.saga_mode),
        completed_steps=json(record.completed_steps),
        run_at=text(record.run_at),
        runtime=json(record.runtime),
        metadata=json(record.metadata),
        updated_at=text(record.updated_at),
        completed_at=text(record.completed_at),
    )
    if insert:
        params.update(
            definition_snapshot=json(record.definition_snapshot),
            created_at=text(record.created_at),
            deadline_at=text(record.deadline_at),
        )
    return params


def workflow_from_row(row: dict[str, Any]) -> WorkflowRecord:
    """Inverse of :func:`workflow_params` for a row as a column-name dict."""
    for column in ("state", "definition_snapshot", "completed_steps", "runtime", "metadata"):
        row[column] = loads(row[column])
    row.update(
        status=_STATUSES[row["status"]],
        saga_mode=bool(row["saga_mode"]),
        run_at=time_or_none(row["run_at"]),
        created_at=time(row["created_at"]),
        updated_at=time(row["updated_at"]),
        completed_at=time_or_none(row["completed_at"]),
        deadline_at=time_or_none(row["deadline_at"]),
    )
    return WorkflowRecord(**row)


def dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    """The cursor's remaining rows as column-name dicts."""
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def audit_rows(audit: Sequence[AuditEntry]) -> list[Row]:
    """Parameter tuples for insert_audit, in its column order."""
    return [
        (e.workflow_id, e.event_type, e.step_name, e.old_status, e.new_status,
         json(e.details), text(e.recorded_at))
        for e in audit
    ]  # fmt: skip
