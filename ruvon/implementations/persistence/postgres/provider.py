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
cannot store) are escaped reversibly: see :mod:`.codecs`. Sessions run with
``TimeZone=UTC``, the configured ``statement_timeout`` and ``application_name``; no operation
leaves session state behind, so the pool skips its reset query on release, and
:class:`~.connections.ConnectionLender` keeps connections checked out between operations
(an ``asyncpg.Pool`` acquire/release pair costs ~50 µs of CPU, a sixth of a durable step).
Nothing is retried: a statement whose connection broke may or may not have committed, and the
version fence makes a blind retry of a save unsafe to interpret, so the caller decides.

A pool belongs to the event loop that created it. Synchronous code (Celery tasks) reaches this
provider through :class:`ruvon.bridge.EventLoopBridge`, which owns that loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from ruvon.errors import (
    ClaimLost,
    ConcurrencyConflict,
    PersistenceError,
    RuvonError,
    WorkflowNotFound,
)
from ruvon.implementations.persistence.postgres.codecs import register_codecs
from ruvon.implementations.persistence.postgres.connections import ConnectionLender
from ruvon.implementations.persistence.postgres.maintenance import PostgresMaintenance
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
    close_claimed_run,
    insert_runs,
    queued_run,
    taken_claim,
)
from ruvon.implementations.persistence.postgres.schedules import PostgresSchedules
from ruvon.implementations.persistence.postgres.target import (
    ConnectionTarget,
    is_connection_lost,
)
from ruvon.implementations.persistence.postgres.work import WorkWrite
from ruvon.implementations.persistence.postgres.writes import AuditedWrite, rows_written
from ruvon.implementations.persistence.queries import load_queries
from ruvon.models import WorkflowStatus
from ruvon.providers.runs import RunStatus, WorkWrites
from ruvon.records import (
    AuditEntry,
    CompensationEntry,
    ExecutionLogEntry,
    ScheduleRecord,
    WorkflowRecord,
)

__all__ = ["PostgresPersistenceProvider"]

