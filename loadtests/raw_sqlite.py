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

__all__ = ["RawUpdates"]

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


class RawUpdates:
    """One row of JSON state in its own file, rewritten by hand: ``UPDATE`` + ``COMMIT``.

    ``state`` is the state written (with a changing ``counter``). A context manager: the
    connection opens (and is warmed) on entry and closes on exit.
    """

    def __init__(self, path: Path, state: dict[str, Any] | None = None) -> None:
        self._path = path
        self._base = dict(state or {})
        self._conn: sqlite3.Connection | None = None
        self._writes = 0

    def __enter__(self) -> RawUpdates:
        self._conn = _connect(self._path)
        self._conn.execute(_SETUP)
        self._conn.execute(_INSERT, (_ID, dumps(self._base).decode()))
        self._conn.commit()
        self.seconds(_WARM)  # the statement cache and the row's page
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def seconds(self, n: int) -> float:
        """Seconds that ``n`` UPDATE + COMMIT of the state take, in all."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("RawUpdates is used outside its with block")
        base, start = self._base, self._writes
        started = time.perf_counter()
        for i in range(start, start + n):
            conn.execute(_UPDATE, (dumps({**base, "counter": i}).decode(), _ID))
            conn.commit()
        elapsed = time.perf_counter() - started
        self._writes += n
        return elapsed
