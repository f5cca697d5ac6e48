"""The persistence seam: where workflow records, audit rows and logs live."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from ruvon.models import WorkflowStatus
from ruvon.providers.runs import StepRunRecord, WorkWrites
from ruvon.records import (
    AuditEntry,
    CompensationEntry,
    ExecutionLogEntry,
    ListPosition,
    ScheduleRecord,
    SignalRecord,
    WorkflowRecord,
)


@runtime_checkable
class PersistenceProvider(Protocol):
    """Durable storage for workflows.

    Contract (checked by ``tests/contract``):

    * ``create_workflow`` is atomic with respect to ``idempotency_key``: of two creates with the
      same key, exactly one inserts and both return the same stored record.
    * ``save_workflow`` writes only if the stored version equals ``expected_version``; it then
      stores ``expected_version + 1`` in ``record.version`` and writes ``audit`` and
      ``compensations`` in the same transaction. Otherwise it raises ``ConcurrencyConflict`` and
      writes nothing.
    * ``workflow_type``, ``definition_snapshot`` and ``created_at`` are fixed when the workflow is
      created; ``save_workflow`` leaves them as stored.
    * ``load_workflow`` raises ``WorkflowNotFound`` for an unknown id.
    * Records come back equal to what was saved (state is JSON: dicts, lists, str, numbers, bools,
      None).
    """

    async def initialize(self) -> None:
        """Open connections and create the schema if needed. Safe to call twice."""
        ...

    async def close(self) -> None:
        """Release connections. Safe to call twice."""
        ...

    async def create_workflow(
        self,
        record: WorkflowRecord,
        audit: Sequence[AuditEntry] = (),
        *,
        work: WorkWrites | None = None,
    ) -> tuple[WorkflowRecord, bool]:
        """Insert ``record`` (version 1); return (stored record, True if inserted).

        With an ``idempotency_key`` that already exists, nothing is written and the existing
        record is returned with False. ``work`` (step runs, distributed mode) commits with the
        insert; a provider that cannot keep step runs raises ``ConfigurationError`` for it.
        """
        ...

    async def load_workflow(self, workflow_id: str) -> WorkflowRecord:
        """Return the stored record; raise ``WorkflowNotFound`` if there is none."""
        ...

    async def save_workflow(
        self,
        record: WorkflowRecord,
        *,
        expected_version: int,
        audit: Sequence[AuditEntry] = (),
        work: WorkWrites | None = None,
        compensations: Sequence[CompensationEntry] = (),
    ) -> int:
        """Fenced save: write if the stored version is ``expected_version``; return the new one.

        ``compensations`` (a saga rollback's outcomes) are written with it, so a rollback whose
        save never commits leaves none. ``work`` (distributed mode) commits in the same
        transaction: its claim fence must hold (else ``ClaimLost``) and its runs are inserted
        into ``work.queued``.
        """
        ...

    async def find_by_idempotency_key(self, key: str) -> WorkflowRecord | None:
        """The workflow started with this idempotency key, if any."""
        ...

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
        """Workflows matching every given filter, newest first (``created_at``, then ``id``,
        both descending).

        ``created_since`` (inclusive) and ``created_until`` (exclusive) bound ``created_at``;
        ``after`` skips to the workflows that sort after that position (the next page).
        ``id_prefix`` and ``idempotency_key_prefix`` match the start of the text exactly and
        case-sensitively: ``%`` and ``_`` are characters, not wildcards; a workflow without a key
        (or a version) never matches a key prefix (or a ``workflow_version``).
        """
        ...

    async def list_due_timers(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of WAITING_TIMER / WAITING_HUMAN workflows whose ``run_at`` is due at ``now``: the
        highest priority first, then the earliest due (at most ``limit``)."""
        ...

    async def list_past_deadline(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of unfinished (not terminal) workflows whose ``deadline_at`` is at or before
        ``now``, earliest deadline first."""
        ...

    async def get_audit_log(self, workflow_id: str) -> list[AuditEntry]:
        """Audit entries of one workflow, oldest first."""
        ...

    async def append_execution_log(self, entry: ExecutionLogEntry) -> None:
        """Append one log line to a workflow."""
        ...

    async def get_execution_logs(self, workflow_id: str) -> list[ExecutionLogEntry]:
        """Log lines of one workflow, oldest first."""
        ...

    async def get_compensation_log(self, workflow_id: str) -> list[CompensationEntry]:
        """Compensations of one workflow, in the order they ran."""
        ...

    async def list_step_runs(self, workflow_id: str) -> list[StepRunRecord]:
        """Step runs of one workflow, in the order they were created.

        Only a store that keeps step runs (the cluster's PostgreSQL) has any; the others
        return ``[]``, as every provider does for an unknown workflow.
        """
        ...

    async def record_signal(self, signal: SignalRecord) -> bool:
        """Keep a signal sent to a workflow; False (nothing written) if that workflow already
        has a signal with this ``event_id`` (a duplicate send). ``WorkflowNotFound`` for an
        unknown workflow."""
        ...

    async def list_signals(self, workflow_id: str, name: str | None = None) -> list[SignalRecord]:
        """The signals sent to a workflow (only those called ``name``, if given), in the order
        they were recorded; ``[]`` for an unknown workflow."""
        ...

    async def save_schedule(self, schedule: ScheduleRecord) -> None:
        """Insert or replace the schedule with this name."""
        ...

    async def list_schedules(self) -> list[ScheduleRecord]:
        """All schedules, by name."""
        ...
