"""Signals on SQLite: named events kept in ``workflow_signals`` (``sql/signals.sql``).

Mixed into :class:`~ruvon.implementations.persistence.sqlite.SQLitePersistenceProvider`. The
unique ``(workflow_id, event_id)`` makes a duplicate send one statement that inserts nothing,
whichever process sends it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ruvon.errors import WorkflowNotFound
from ruvon.implementations.persistence.queries import load_queries
from ruvon.implementations.persistence.sqlite.rows import Row, json, text, time
from ruvon.records import SignalRecord
from ruvon.serialization import loads

__all__ = ["SQLiteSignals"]

_Q = load_queries(Path(__file__).with_name("sql") / "signals.sql")


def _insert_signal(conn: sqlite3.Connection, sql: str, params: Row) -> bool:
    """Insert a signal (its own transaction, in autocommit); False if its event id is there
    already, ``WorkflowNotFound`` if its workflow is not."""
    try:
        return conn.execute(sql, params).rowcount == 1
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
            raise WorkflowNotFound(params[0]) from None
        raise


def _rows(conn: sqlite3.Connection, sql: str, params: Any) -> list[Row]:
    return conn.execute(sql, params).fetchall()


class SQLiteSignals:
    """Signal statements of the SQLite provider."""

    # Provided by SQLitePersistenceProvider (provider.py).
    _run: Callable[..., Awaitable[Any]]
    _write: Callable[..., Awaitable[Any]]

    async def record_signal(self, signal: SignalRecord) -> bool:
        """Keep a signal unless its workflow has one with the same event id."""
        params = (signal.workflow_id, signal.name, signal.event_id, json(signal.data),
                  signal.sent_by, text(signal.sent_at))  # fmt: skip
        inserted: bool = await self._write(_insert_signal, _Q["insert_signal"], params)
        return inserted

    async def list_signals(self, workflow_id: str, name: str | None = None) -> list[SignalRecord]:
        """A workflow's signals (called ``name``, if given), oldest first."""
        params = {"workflow_id": workflow_id, "name": name}
        rows: list[Row] = await self._run(_rows, _Q["list_signals"], params)
        return [
            SignalRecord(w, signal_name, event_id, loads(data), by, time(at))
            for w, signal_name, event_id, data, by, at in rows
        ]
