"""In-memory persistence: the fast twin of the SQLite and PostgreSQL providers.

It honours the same contract (``tests/contract/test_persistence.py`` runs against every
provider), so tests and benchmarks that use it exercise real persistence semantics: fenced saves,
atomic idempotent creates, audit rows written with the save, no aliasing between callers and
storage.

Aliasing is prevented by storing every mutable part of a record as orjson bytes and decoding a
fresh copy on each read; that is several times faster than ``copy.deepcopy`` and also proves the
state is JSON, as a durable backend would. One ``threading.Lock`` guards the tables, so one
instance may be shared by threads and event loops; encoding happens outside the lock.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from ruvon.clock import utc_now
from ruvon.errors import ConcurrencyConflict, PersistenceError, WorkflowNotFound
from ruvon.implementations.persistence.memory_flow_control import MemoryFlowControl
from ruvon.implementations.persistence.slot_book import SlotEntry
from ruvon.models import WorkflowStatus
from ruvon.providers.changes import ChangePosition, WorkflowChange
from ruvon.providers.runs import StepRunRecord, WorkWrites, reject_work
from ruvon.records import (
    AuditEntry,
    CompensationEntry,
    ExecutionLogEntry,
    ListPosition,
    ScheduleRecord,
    SignalRecord,
    WorkflowRecord,
)
from ruvon.serialization import dumps, encode_state, loads

__all__ = ["InMemoryPersistenceProvider", "MemoryPersistenceProvider"]

_WAITING_FOR_TIMER = frozenset({WorkflowStatus.WAITING_TIMER, WorkflowStatus.WAITING_HUMAN})

# A stored workflow is a shallow copy of the record's ``__dict__`` in which the JSON fields hold
# bytes and ``completed_steps`` a tuple; scalars and datetimes are immutable and shared safely.
_Stored = dict[str, Any]
# Log entries are frozen dataclasses whose one mutable field (a dict) is stored as bytes.
_Entry = TypeVar(
    "_Entry", AuditEntry, ExecutionLogEntry, CompensationEntry, ScheduleRecord, SignalRecord
)


class _SnapshotCodec:
    """Encodes definition snapshots, remembering recent ones by identity.

    A snapshot never changes once a workflow exists, and every save of a workflow passes the
    same dict, so re-encoding it on each save (the largest field) is pure waste on the hot path.
    The cache holds the dicts themselves, so an id is never confused with a recycled one.
    """

    __slots__ = ("_entries",)
    _SIZE = 256

    def __init__(self) -> None:
        self._entries: dict[int, tuple[dict[str, Any], bytes]] = {}

    def encode(self, snapshot: dict[str, Any]) -> bytes:
        hit = self._entries.get(id(snapshot))
        if hit is not None and hit[0] is snapshot:
            return hit[1]
        data = dumps(snapshot)
        if len(self._entries) >= self._SIZE:
            self._entries.pop(next(iter(self._entries)))
        self._entries[id(snapshot)] = (snapshot, data)
        return data


def _key_starts_with(key: str | None, prefix: str | None) -> bool:
    """No prefix matches every workflow; a prefix never matches one without a key."""
    return prefix is None or (key is not None and key.startswith(prefix))


def _encode_workflow(
    record: WorkflowRecord, version: int, limit: int | None, snapshots: _SnapshotCodec
) -> _Stored:
    stored = record.__dict__.copy()
    stored["state"] = encode_state(record.state, workflow_id=record.id, limit=limit)
    stored["definition_snapshot"] = snapshots.encode(record.definition_snapshot)
    stored["runtime"] = dumps(record.runtime)
    stored["metadata"] = dumps(record.metadata)
    stored["completed_steps"] = tuple(record.completed_steps)
    stored["version"] = version
    return stored


def _decode_workflow(stored: _Stored) -> WorkflowRecord:
    fields = stored.copy()
    fields["state"] = loads(fields["state"])
    fields["definition_snapshot"] = loads(fields["definition_snapshot"])
    fields["runtime"] = loads(fields["runtime"])
    fields["metadata"] = loads(fields["metadata"])
    fields["completed_steps"] = list(fields["completed_steps"])
    # Rebuild without __init__, as pickle does: every field is present and already typed.
    record = WorkflowRecord.__new__(WorkflowRecord)
    record.__dict__.update(fields)
    return record


def _aware(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC, as the SQL providers store them."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class MemoryPersistenceProvider(MemoryFlowControl):
    """A :class:`~ruvon.providers.persistence.PersistenceProvider` that keeps everything in RAM.

    ``max_state_bytes`` rejects larger serialized state with ``StateTooLargeError``.
    """

    def __init__(self, *, max_state_bytes: int | None = None) -> None:
        self.max_state_bytes = max_state_bytes
        self._lock = threading.Lock()
        self._snapshots = _SnapshotCodec()
        self._workflows: dict[str, _Stored] = {}
        # Insertion sequence breaks run_at ties in list_due_timers (earliest first).
        self._sequence: dict[str, int] = {}
        self._counter = itertools.count()
        self._by_idempotency_key: dict[str, str] = {}
        self._audit: dict[str, list[tuple[AuditEntry, bytes]]] = {}
        self._logs: dict[str, list[tuple[ExecutionLogEntry, bytes]]] = {}
        self._compensations: dict[str, list[tuple[CompensationEntry, bytes]]] = {}
        self._schedules: dict[str, tuple[ScheduleRecord, bytes]] = {}
        self._signals: dict[str, list[tuple[SignalRecord, bytes]]] = {}
        self._slots: dict[str, list[SlotEntry]] = {}
        self._rate_cells: dict[str, float] = {}

    async def initialize(self) -> None:
        """Nothing to open; present for the protocol."""

    async def close(self) -> None:
        """Nothing to release; the data stays until the instance is garbage collected."""

    async def create_workflow(
        self,
        record: WorkflowRecord,
        audit: Sequence[AuditEntry] = (),
        *,
        work: WorkWrites | None = None,
    ) -> tuple[WorkflowRecord, bool]:
        """Insert ``record`` at version 1, or return the one already started with its key."""
        reject_work(work, self)
        stored = _encode_workflow(record, 1, self.max_state_bytes, self._snapshots)
        frozen_audit = [(entry, dumps(entry.details)) for entry in audit]
        key = record.idempotency_key
        with self._lock:
            if key is not None and key in self._by_idempotency_key:
                return _decode_workflow(self._workflows[self._by_idempotency_key[key]]), False
            if record.id in self._workflows:
                raise PersistenceError(
                    f"workflow '{record.id}' already exists (workflow ids must be unique)"
                )
            self._check_known(e.workflow_id for e, _ in frozen_audit if e.workflow_id != record.id)
            self._workflows[record.id] = stored
            self._sequence[record.id] = next(self._counter)
            if key is not None:
                self._by_idempotency_key[key] = record.id
            self._audit[record.id] = []
            self._logs[record.id] = []
            self._compensations[record.id] = []
            self._append_audit(frozen_audit)
        record.version = 1
        return record, True

    async def load_workflow(self, workflow_id: str) -> WorkflowRecord:
        """Return a fresh copy of the stored record; ``WorkflowNotFound`` if there is none."""
        with self._lock:
            stored = self._workflows.get(workflow_id)
        if stored is None:
            raise WorkflowNotFound(workflow_id)
        # Stored dicts are replaced on save, never mutated, so decoding outside the lock is safe.
        return _decode_workflow(stored)

    async def save_workflow(
        self,
        record: WorkflowRecord,
        *,
        expected_version: int,
        audit: Sequence[AuditEntry] = (),
        work: WorkWrites | None = None,
        compensations: Sequence[CompensationEntry] = (),
    ) -> int:
        """Fenced save: store ``record`` (with its audit and compensation rows) if the stored
        version is ``expected_version``."""
        reject_work(work, self)
        new_version = expected_version + 1
        stored = _encode_workflow(record, new_version, self.max_state_bytes, self._snapshots)
        frozen_audit = [(entry, dumps(entry.details)) for entry in audit] if audit else []
        frozen_compensations = [(entry, dumps(entry.state_before)) for entry in compensations]
        with self._lock:
            current = self._workflows.get(record.id)
            if current is None:
                raise WorkflowNotFound(record.id)
            if current["version"] != expected_version:
                raise ConcurrencyConflict(record.id, expected_version)
            if frozen_audit:
                self._check_known(entry.workflow_id for entry, _ in frozen_audit)
            # Fixed at creation (see the Protocol): a save never changes them.
            for fixed in ("workflow_type", "definition_snapshot", "created_at", "deadline_at"):
                stored[fixed] = current[fixed]
            if stored["idempotency_key"] != current["idempotency_key"]:  # raises before writing
                self._rekey(record.id, current["idempotency_key"], stored["idempotency_key"])
            if frozen_compensations:
                self._check_known(entry.workflow_id for entry, _ in frozen_compensations)
            self._workflows[record.id] = stored
            self._append_audit(frozen_audit)
            for frozen in frozen_compensations:
                self._compensations[frozen[0].workflow_id].append(frozen)
        record.version = new_version
        return new_version

    async def find_by_idempotency_key(self, key: str) -> WorkflowRecord | None:
        """The workflow started with this idempotency key, if any."""
        with self._lock:
            workflow_id = self._by_idempotency_key.get(key)
            stored = self._workflows[workflow_id] if workflow_id is not None else None
        return _decode_workflow(stored) if stored is not None else None

    async def list_workflows(
        self,
        *,
        status: WorkflowStatus | None = None,
        workflow_type: str | None = None,
        parent_execution_id: str | None = None,
        created_since: datetime | None = None,
        created_until: datetime | None = None,
        workflow_version: str | None = None,
        id_prefix: str | None = None,
        idempotency_key_prefix: str | None = None,
        after: ListPosition | None = None,
        limit: int = 100,
    ) -> list[WorkflowRecord]:
        """Workflows matching every given filter, newest first (created_at, then id)."""
        since = _aware(created_since) if created_since is not None else None
        until = _aware(created_until) if created_until is not None else None
        past = (_aware(after.created_at), after.workflow_id) if after is not None else None
        with self._lock:
            matching = [
                ((_aware(stored["created_at"]), workflow_id), stored)
                for workflow_id, stored in self._workflows.items()
                if (status is None or stored["status"] == status)
                and (workflow_type is None or stored["workflow_type"] == workflow_type)
                and (
                    parent_execution_id is None
                    or stored["parent_execution_id"] == parent_execution_id
                )
                and (workflow_version is None or stored["workflow_version"] == workflow_version)
                and (id_prefix is None or workflow_id.startswith(id_prefix))
                and _key_starts_with(stored["idempotency_key"], idempotency_key_prefix)
            ]
        matching = [
            (position, stored)
            for position, stored in matching
            if (since is None or position[0] >= since)
            and (until is None or position[0] < until)
            and (past is None or position < past)
        ]
        matching.sort(key=lambda item: item[0], reverse=True)
        return [_decode_workflow(stored) for _, stored in matching[: max(limit, 0)]]

    async def list_changed_workflows(
        self, after: ChangePosition, limit: int = 100
    ) -> list[WorkflowChange]:
        """Workflows whose ``(updated_at, id)`` sorts after ``after``, oldest change first."""
        past = (_aware(after.updated_at), after.workflow_id)
        with self._lock:
            matching = [
                ((_aware(stored["updated_at"]), workflow_id), stored)
                for workflow_id, stored in self._workflows.items()
            ]
        matching = sorted((item for item in matching if item[0] > past), key=lambda item: item[0])
        return [
            WorkflowChange.of(_decode_workflow(stored)) for _, stored in matching[: max(limit, 0)]
        ]

    async def list_due_timers(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of waiting workflows whose ``run_at`` is due: the most urgent (priority) first,
        then the earliest."""
        now = _aware(now)
        with self._lock:
            due = [
                (
                    -stored["priority"],
                    _aware(stored["run_at"]),
                    self._sequence[workflow_id],
                    workflow_id,
                )
                for workflow_id, stored in self._workflows.items()
                if stored["status"] in _WAITING_FOR_TIMER
                and stored["run_at"] is not None
                and _aware(stored["run_at"]) <= now
            ]
        due.sort()
        return [workflow_id for *_, workflow_id in due[: max(limit, 0)]]

    async def list_past_deadline(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of unfinished workflows whose deadline is at or before ``now``, earliest first."""
        now = _aware(now)
        with self._lock:
            past = [
                (_aware(stored["deadline_at"]), self._sequence[workflow_id], workflow_id)
                for workflow_id, stored in self._workflows.items()
                if stored.get("deadline_at") is not None
                and not WorkflowStatus(stored["status"]).is_terminal
                and _aware(stored["deadline_at"]) <= now
            ]
        past.sort()
        return [workflow_id for _, _, workflow_id in past[: max(limit, 0)]]

    async def get_audit_log(self, workflow_id: str) -> list[AuditEntry]:
        """Audit entries of one workflow, oldest first."""
        with self._lock:
            rows = list(self._audit.get(workflow_id, ()))
        return [_thaw(entry, "details", details) for entry, details in rows]

    async def append_execution_log(self, entry: ExecutionLogEntry) -> None:
        """Append one log line; ``WorkflowNotFound`` if the workflow does not exist."""
        frozen = (entry, dumps(entry.details))
        with self._lock:
            self._check_known((entry.workflow_id,))
            self._logs[entry.workflow_id].append(frozen)

    async def get_execution_logs(self, workflow_id: str) -> list[ExecutionLogEntry]:
        """Log lines of one workflow, oldest first."""
        with self._lock:
            rows = list(self._logs.get(workflow_id, ()))
        return [_thaw(entry, "details", details) for entry, details in rows]

    async def get_compensation_log(self, workflow_id: str) -> list[CompensationEntry]:
        """Compensations of one workflow, in the order they ran."""
        with self._lock:
            rows = list(self._compensations.get(workflow_id, ()))
        return [_thaw(entry, "state_before", state) for entry, state in rows]

    async def list_step_runs(self, workflow_id: str) -> list[StepRunRecord]:
        """None: this store keeps no step runs (only the cluster's PostgreSQL does)."""
        return []

    async def record_signal(self, signal: SignalRecord) -> bool:
        """Keep a signal unless its workflow has one with the same event id."""
        frozen = (signal, dumps(signal.data))
        with self._lock:
            self._check_known((signal.workflow_id,))
            kept = self._signals.setdefault(signal.workflow_id, [])
            if any(old.event_id == signal.event_id for old, _ in kept):
                return False
            kept.append(frozen)
            return True

    async def list_signals(self, workflow_id: str, name: str | None = None) -> list[SignalRecord]:
        """A workflow's signals (called ``name``, if given), oldest first."""
        with self._lock:
            kept = list(self._signals.get(workflow_id, ()))
        return [_thaw(sig, "data", data) for sig, data in kept if name is None or sig.name == name]

    async def save_schedule(self, schedule: ScheduleRecord) -> None:
        """Insert or replace the schedule with this name."""
        frozen = (schedule, dumps(schedule.initial_data))
        with self._lock:
            self._schedules[schedule.name] = frozen

    async def list_schedules(self) -> list[ScheduleRecord]:
        """All schedules, by name."""
        with self._lock:
            rows = sorted(self._schedules.items())
        return [_thaw(schedule, "initial_data", data) for _, (schedule, data) in rows]

    # -- schedule claims (ruvon.cluster.schedules.ScheduleClaims), each atomic under the lock --

    async def due_schedules(
        self, now: datetime | None, limit: int
    ) -> tuple[datetime, list[ScheduleRecord]]:
        """Enabled schedules due at ``now`` (None: this machine's clock), oldest tick first,
        and the moment they were judged against."""
        moment = _aware(now) if now is not None else utc_now()
        schedules = await self.list_schedules()
        due = [
            s for s in schedules
            if s.enabled and s.next_run_at is not None and _aware(s.next_run_at) <= moment
        ]  # fmt: skip
        due.sort(key=lambda s: (_aware(s.next_run_at or moment), s.name))
        return moment, due[: max(limit, 0)]

    async def claim_schedule_ticks(
        self, name: str, expected: datetime, next_run_at: datetime, last_run_at: datetime
    ) -> bool:
        """Take the ticks up to ``last_run_at``; only one caller holding ``expected`` wins."""
        return self._move(name, expected, next_run_at, last_run_at, only_enabled=True)

    async def release_schedule_ticks(
        self, name: str, expected: datetime, next_run_at: datetime, last_run_at: datetime | None
    ) -> bool:
        """Give back the ticks from ``next_run_at`` on, after a start failed."""
        return self._move(name, expected, next_run_at, last_run_at, only_enabled=False)

    async def update_schedule_enabled(
        self, name: str, enabled: bool, next_run_at: datetime | None
    ) -> ScheduleRecord | None:
        """Pause or resume; a resume of a paused schedule moves it to ``next_run_at``."""
        with self._lock:
            stored = self._schedules.get(name)
            if stored is None:
                return None
            row, data = stored
            moved = next_run_at if enabled and not row.enabled else row.next_run_at
            updated = replace(row, enabled=enabled, next_run_at=moved)
            self._schedules[name] = (updated, data)
        return _thaw(updated, "initial_data", data)

    def _move(
        self,
        name: str,
        expected: datetime,
        to: datetime,
        last: datetime | None,
        *,
        only_enabled: bool,
    ) -> bool:
        with self._lock:
            stored = self._schedules.get(name)
            if stored is None:
                return False
            row, data = stored
            held = row.next_run_at is not None and _aware(row.next_run_at) == _aware(expected)
            if not held or (only_enabled and not row.enabled):
                return False
            self._schedules[name] = (replace(row, next_run_at=to, last_run_at=last), data)
            return True

    # -- helpers; callers hold self._lock ----------------------------------------------------

    def _check_known(self, workflow_ids: Iterable[str]) -> None:
        for workflow_id in workflow_ids:
            if workflow_id not in self._workflows:
                raise WorkflowNotFound(workflow_id)

    def _append_audit(self, frozen_audit: list[tuple[AuditEntry, bytes]]) -> None:
        for item in frozen_audit:
            self._audit[item[0].workflow_id].append(item)

    def _rekey(self, workflow_id: str, old: str | None, new: str | None) -> None:
        if new is not None and self._by_idempotency_key.get(new, workflow_id) != workflow_id:
            raise PersistenceError(
                f"idempotency key '{new}' already belongs to workflow "
                f"'{self._by_idempotency_key[new]}'; cannot give it to '{workflow_id}'"
            )
        if old is not None:
            del self._by_idempotency_key[old]
        if new is not None:
            self._by_idempotency_key[new] = workflow_id


def _thaw(entry: _Entry, field: str, data: bytes) -> _Entry:
    """A copy of ``entry`` with its one mutable field decoded afresh from ``data``."""
    return replace(entry, **{field: loads(data)})


InMemoryPersistenceProvider = MemoryPersistenceProvider
