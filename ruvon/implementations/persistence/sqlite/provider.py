"""SQLite persistence: the embedded, zero-configuration backend.

File databases run in WAL mode (readers never block the writer) with ``synchronous=NORMAL``,
``foreign_keys=ON`` and a ``busy_timeout``. The schema is the Alembic migrations' (see
``schema.py``): a new database gets it on first open, one at an older revision is
upgraded, one at an unknown revision is refused. Every query lives in ``sql/workflows.sql``.

Each operation is **one job** (:mod:`.connection_thread`): a whole transaction (BEGIN
IMMEDIATE, the fenced UPDATE, its audit INSERTs, COMMIT) is a plain ``sqlite3`` function
(:mod:`.jobs`). The one-workflow operations (create, load, save, find by key, append a log
row, upsert a schedule) run inline on the caller's thread while the database is not locked by
another connection, and on the connection's thread, waiting up to ``timeout`` for the lock,
when it is; listings, which may read many rows, always run on that thread. Jobs never
interleave on a connection, so operations need no lock; an ``asyncio.Lock`` only serializes
opening and closing. Use an instance from one event loop at a time. WAL checkpoints (the
fsyncs) run on a second connection in the background.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from time import monotonic, sleep
from typing import Any, TypeVar

from ruvon.errors import PersistenceError, RuvonError, WorkflowNotFound
from ruvon.implementations.persistence.queries import load_queries
from ruvon.implementations.persistence.sqlite import jobs
from ruvon.implementations.persistence.sqlite.checkpoint import BackgroundCheckpointer
from ruvon.implementations.persistence.sqlite.connection_thread import ConnectionThread
from ruvon.implementations.persistence.sqlite.flow_control import SQLiteFlowControl
from ruvon.implementations.persistence.sqlite.indexed_columns import KnownIndexed, indexed_values
from ruvon.implementations.persistence.sqlite.rows import (
    Row,
    audit_rows,
    json,
    text,
    time,
    time_or_none,
    workflow_from_row,
    workflow_params,
)
from ruvon.implementations.persistence.sqlite.schedules import SQLiteSchedules
from ruvon.implementations.persistence.sqlite.schema import prepare_schema
from ruvon.implementations.persistence.sqlite.signals import SQLiteSignals
from ruvon.models import WorkflowStatus
from ruvon.providers.changes import ChangePosition, WorkflowChange
from ruvon.providers.runs import StepRunRecord, WorkWrites, reject_work
from ruvon.records import (
    AuditEntry,
    CompensationEntry,
    ExecutionLogEntry,
    ListPosition,
    ScheduleRecord,
    WorkflowRecord,
)
from ruvon.serialization import loads

__all__ = ["SQLitePersistenceProvider"]

_Q = jobs.QUERIES
_CHANGES = load_queries(Path(__file__).with_name("sql") / "changes.sql")
_WAL_RETRY_SECONDS = 0.01
_T = TypeVar("_T")
_log = logging.getLogger(__name__)
_URL_PREFIXES = ("sqlite+aiosqlite:///", "sqlite:///")


def database_path(db_path: str | os.PathLike[str]) -> str:
    """The file path of ``db_path``, which may also be a ``sqlite:///path`` URL."""
    path = os.fspath(db_path)
    for prefix in _URL_PREFIXES:
        if path.startswith(prefix):
            return path[len(prefix) :].split("?", 1)[0] or ":memory:"
    if path in ("sqlite://", "sqlite+aiosqlite://"):
        return ":memory:"
    return path


def _name(value: Any) -> str | None:
    return str(value) if value is not None else None


def _compensation_row(entry: CompensationEntry) -> Row:
    return (entry.workflow_id, entry.step_name, entry.function, int(entry.succeeded),
            entry.error, json(entry.state_before), text(entry.executed_at))  # fmt: skip


