"""Converting Ruvon records to Redis values and back.

A workflow is a hash whose fields the scripts index or compare are plain text (``id``,
``workflow_type``, ``status``, ``version``, ``parent_execution_id`` and ``idempotency_key``, the
last two absent when None, and ``created_at`` in microseconds since the epoch, which is also its
index score); ``state``, ``definition_snapshot`` and ``runtime`` are orjson text, and the other
record fields share one JSON object, ``attributes`` (timestamps as ISO-8601 UTC text).
``workflow_type``, ``created_at`` and ``definition_snapshot`` are written once, by the create
script; saves neither send nor touch them. Fewer, larger fields matter: redis-py spends about a
microsecond per command argument and per reply element, more than Redis spends storing them.
Audit, log, compensation and schedule entries are compact JSON arrays (their workflow id or name
is in the key or hash field, not repeated); new fields go at the end of an array.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from ruvon.errors import PersistenceError
from ruvon.models import WorkflowStatus
from ruvon.records import (
    AuditEntry,
    CompensationEntry,
    ExecutionLogEntry,
    ScheduleRecord,
    SignalRecord,
    WorkflowRecord,
)
from ruvon.serialization import dumps, encode_state, loads

__all__ = [
    "Value",
    "audit_from_value",
    "compensation_from_value",
    "compensation_value",
    "log_from_value",
    "log_value",
    "micros",
    "optional",
    "pairs",
    "schedule_from_value",
    "schedule_value",
    "signal_from_value",
    "signal_value",
    "workflow_from_hash",
    "workflow_script_args",
]

Value = str | bytes | int
"""What the scripts accept as an argument."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_STATUSES = {status.value.encode(): status for status in WorkflowStatus}
_WAITING_FOR_TIMER = frozenset({WorkflowStatus.WAITING_TIMER, WorkflowStatus.WAITING_HUMAN})


def _utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC, as the SQL providers store them."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return _utc(value).isoformat() if value is not None else None


def _time(value: str | bytes | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.decode() if isinstance(value, bytes) else value)


def _required_time(value: str | bytes) -> datetime:
    parsed = _time(value)
    if parsed is None:
        raise PersistenceError(f"empty timestamp {value!r} in a Redis record (corrupt data?)")
    return parsed


def micros(value: datetime) -> int:
    """Microseconds since the epoch: an exact sorted-set score until the year 2255."""
    return (_utc(value) - _EPOCH) // _MICROSECOND


def optional(value: str | None) -> str:
    """A script argument for an optional text: ``-`` for None, else ``+`` and the text."""
    return "-" if value is None else "+" + value


