"""The SQLite provider's jobs: plain ``sqlite3`` functions, each one whole transaction.

A job runs on the provider's connection (inline on the caller's thread, or on the connection's
own thread: :mod:`.connection_thread`); it takes the connection first and raises Ruvon's
typed errors for what a constraint refused. The fenced save and the create commit their audit
(and compensation) rows with the workflow row, or nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruvon.errors import ConcurrencyConflict, PersistenceError, WorkflowNotFound
from ruvon.implementations.persistence.queries import load_queries
from ruvon.implementations.persistence.sqlite.rows import Row, dicts

__all__ = [
    "QUERIES",
    "append_row",
    "create_workflow",
    "execute",
    "save_workflow",
    "select",
    "transaction",
]

QUERIES = load_queries(Path(__file__).with_name("sql") / "workflows.sql")


def execute(conn: sqlite3.Connection, sql: str, params: Any) -> list[Row]:
    """One statement (in autocommit mode a statement is its own transaction)."""
    return conn.execute(sql, params).fetchall()


def select(conn: sqlite3.Connection, sql: str, params: Any) -> list[dict[str, Any]]:
    """One query, rows as column-name dicts."""
    return dicts(conn.execute(sql, params))


def append_row(conn: sqlite3.Connection, sql: str, params: Row) -> None:
    """Insert a log row whose first column is its workflow id."""
    try:
        conn.execute(sql, params)
    except sqlite3.IntegrityError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
            raise WorkflowNotFound(params[0]) from None
        raise


@contextmanager
def transaction(
    conn: sqlite3.Connection, workflow_id: str, audit_rows: list[Row]
) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error; constraint errors get Ruvon types.

    IMMEDIATE takes the write lock up front (waiting up to busy_timeout), so a transaction never
    fails half-way because another process upgraded its lock first.
    """
    conn.execute(QUERIES["begin_immediate"])
    try:
        yield
        conn.commit()
    except sqlite3.IntegrityError as exc:
        conn.rollback()
        if exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
            raise PersistenceError(
                f"workflow '{workflow_id}' already exists (workflow ids must be unique)"
            ) from None
        if exc.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
            # An audit row names a workflow that does not exist.
            missing = next((r[0] for r in audit_rows if r[0] != workflow_id), workflow_id)
            raise WorkflowNotFound(missing) from None
        raise
    except BaseException:
        conn.rollback()
        raise


def create_workflow(
    conn: sqlite3.Connection, params: dict[str, Any], audit_rows: list[Row]
) -> dict[str, Any] | None:
    """Insert unless the idempotency key exists; return the existing row if it does."""
    with transaction(conn, params["id"], audit_rows):
        key = params["idempotency_key"]
        if key is not None:
            existing = dicts(conn.execute(QUERIES["find_by_idempotency_key"], (key,)))
            if existing:
                return existing[0]
        conn.execute(QUERIES["insert_workflow"], params)
        if audit_rows:
            conn.executemany(QUERIES["insert_audit"], audit_rows)
    return None


def save_workflow(
    conn: sqlite3.Connection,
    params: dict[str, Any],
    audit_rows: list[Row],
    compensation_rows: list[Row],
    indexed_unchanged: bool,
) -> None:
    """The fenced save, its audit and compensation rows, committed together or not at all.

    ``indexed_unchanged``: the row at the expected version is known to hold the indexed values
    already (:mod:`.indexed_columns`), so their conditional ``UPDATE`` is skipped.
    """
    workflow_id = params["id"]
    with transaction(conn, workflow_id, audit_rows):
        if conn.execute(QUERIES["update_workflow"], params).rowcount != 1:
            if conn.execute(QUERIES["workflow_exists"], (workflow_id,)).fetchone() is None:
                raise WorkflowNotFound(workflow_id)
            raise ConcurrencyConflict(workflow_id, params["expected_version"])
        if not indexed_unchanged:
            conn.execute(QUERIES["update_workflow_indexed"], params)
        if audit_rows:
            conn.executemany(QUERIES["insert_audit"], audit_rows)
        if compensation_rows:
            conn.executemany(QUERIES["insert_compensation"], compensation_rows)