_Q = load_queries(Path(__file__).with_name("sql") / "workflows.sql")
_CREATE = AuditedWrite(_Q["create_workflow"], 24)
_SAVE = AuditedWrite(_Q["save_workflow"], 21)
_SAVE_WORK = WorkWrite(_Q["save_workflow"], 21)
_UQ_IDEMPOTENCY_KEY = "uq_workflow_executions_idempotency_key"
_CLOSE_TIMEOUT = 10.0
_CREATE_ATTEMPTS = 3
# What the driver raises besides SQL errors: lost sockets, timeouts, protocol misuse.
_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
T = TypeVar("T")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool ``reset`` hook: skip asyncpg's default reset query on every release.

    The default (``RESET ALL``, ``UNLISTEN *``, unlock advisory locks...) costs a round trip per
    operation, and this provider never changes session state. asyncpg still rolls back an open
    transaction before calling this hook.
    """


class PostgresPersistenceProvider(PostgresRunLedger, PostgresMaintenance, PostgresSchedules):
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

    def __init__(
        self,
        db_url: str,
        pool_min_size: int = 2,
        pool_max_size: int = 10,
        *,
        statement_timeout: float | None = 30.0,
        max_state_bytes: int | None = None,
        application_name: str = "ruvon",
        connect_timeout: float = 10.0,
    ) -> None:
        self.target = ConnectionTarget.from_url(db_url)
        self.pool_min_size = pool_min_size
        self.pool_max_size = max(pool_max_size, pool_min_size, 1)
        self.statement_timeout = statement_timeout
        self.max_state_bytes = max_state_bytes
        self.application_name = application_name
        self.connect_timeout = connect_timeout
        self._pool: asyncpg.Pool | None = None
        self._lender: ConnectionLender | None = None
        self._closed = False
        self._lifecycle: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"PostgresPersistenceProvider({self.target.redacted_url()!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Open the pool and check the schema revision (idempotent)."""
        if self._lifecycle is None:
            self._lifecycle = asyncio.Lock()
        async with self._lifecycle:
            self._closed = False
            if self._pool is None:
                self._pool = await self._open_pool()
                self._lender = ConnectionLender(self._pool)

    async def close(self) -> None:
        """Close the pool, waiting up to 10 s for connections in use (idempotent)."""
        self._closed = True
        pool, self._pool = self._pool, None
        lender, self._lender = self._lender, None
        if pool is None:
            return
        if lender is not None:
            await lender.return_all()
        try:
            await asyncio.wait_for(pool.close(), _CLOSE_TIMEOUT)
        except TimeoutError:
            pool.terminate()

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
        params = workflow_params(record, 1, self.max_state_bytes)
        sql, rows = _CREATE.statement(audit)
        for _attempt in range(_CREATE_ATTEMPTS):
            try:
                if work:
                    inserted = await self._write_with_work(
                        "create workflow", sql, (*params, *rows), work
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
        limit: int = 100,
    ) -> list[WorkflowRecord]:
        """Workflows matching every given filter, newest first."""
        rows = await self._fetch(
            "list workflows",
            _Q["list_workflows"],
            str(status) if status is not None else None,
            workflow_type,
            parent_execution_id,
            max(limit, 0),
        )
        return [workflow_from_row(row) for row in rows]

    async def list_due_timers(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of waiting workflows whose ``run_at`` is due, earliest first."""
        rows = await self._fetch("list due timers", _Q["list_due_timers"], utc(now), max(limit, 0))
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
    ) -> int:
        """The save, its claim fence and its enqueued runs as one statement (see
        :mod:`.work`); the rows written. ``ClaimLost`` if the fence did not hold."""
        take = work.take
        sql, extra = _SAVE_WORK.statement(
            audit, work.fence, work.enqueue, close=work.close, take=take
        )
        args = (*params, *extra)
        if conn is None:
            rows = await self._query("save workflow", "fetch", sql, args)
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

    async def _write_with_work(
        self, operation: str, sql: str, args: tuple[Any, ...], work: WorkWrites
    ) -> int:
        """A workflow write plus its step-run writes, one transaction; the rows written.

        Nothing commits unless the claim holds and the workflow row was written.
        """

        async def write(conn: asyncpg.Connection) -> int:
            if work.fence is not None:  # (creates carry none: a new workflow has no claim)
                await close_claimed_run(conn, work.fence, RunStatus.DONE)
            written = rows_written(await conn.execute(sql, *args))
            if not written:
                raise _NothingWritten
            work.queued = await insert_runs(conn, work.enqueue)
            return written

        try:
            return await self._transaction(operation, write)
        except _NothingWritten:
            return 0

    # -- connection ----------------------------------------------------------------------------

    async def _transaction(
        self, operation: str, body: Callable[[asyncpg.Connection], Awaitable[T]]
    ) -> T:
        """Run ``body(conn)`` in a transaction on one lent connection (rolled back if it raises)."""

        async def in_transaction(conn: asyncpg.Connection) -> T:
            async with conn.transaction():
                return await body(conn)

        return await self._on_connection(operation, in_transaction)

    async def _fetchval(self, operation: str, sql: str, *args: Any) -> Any:
        return await self._query(operation, "fetchval", sql, args)

    async def _fetchrow(self, operation: str, sql: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._query(operation, "fetchrow", sql, args)
        return row

    async def _fetch(self, operation: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._query(operation, "fetch", sql, args)
        return rows

    async def _execute(self, operation: str, sql: str, *args: Any) -> str:
        status: str = await self._query(operation, "execute", sql, args)
        return status

    async def _query(self, operation: str, method: str, sql: str, args: tuple[Any, ...]) -> Any:
        """Run one statement on a lent connection (see :meth:`_on_connection`)."""
        return await self._on_connection(operation, lambda conn: getattr(conn, method)(sql, *args))

    async def _on_connection(
        self, operation: str, body: Callable[[asyncpg.Connection], Awaitable[T]]
    ) -> T:
        """Run ``body`` on a lent connection; integrity errors and Ruvon's own (a lost claim, a
        conflict) pass through untranslated, driver errors become ``PersistenceError`` s.

        The connection goes back to the lender unless the error leaves it suspect (lost,
        cancelled, protocol state unknown), in which case the pool's release sorts it out.
        """
        lender = self._lender or await self._open_lazily()
        try:
            conn = await lender.borrow()
        except _DRIVER_ERRORS as exc:
            raise self.target.failed(exc, operation) from exc
        healthy = False
        try:
            result = await body(conn)
            healthy = True
            return result
        except (asyncpg.IntegrityConstraintViolationError, RuvonError, _NothingWritten):
            healthy = True
            raise
        except _DRIVER_ERRORS as exc:
            healthy = isinstance(exc, asyncpg.PostgresError) and not is_connection_lost(exc)
            raise self.target.failed(exc, operation) from exc
        finally:
            if not (healthy and lender.keep(conn)):
                await lender.release(conn)

    async def _open_lazily(self) -> ConnectionLender:
        if self._closed:
            raise PersistenceError(
                f"PostgreSQL provider for {self.target.where} is closed "
                "(call initialize() to reopen)"
            )
        await self.initialize()
        assert self._lender is not None
        return self._lender

    def _server_settings(self) -> dict[str, str]:
        settings = {"application_name": self.application_name, "TimeZone": "UTC"}
        if self.statement_timeout is not None:
            settings["statement_timeout"] = str(max(int(self.statement_timeout * 1000), 0))
        return settings

    async def _open_pool(self) -> asyncpg.Pool:
        try:
            pool = await asyncpg.create_pool(
                self.target.dsn,
                min_size=self.pool_min_size,
                max_size=self.pool_max_size,
                init=register_codecs,
                reset=_keep_session,
                timeout=self.connect_timeout,
                server_settings=self._server_settings(),
            )
        except _DRIVER_ERRORS as exc:
            raise self.target.unavailable(exc) from exc
        try:
            await self._check_schema(pool)
        except BaseException:
            pool.terminate()
            raise
        return pool

    async def _check_schema(self, pool: asyncpg.Pool) -> None:
        """Refuse a database whose schema is not at the code's migration head."""
        from ruvon.db_schema import migrations

        try:
            found = await pool.fetchval(migrations.VERSION_QUERY)
        except asyncpg.UndefinedTableError:
            found = None
        except _DRIVER_ERRORS as exc:
            raise self.target.failed(exc, "check the schema revision") from exc
        migrations.assert_schema_current(found, database=self.target.where)

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


class _NothingWritten(Exception):
    """Rolls back a transaction whose workflow write matched no row."""


def _foreign_id(audit: Sequence[AuditEntry], workflow_id: str) -> str:
    """The workflow id an audit row names that does not exist (a foreign key failed)."""
    return next((e.workflow_id for e in audit if e.workflow_id != workflow_id), workflow_id)
