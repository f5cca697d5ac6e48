"""PostgreSQL persistence on an asyncpg pool: the cloud cluster's single source of truth.

Every query is a named query in ``sql/workflows.sql``. The hot paths are one round trip each:

* ``save_workflow`` is one statement: the version-fenced ``UPDATE ... WHERE id = $1 AND
  version = $6`` and the audit ``INSERT`` chained through a CTE (see :mod:`.writes`), so
  the state change and the audit rows that describe it commit together or not at all. A
  stale writer matches no row and gets :class:`~ruvon.errors.ConcurrencyConflict` (a second
  query tells it apart from :class:`~ruvon.errors.WorkflowNotFound`, only on that failure path).
* ``create_workflow`` is ``INSERT ... ON CONFLICT (idempotency_key) DO NOTHING`` with its audit
  rows in the same statement; only when the key exists does a second query read the winner.
* ``load_workflow`` is one ``SELECT``.

JSONB travels through orjson in asyncpg's binary format, and NUL characters (which PostgreSQL
cannot store) are escaped reversibly: see :mod:`.codecs`. Connections, session settings, the
schema check and the mapping of driver errors live in :mod:`.pool`.
Nothing is retried: a statement whose connection broke may or may not have committed, and the
version fence makes a blind retry of a save unsafe to interpret, so the caller decides.

A pool belongs to the event loop that created it. Synchronous code (Celery tasks) reaches this
provider through :class:`ruvon.bridge.EventLoopBridge`, which owns that loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from ruvon.errors import (
    ClaimLost,
    ConcurrencyConflict,
    PersistenceError,
    WorkflowNotFound,
)
from ruvon.implementations.persistence.postgres.changes import PostgresChanges
from ruvon.implementations.persistence.postgres.flow_control import PostgresFlowControl
from ruvon.implementations.persistence.postgres.listing import ListFilters, list_statement
from ruvon.implementations.persistence.postgres.maintenance import PostgresMaintenance
from ruvon.implementations.persistence.postgres.pool import (
    PostgresPool,
)
from ruvon.implementations.persistence.postgres.rows import (
    audit_from_row,
    compensation_from_row,
    compensation_params,
    execution_log_from_row,
    execution_log_params,
    save_params,
    schedule_from_row,
    schedule_params,
    utc,
    workflow_from_row,
    workflow_params,
)
from ruvon.implementations.persistence.postgres.runs import (
    PostgresRunLedger,
    queued_run,
    taken_claim,
)
from ruvon.implementations.persistence.postgres.schedules import PostgresSchedules
from ruvon.implementations.persistence.postgres.signals import PostgresSignals
from ruvon.implementations.persistence.postgres.work import WorkWrite
from ruvon.implementations.persistence.postgres.writes import AuditedWrite, rows_written
from ruvon.implementations.persistence.queries import load_queries
from ruvon.models import WorkflowStatus
from ruvon.providers.runs import WorkWrites
from ruvon.records import (
    AuditEntry,
    CompensationEntry,
    ExecutionLogEntry,
    ListPosition,
    ScheduleRecord,
    WorkflowRecord,
)

__all__ = ["PostgresPersistenceProvider"]

_Q = load_queries(Path(__file__).with_name("sql") / "workflows.sql")
_CREATE = AuditedWrite(_Q["create_workflow"], 25)
_SAVE = AuditedWrite(_Q["save_workflow"], 21)
_SAVE_WORK = WorkWrite(_Q["save_workflow"], 21)
_CREATE_WORK = WorkWrite(_Q["create_workflow"], 25)
_UQ_IDEMPOTENCY_KEY = "uq_workflow_executions_idempotency_key"
_CREATE_ATTEMPTS = 3


class PostgresPersistenceProvider(
    PostgresPool,
    PostgresFlowControl,
    PostgresRunLedger,
    PostgresMaintenance,
    PostgresSchedules,
    PostgresSignals,
    PostgresChanges,
):
    """A :class:`~ruvon.providers.persistence.PersistenceProvider` on PostgreSQL (asyncpg).

    It is also the cluster's :class:`~ruvon.providers.ledger.RunLedger` (step runs, see
    :mod:`~ruvon.implementations.persistence.postgres.runs`): a save or create that carries
    :class:`~ruvon.providers.runs.WorkWrites` runs as one transaction (claim fence, workflow
    write with its audit rows, enqueued runs).

    ``db_url`` is ``postgresql://user:password@host:port/database``; the pool keeps between
    ``pool_min_size`` and ``pool_max_size`` connections; ``statement_timeout`` (seconds, None for
    the server default) bounds every statement; ``max_state_bytes`` rejects larger serialized
    state with ``StateTooLargeError`` before anything is written. ``initialize()`` opens the pool
    and refuses a database whose schema is not at the code's migration head (run
    ``ruvon db upgrade``). Use an instance from the event loop that initialized it.
    """

    def __repr__(self) -> str:
        return f"PostgresPersistenceProvider({self.target.redacted_url()!r})"

    # -- workflows -----------------------------------------------------------------------------

    async def create_workflow(
        self,
        record: WorkflowRecord,
        audit: Sequence[AuditEntry] = (),
        *,
        work: WorkWrites | None = None,
    ) -> tuple[WorkflowRecord, bool]:
        """Insert ``record`` at version 1, or return the one already started with its key.

        ``work.enqueue`` is inserted in the same transaction, only if the workflow was.
        """
        if work is not None and (work.fence is not None or work.take is not None):
            # The statement has no fence to check: a new workflow holds no claim.
            raise ValueError(f"create of workflow '{record.id}' carries a claim fence or take")
        params = workflow_params(record, 1, self.max_state_bytes)
        # The row and its audit rows, and with work its first runs: one statement either way.
        sql, rows = _CREATE.statement(audit) if not work else ("", ())
        for _attempt in range(_CREATE_ATTEMPTS):
            try:
                if work:
                    inserted = await self._save_with_work(
                        record, params, audit, work, writer=_CREATE_WORK
                    )
                else:
                    inserted = rows_written(
                        await self._execute("create workflow", sql, *params, *rows)
                    )
            except asyncpg.UniqueViolationError as exc:
                raise self._unique_violation(exc, record) from None
            except asyncpg.ForeignKeyViolationError:
                raise WorkflowNotFound(_foreign_id(audit, record.id)) from None
            if inserted:
                record.version = 1
                return record, True
            assert record.idempotency_key is not None  # only the key's arbiter does nothing
            existing = await self.find_by_idempotency_key(record.idempotency_key)
            if existing is not None:
                return existing, False
            # The holder of the key was deleted between the two statements: insert again.
        raise PersistenceError(
            f"idempotency key '{record.idempotency_key}' on {self.target.where} kept conflicting "
            "with a workflow that then disappeared; retry the create"
        )

    async def load_workflow(self, workflow_id: str) -> WorkflowRecord:
        """Return the stored record; ``WorkflowNotFound`` if there is none."""
        row = await self._fetchrow("load workflow", _Q["load_workflow"], workflow_id)
        if row is None:
            raise WorkflowNotFound(workflow_id)
        return workflow_from_row(row)

    async def save_workflow(
        self,
        record: WorkflowRecord,
        *,
        expected_version: int,
        audit: Sequence[AuditEntry] = (),
        work: WorkWrites | None = None,
        compensations: Sequence[CompensationEntry] = (),
    ) -> int:
        """Fenced save plus audit rows in one statement; return the new version.

        With ``work``: one transaction that also checks the claim fence (``ClaimLost`` if it
        no longer holds) and inserts the enqueued runs (announce ``work.queued`` afterwards).
        With ``compensations`` (a rollback's, rare): the same statement, then their rows, in one
        transaction that commits only if the workflow was written.
        """
        params = save_params(record, expected_version, self.max_state_bytes)
        try:
            if compensations:
                updated = await self._transaction(
                    "save workflow",
                    lambda conn: self._save_with_compensations(
                        conn, record, params, audit, work, compensations
                    ),
                )
            elif work:
                updated = await self._save_with_work(record, params, audit, work)
            else:
                sql, rows = _SAVE.statement(audit)
                updated = rows_written(await self._execute("save workflow", sql, *params, *rows))
        except asyncpg.UniqueViolationError as exc:
            raise self._unique_violation(exc, record) from None
        except asyncpg.ForeignKeyViolationError:
            raise WorkflowNotFound(_foreign_id(audit, record.id)) from None
        if not updated:
            if not await self._fetchval("save workflow", _Q["workflow_exists"], record.id):
                raise WorkflowNotFound(record.id)
            raise ConcurrencyConflict(record.id, expected_version)
        record.version = expected_version + 1
        return record.version

    async def find_by_idempotency_key(self, key: str) -> WorkflowRecord | None:
        """The workflow started with this idempotency key, if any."""
        row = await self._fetchrow("find workflow", _Q["find_by_idempotency_key"], key)
        return workflow_from_row(row) if row is not None else None

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
        sql, args = list_statement(
            ListFilters(
                status=str(status) if status is not None else None,
                workflow_type=workflow_type,
                parent_execution_id=parent_execution_id,
                created_since=created_since,
                created_until=created_until,
                workflow_version=workflow_version,
                id_prefix=id_prefix,
                idempotency_key_prefix=idempotency_key_prefix,
                after=(after.created_at, after.workflow_id) if after is not None else None,
                limit=limit,
            )
        )
        rows = await self._fetch("list workflows", sql, *args)
        return [workflow_from_row(row) for row in rows]

    async def list_due_timers(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of waiting workflows whose ``run_at`` is due: the most urgent (priority) first,
        then the earliest."""
        rows = await self._fetch("list due timers", _Q["list_due_timers"], utc(now), max(limit, 0))
        return [row[0] for row in rows]

    async def list_past_deadline(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of unfinished workflows whose deadline is at or before ``now``, earliest first."""
        rows = await self._fetch(
            "list workflows past their deadline", _Q["list_past_deadline"], utc(now),
            max(limit, 0),
        )  # fmt: skip
        return [row[0] for row in rows]

    # -- logs ----------------------------------------------------------------------------------

    async def get_audit_log(self, workflow_id: str) -> list[AuditEntry]:
        """Audit entries of one workflow, oldest first."""
        rows = await self._fetch("read audit log", _Q["get_audit_log"], workflow_id)
        return [audit_from_row(row) for row in rows]

    async def append_execution_log(self, entry: ExecutionLogEntry) -> None:
        """Append one log line; ``WorkflowNotFound`` if the workflow does not exist."""
        params = execution_log_params(entry)
        try:
            await self._execute("append log", _Q["insert_execution_log"], *params)
        except asyncpg.ForeignKeyViolationError:
            raise WorkflowNotFound(entry.workflow_id) from None

    async def get_execution_logs(self, workflow_id: str) -> list[ExecutionLogEntry]:
        """Log lines of one workflow, oldest first."""
        rows = await self._fetch("read logs", _Q["get_execution_logs"], workflow_id)
        return [execution_log_from_row(row) for row in rows]

    async def get_compensation_log(self, workflow_id: str) -> list[CompensationEntry]:
        """Compensations of one workflow, in the order they ran."""
        rows = await self._fetch("read compensations", _Q["get_compensation_log"], workflow_id)
        return [compensation_from_row(row) for row in rows]

    # -- schedules -----------------------------------------------------------------------------

    async def save_schedule(self, schedule: ScheduleRecord) -> None:
        """Insert or replace the schedule with this name."""
        await self._execute("save schedule", _Q["upsert_schedule"], *schedule_params(schedule))

    async def list_schedules(self) -> list[ScheduleRecord]:
        """All schedules, by name."""
        rows = await self._fetch("list schedules", _Q["list_schedules"])
        return [schedule_from_row(row) for row in rows]

    async def _save_with_compensations(
        self,
        conn: asyncpg.Connection,
        record: WorkflowRecord,
        params: tuple[Any, ...],
        audit: Sequence[AuditEntry],
        work: WorkWrites | None,
        compensations: Sequence[CompensationEntry],
    ) -> int:
        """In a transaction on ``conn``: the save (with its work), then the compensation rows
        if it wrote the workflow (else nothing: the transaction rolls back with the caller)."""
        if work:
            updated = await self._save_with_work(record, params, audit, work, conn=conn)
        else:
            sql, rows = _SAVE.statement(audit)
            updated = rows_written(await conn.execute(sql, *params, *rows))
        if updated:
            await conn.executemany(
                _Q["insert_compensation"], [compensation_params(c) for c in compensations]
            )
        return updated

    async def _save_with_work(
        self,
        record: WorkflowRecord,
        params: tuple[Any, ...],
        audit: Sequence[AuditEntry],
        work: WorkWrites,
        *,
        conn: asyncpg.Connection | None = None,
        writer: WorkWrite = _SAVE_WORK,
    ) -> int:
        """The save (or, with ``writer=_CREATE_WORK``, the create), its claim fence and its
        enqueued runs as one statement (see :mod:`.work`); the rows written. ``ClaimLost`` if
        the fence did not hold."""
        take = work.take
        sql, extra = writer.statement(audit, work.fence, work.enqueue, close=work.close, take=take)
        args = (*params, *extra)
        if conn is None:
            operation = "create workflow" if writer is _CREATE_WORK else "save workflow"
            rows = await self._query(operation, "fetch", sql, args)
        else:
            rows = await conn.fetch(sql, *args)
        held, written = rows[0][0], rows[0][1]
        if not held:
            assert work.fence is not None
            raise ClaimLost(record.id, work.fence.run_id, work.fence.attempt)
        queued_at = 2
        if take is not None:
            queued_at = 4
            taken_id = rows[0][2]
            if written and taken_id is not None:
                work.taken = taken_claim(take, taken_id, rows[0][3])
        if written and work.enqueue:
            work.queued = [
                queued_run(tuple(row)[queued_at:]) for row in rows if row[queued_at] is not None
            ]
        return int(written)

    def _unique_violation(
        self, exc: asyncpg.UniqueViolationError, record: WorkflowRecord
    ) -> PersistenceError:
        if exc.constraint_name == _UQ_IDEMPOTENCY_KEY:
            return PersistenceError(
                f"idempotency key '{record.idempotency_key}' is already used by another "
                f"workflow on {self.target.where}"
            )
        return PersistenceError(
            f"workflow '{record.id}' already exists on {self.target.where} "
            "(workflow ids must be unique)"
        )


def _foreign_id(audit: Sequence[AuditEntry], workflow_id: str) -> str:
    """The workflow id an audit row names that does not exist (a foreign key failed)."""
    return next((e.workflow_id for e in audit if e.workflow_id != workflow_id), workflow_id)
