"""The raw-``sqlite3`` baseline of the embedded benchmark: what one durable write costs by hand.

A plain ``sqlite3`` connection on its own file beside Ruvon's, configured with the provider's
own pragmas (its named queries ``enable_wal``, ``configure_connection`` and
``defer_checkpoints``: WAL, ``synchronous=NORMAL``, the same checkpoint threshold), so the
baseline keeps exactly Ruvon's durability, never a weaker or a stronger one. Each write is
``UPDATE workflow_state SET state=? WHERE id=?`` of the JSON state (encoded per write, as an
application would) and ``COMMIT``, the way a hand-written durable app would save after each step.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from ruvon.implementations.persistence import sqlite as sqlite_provider
from ruvon.implementations.persistence.queries import load_queries
from ruvon.serialization import dumps

__all__ = ["raw_update_seconds"]

_PROVIDER_SQL = Path(sqlite_provider.__file__).with_name("sql") / "workflows.sql"
_SETUP = "CREATE TABLE workflow_state (id TEXT PRIMARY KEY, state TEXT NOT NULL)"
_INSERT = "INSERT INTO workflow_state (id, state) VALUES (?, ?)"
_UPDATE = "UPDATE workflow_state SET state=? WHERE id=?"
_ID = "0b8f6c2e-3c1d-4a52-9d7e-5f0a1b2c3d4e"  # a workflow id is a UUID's text
_WARM = 50


def _connect(path: Path) -> sqlite3.Connection:
    """A connection with the SQLite provider's pragmas (read from its SQL, not restated)."""
    queries = load_queries(_PROVIDER_SQL)
    conn = sqlite3.connect(path)
    conn.execute(queries["enable_wal"]).fetchall()
    conn.execute(queries["defer_checkpoints"])
    conn.executescript(queries["configure_connection"])
    return conn


def raw_update_seconds(path: Path, n: int, state: dict[str, Any] | None = None) -> float:
    """Seconds per ``UPDATE`` + ``COMMIT`` of ``state`` (plus a changing counter) in ``path``."""
    base = state or {}
    conn = _connect(path)
    try:
        conn.execute(_SETUP)
        conn.execute(_INSERT, (_ID, dumps(base).decode()))
        conn.commit()
        for i in range(_WARM):  # the statement cache and the row's page
            conn.execute(_UPDATE, (dumps({**base, "counter": i}).decode(), _ID))
            conn.commit()
        started = time.perf_counter()
        for i in range(n):
            conn.execute(_UPDATE, (dumps({**base, "counter": i}).decode(), _ID))
            conn.commit()
        return (time.perf_counter() - started) / n
    finally:
        conn.close()