def _enable_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch the file to WAL, retrying while other connections hold it (up to ``timeout``).

    Changing the journal mode needs the file to itself, and SQLite may answer SQLITE_BUSY at once
    instead of calling the busy handler (to avoid a deadlock between openers): several processes
    opening a new file together would otherwise fail with "database is locked".
    """
    deadline = monotonic() + timeout
    while True:
        try:
            conn.execute(_Q["enable_wal"]).fetchall()
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # extended codes too
            if not busy or monotonic() >= deadline:
                raise
            sleep(_WAL_RETRY_SECONDS)


def _open_database(
    conn: sqlite3.Connection, path: str, in_memory: bool, busy_timeout_ms: int
) -> str | None:
    """Configure the connection and install the schema; return a revision to upgrade from."""
    if not in_memory:
        _enable_wal(conn, busy_timeout_ms / 1000)
        conn.execute(_Q["defer_checkpoints"])
    conn.executescript(_Q["configure_connection"])
    return prepare_schema(conn, path)


class SQLitePersistenceProvider(SQLiteSchedules, SQLiteSignals, SQLiteFlowControl):
    """A :class:`~ruvon.providers.persistence.PersistenceProvider` on one SQLite file.

    ``db_path`` is a file path, ``":memory:"`` or a ``sqlite:///path`` URL; ``timeout`` is how
    long (seconds) a write waits for another process's lock; ``max_state_bytes`` rejects larger
    serialized state with ``StateTooLargeError``. Several instances (or processes) may share one
    file; one instance belongs to one event loop at a time. Call :meth:`close` when done: it
    ends the connection's thread, and the last connection to a file to close checkpoints its WAL.
    ``check_same_thread`` is accepted for compatibility and has no effect: only the connection's
    own thread ever uses the connection. Schedule claims (:class:`.schedules.SQLiteSchedules`)
    are conditional updates, so pollers in several processes start each tick once.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] = ":memory:",
        timeout: float = 5.0,
        check_same_thread: bool = False,
        *,
        max_state_bytes: int | None = None,
    ) -> None:
        self.db_path = database_path(db_path)
        self.timeout = timeout
        self.check_same_thread = check_same_thread
        self.max_state_bytes = max_state_bytes
        self._db: ConnectionThread | None = None
        self._checkpointer: BackgroundCheckpointer | None = None
        self._closed = False
        self._lifecycle = asyncio.Lock()
        self._known_indexed = KnownIndexed()

    @property
    def in_memory(self) -> bool:
        """True for a private in-memory database (gone when the provider closes)."""
        return self.db_path in ("", ":memory:")

    async def initialize(self) -> None:
        """Open the connection, configure it and create the schema if needed (idempotent)."""
        async with self._lifecycle:
            self._closed = False
            if self._db is None:
                self._db = await self._open()
                if not self.in_memory:
                    self._checkpointer = BackgroundCheckpointer(
                        self.db_path, self.timeout, _Q["checkpoint"]
                    )

    async def close(self) -> None:
        """Close the connection and stop its thread (idempotent)."""
        async with self._lifecycle:
            self._closed = True
            db, self._db = self._db, None
            checkpointer, self._checkpointer = self._checkpointer, None
            if checkpointer is not None:
                await asyncio.to_thread(checkpointer.close)
            if db is not None:
                await db.close()

    async def create_workflow(
        self,
        record: WorkflowRecord,
        audit: Sequence[AuditEntry] = (),
        *,
        work: WorkWrites | None = None,
    ) -> tuple[WorkflowRecord, bool]:
        """Insert ``record`` at version 1, or return the one already started with its key."""
        reject_work(work, self)
        params = workflow_params(record, 1, self.max_state_bytes)
        existing = await self._write(jobs.create_workflow, params, audit_rows(audit))
        if existing is not None:
            return workflow_from_row(existing), False
        record.version = 1
        self._known_indexed.remember(record.id, 1, indexed_values(params))
        return record, True

    async def load_workflow(self, workflow_id: str) -> WorkflowRecord:
        """Return the stored record; ``WorkflowNotFound`` if there is none."""
        rows = await self._run(jobs.select, _Q["load_workflow"], (workflow_id,), inline=True)
        if not rows:
            raise WorkflowNotFound(workflow_id)
        row = rows[0]
        self._known_indexed.remember(workflow_id, row["version"], indexed_values(row))
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
        """Fenced save plus audit and compensation rows in one transaction; the new version."""
        reject_work(work, self)
        new_version = expected_version + 1
        params = workflow_params(record, new_version, self.max_state_bytes, insert=False)
        params["expected_version"] = expected_version
        indexed, known = indexed_values(params), self._known_indexed
        try:
            await self._write(
                jobs.save_workflow,
                params,
                audit_rows(audit) if audit else [],
                [_compensation_row(c) for c in compensations],
                known.unchanged(record.id, expected_version, indexed),
            )
        except BaseException:
            known.forget(record.id)
            raise
        known.remember(record.id, new_version, indexed)
        record.version = new_version
        return new_version

    async def find_by_idempotency_key(self, key: str) -> WorkflowRecord | None:
        """The workflow started with this idempotency key, if any."""
        rows = await self._run(jobs.select, _Q["find_by_idempotency_key"], (key,), inline=True)
        return workflow_from_row(rows[0]) if rows else None

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
        params = {
            "status": str(status) if status is not None else None,
            "workflow_type": workflow_type,
            "parent_execution_id": parent_execution_id,
            "since": text(created_since),
            "until": text(created_until),
            "after_created_at": text(after.created_at) if after is not None else None,
            "after_id": after.workflow_id if after is not None else None,
            "workflow_version": workflow_version,
            "id_prefix": id_prefix,
            "key_prefix": idempotency_key_prefix,
            "limit": max(limit, 0),
        }
        rows = await self._run(jobs.select, _Q["list_workflows"], params)
        return [workflow_from_row(row) for row in rows]

    async def list_due_timers(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of waiting workflows whose ``run_at`` is due: the most urgent (priority) first,
        then the earliest."""
        params = {"now": text(now), "limit": max(limit, 0)}
        rows = await self._run(jobs.execute, _Q["list_due_timers"], params)
        return [row[0] for row in rows]

    async def list_past_deadline(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of unfinished workflows whose deadline is at or before ``now``, earliest first."""
        params = {"now": text(now), "limit": max(limit, 0)}
        rows = await self._run(jobs.execute, _Q["list_past_deadline"], params)
        return [row[0] for row in rows]

    async def get_audit_log(self, workflow_id: str) -> list[AuditEntry]:
        """Audit entries of one workflow, oldest first."""
        rows = await self._run(jobs.execute, _Q["get_audit_log"], (workflow_id,))
        return [
            AuditEntry(w, event, step, old, new, loads(details), time(at))
            for w, event, step, old, new, details, at in rows
        ]

    async def append_execution_log(self, entry: ExecutionLogEntry) -> None:
        """Append one log line; ``WorkflowNotFound`` if the workflow does not exist."""
        params = (entry.workflow_id, entry.level, entry.message, entry.step_name,
                  json(entry.details), text(entry.logged_at))  # fmt: skip
        await self._write(jobs.append_row, _Q["insert_execution_log"], params)

    async def get_execution_logs(self, workflow_id: str) -> list[ExecutionLogEntry]:
        """Log lines of one workflow, oldest first."""
        rows = await self._run(jobs.execute, _Q["get_execution_logs"], (workflow_id,))
        return [
            ExecutionLogEntry(w, level, message, step, loads(details), time(at))
            for w, level, message, step, details, at in rows
        ]

    async def get_compensation_log(self, workflow_id: str) -> list[CompensationEntry]:
        """Compensations of one workflow, in the order they ran."""
        rows = await self._run(jobs.execute, _Q["get_compensation_log"], (workflow_id,))
        return [
            CompensationEntry(w, step, fn, bool(ok), error, loads(state), time(at))
            for w, step, fn, ok, error, state, at in rows
        ]

    async def list_step_runs(self, workflow_id: str) -> list[StepRunRecord]:
        """None: this store keeps no step runs (only the cluster's PostgreSQL does)."""
        return []

    async def save_schedule(self, schedule: ScheduleRecord) -> None:
        """Insert or replace the schedule with this name."""
        params = (schedule.name, schedule.workflow_type, schedule.cron,
                  json(schedule.initial_data), int(schedule.enabled),
                  schedule.source_workflow_id, text(schedule.next_run_at),
                  text(schedule.last_run_at), text(schedule.created_at))  # fmt: skip
        await self._write(jobs.execute, _Q["upsert_schedule"], params)

    async def list_schedules(self) -> list[ScheduleRecord]:
        """All schedules, by name."""
        rows = await self._run(jobs.execute, _Q["list_schedules"], ())
        return [
            ScheduleRecord(name, kind, cron, loads(data), bool(enabled), source,
                           time_or_none(next_at), time_or_none(last_at), time(created))
            for name, kind, cron, data, enabled, source, next_at, last_at, created in rows
        ]  # fmt: skip

    async def list_changed_workflows(
        self, after: ChangePosition, limit: int = 100
    ) -> list[WorkflowChange]:
        """Workflows whose ``(updated_at, id)`` sorts after ``after``, oldest change first."""
        params = {
            "after_updated_at": text(after.updated_at),
            "after_id": after.workflow_id,
            "limit": max(limit, 0),
        }
        rows = await self._run(jobs.select, _CHANGES["list_changed_workflows"], params)
        return [
            WorkflowChange(
                id=row["id"],
                workflow_type=row["workflow_type"],
                workflow_version=row["workflow_version"],
                status=WorkflowStatus(row["status"]),
                current_step_name=_name(row["current_step_name"]),
                parent_execution_id=row["parent_execution_id"],
                error=row["error"],
                version=row["version"],
                created_at=time(row["created_at"]),
                updated_at=time(row["updated_at"]),
                completed_at=time_or_none(row["completed_at"]),
            )
            for row in rows
        ]

    # -- connection ----------------------------------------------------------------------------

    async def _run(self, job: Callable[..., _T], *args: Any, inline: bool = False) -> _T:
        """``job(connection, *args)``, one transaction: on the thread, or ``inline`` if it may."""
        db = self._db
        if db is None:
            db = await self._reopen_lazily()
        try:
            return await db.call(job, *args, inline=inline)
        except sqlite3.Error as exc:
            raise PersistenceError(f"SQLite database '{self.db_path}': {exc}") from exc

    async def _write(self, job: Callable[..., _T], *args: Any) -> _T:
        """A one-workflow write (inline unless the database is locked), counted for checkpoints."""
        result = await self._run(job, *args, inline=True)
        if self._checkpointer is not None:
            self._checkpointer.note_write()
        return result

    async def _reopen_lazily(self) -> ConnectionThread:
        if self._closed:
            raise PersistenceError(
                f"SQLite provider for '{self.db_path}' is closed (call initialize() to reopen)"
            )
        await self.initialize()
        assert self._db is not None
        return self._db

    async def _open(self) -> ConnectionThread:
        path = self.db_path
        if not self.in_memory and not Path(path).parent.is_dir():
            raise PersistenceError(
                f"cannot open SQLite database '{path}': directory '{Path(path).parent}' does not "
                "exist (create it, or point db_path / RUVON_DATABASE_URL at an existing one)"
            )
        db = ConnectionThread(f"ruvon-sqlite {Path(path).name}")
        try:
            await db.open(path, self.timeout)
        except sqlite3.Error as exc:
            raise PersistenceError(
                f"cannot open SQLite database '{path}': {exc} (check the path and permissions)"
            ) from exc
        try:
            busy_timeout_ms = int(self.timeout * 1000)
            older = await db.run(_open_database, path, self.in_memory, busy_timeout_ms)
            if older is not None:
                await self._upgrade_from(older)
        except sqlite3.Error as exc:
            await db.close()
            if exc.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
                raise PersistenceError(
                    f"'{path}' is not a SQLite database ({exc}); point db_path at a Ruvon "
                    "database file or at a new path"
                ) from exc
            raise PersistenceError(f"cannot initialize SQLite database '{path}': {exc}") from exc
        except BaseException:
            await db.close()
            raise
        return db

    async def _upgrade_from(self, revision: str) -> None:
        """Run the migrations from ``revision`` to the head (batch mode) on a second connection."""
        from ruvon.db_schema import migrations

        url, where = f"sqlite:///{self.db_path}", f"SQLite database '{self.db_path}'"
        _log.info("upgrading %s from schema revision %s", where, revision)
        try:
            await asyncio.to_thread(migrations.upgrade, url)
            found = await asyncio.to_thread(migrations.current_revision, url)
        except RuvonError:
            raise
        except Exception as exc:  # SQLAlchemy / Alembic errors from inside a revision
            raise PersistenceError(
                f"upgrading {where} from schema revision {revision} failed: {exc}"
            ) from exc
        migrations.assert_schema_compatible(found, database=where)