def pairs(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    """A flat HGETALL reply from a script (field, value, field, value...) as a dict."""
    items = iter(flat)
    return dict(zip(items, items, strict=True))


def workflow_script_args(
    prefix: str,
    record: WorkflowRecord,
    *,
    version: int,
    expected_version: int,
    limit: int | None,
    audit: Iterable[AuditEntry],
    create: bool,
    compensations: Iterable[CompensationEntry] = (),
) -> list[Value]:
    """ARGV for the create (``create=True``) or save script (layout in ``scripts.lua``).

    The header carries id, status, parent and idempotency key, which the scripts index and also
    write as hash fields, and, for a create only, created_at and type; the field pairs carry the
    rest. A save leaves the fields fixed at creation as stored, so it sends no created_at, type
    or definition_snapshot (the snapshot is the largest of them and the save is the hot path).
    """
    status = WorkflowStatus(record.status)
    attributes = {
        "current_step": record.current_step,
        "workflow_version": record.workflow_version,
        "blocked_on_child_id": record.blocked_on_child_id,
        "saga_mode": record.saga_mode,
        "completed_steps": record.completed_steps,
        "run_at": _iso(record.run_at),
        "error": record.error,
        "metadata": record.metadata,
        "data_region": record.data_region,
        "priority": record.priority,
        "owner_id": record.owner_id,
        "org_id": record.org_id,
        "updated_at": _iso(record.updated_at),
        "completed_at": _iso(record.completed_at),
    }
    timer = "-"
    if record.run_at is not None and status in _WAITING_FOR_TIMER:
        timer = optional(str(micros(record.run_at)))
    deadline = create and record.deadline_at is not None
    pairs = (12 if deadline else 10) if create else 8  # field arguments: 2 per pair
    args: list[Value] = [
        prefix, record.id, micros(record.created_at) if create else "", status.value,
        record.workflow_type if create else "", optional(record.parent_execution_id),
        optional(record.idempotency_key), timer, expected_version, pairs,
        "version", version,
        "state", encode_state(record.state, workflow_id=record.id, limit=limit),
        "runtime", dumps(record.runtime),
        "attributes", dumps(attributes),
    ]  # fmt: skip
    if create:
        args += ("definition_snapshot", dumps(record.definition_snapshot))
        if record.deadline_at is not None:
            args += ("deadline", micros(record.deadline_at))
    for entry in audit:
        args += ("audit:", entry.workflow_id, audit_value(entry))
    for compensation in compensations:
        args += ("comp:", compensation.workflow_id, compensation_value(compensation))
    return args


def workflow_from_hash(raw: Mapping[bytes, bytes]) -> WorkflowRecord:
    """Inverse of the fields written from :func:`workflow_script_args` (create, then saves)."""
    try:
        attributes = loads(raw[b"attributes"])
        parent, key = raw.get(b"parent_execution_id"), raw.get(b"idempotency_key")
        return WorkflowRecord(
            id=raw[b"id"].decode(),
            workflow_type=raw[b"workflow_type"].decode(),
            status=_STATUSES[raw[b"status"]],
            state=loads(raw[b"state"]),
            definition_snapshot=loads(raw[b"definition_snapshot"]),
            version=int(raw[b"version"]),
            parent_execution_id=parent.decode() if parent is not None else None,
            idempotency_key=key.decode() if key is not None else None,
            runtime=loads(raw[b"runtime"]),
            current_step=attributes["current_step"],
            workflow_version=attributes["workflow_version"],
            blocked_on_child_id=attributes["blocked_on_child_id"],
            saga_mode=attributes["saga_mode"],
            completed_steps=attributes["completed_steps"],
            run_at=_time(attributes["run_at"]),
            error=attributes["error"],
            metadata=attributes["metadata"],
            data_region=attributes["data_region"],
            priority=attributes["priority"],
            owner_id=attributes["owner_id"],
            org_id=attributes["org_id"],
            created_at=_EPOCH + int(raw[b"created_at"]) * _MICROSECOND,
            updated_at=_required_time(attributes["updated_at"]),
            completed_at=_time(attributes["completed_at"]),
            deadline_at=_micros_time(raw.get(b"deadline")),
        )
    except KeyError as exc:
        name = exc.args[0].decode() if isinstance(exc.args[0], bytes) else exc.args[0]
        where = raw.get(b"id", b"?").decode(errors="replace")
        raise PersistenceError(
            f"Redis hash of workflow '{where}' has no valid '{name}' (written by another "
            "program or a newer Ruvon?)"
        ) from None


def _micros_time(value: bytes | None) -> datetime | None:
    return None if value is None else _EPOCH + int(value) * _MICROSECOND


def audit_value(entry: AuditEntry) -> bytes:
    """An audit entry as stored in ``audit:{workflow id}``."""
    return dumps([entry.event_type, entry.step_name, entry.old_status, entry.new_status,
                  entry.details, _iso(entry.recorded_at)])  # fmt: skip


def audit_from_value(workflow_id: str, value: bytes) -> AuditEntry:
    """Inverse of :func:`audit_value`."""
    event, step, old, new, details, at = loads(value)
    return AuditEntry(workflow_id, event, step, old, new, details, _required_time(at))


def log_value(entry: ExecutionLogEntry) -> bytes:
    """A log line as stored in ``logs:{workflow id}``."""
    return dumps([entry.level, entry.message, entry.step_name, entry.details,
                  _iso(entry.logged_at)])  # fmt: skip


def log_from_value(workflow_id: str, value: bytes) -> ExecutionLogEntry:
    """Inverse of :func:`log_value`."""
    level, message, step, details, at = loads(value)
    return ExecutionLogEntry(workflow_id, level, message, step, details, _required_time(at))


def compensation_value(entry: CompensationEntry) -> bytes:
    """A compensation outcome as stored in ``comp:{workflow id}``."""
    return dumps([entry.step_name, entry.function, entry.succeeded, entry.error,
                  entry.state_before, _iso(entry.executed_at)])  # fmt: skip


def compensation_from_value(workflow_id: str, value: bytes) -> CompensationEntry:
    """Inverse of :func:`compensation_value`."""
    step, function, succeeded, error, state, at = loads(value)
    return CompensationEntry(workflow_id, step, function, succeeded, error, state,
                             _required_time(at))  # fmt: skip


def signal_value(signal: SignalRecord) -> bytes:
    """A signal as stored in ``sig:{workflow id}``."""
    return dumps([signal.name, signal.event_id, signal.data, signal.sent_by,
                  _iso(signal.sent_at)])  # fmt: skip


def signal_from_value(workflow_id: str, value: bytes) -> SignalRecord:
    """Inverse of :func:`signal_value`."""
    name, event_id, data, sent_by, at = loads(value)
    return SignalRecord(workflow_id, name, event_id, data, sent_by, _required_time(at))


def schedule_value(schedule: ScheduleRecord) -> bytes:
    """A schedule as stored in the ``schedules`` hash under its name."""
    return dumps([schedule.workflow_type, schedule.cron, schedule.initial_data, schedule.enabled,
                  schedule.source_workflow_id, _iso(schedule.next_run_at),
                  _iso(schedule.last_run_at), _iso(schedule.created_at)])  # fmt: skip


def schedule_from_value(name: str, value: bytes) -> ScheduleRecord:
    """Inverse of :func:`schedule_value`."""
    kind, cron, data, enabled, source, next_at, last_at, created = loads(value)
    return ScheduleRecord(name, kind, cron, data, enabled, source, _time(next_at),
                          _time(last_at), _required_time(created))  # fmt: skip
