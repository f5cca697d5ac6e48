"""Background WAL checkpoints for file-backed SQLite databases."""

from __future__ import annotations

import logging
import sqlite3
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["BackgroundCheckpointer"]

_log = logging.getLogger(__name__)


class BackgroundCheckpointer:
    """PASSIVE WAL checkpoints on a second connection and thread, off the commit path.

    A checkpoint fsyncs the WAL and the database file. SQLite's inline autocheckpoint makes
    whichever commit crosses the threshold pay for that (~40 µs per save on average on a local
    SSD, far more on network volumes); WAL lets a checkpoint run beside the writer instead.
    ``checkpoint_sql`` is the statement to run (the ``checkpoint`` query of ``sql/workflows.sql``).
    """

    every_writes = 128  # ~900 WAL pages at ~7 pages per save with one audit row

    def __init__(self, path: str, timeout: float, checkpoint_sql: str) -> None:
        self._path = path
        self._timeout = timeout
        self._checkpoint_sql = checkpoint_sql
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ruvon-sqlite-checkpoint")
        self._conn: sqlite3.Connection | None = None
        self._pending: Future[None] | None = None
        self._writes = 0

    def note_write(self) -> None:
        """Count one committed write; start a checkpoint every ``every_writes`` writes."""
        self._writes += 1
        if self._writes >= self.every_writes and (self._pending is None or self._pending.done()):
            self._writes = 0
            self._pending = self._executor.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(self._path, timeout=self._timeout)
            self._conn.execute(self._checkpoint_sql).fetchall()
        except sqlite3.Error as exc:  # a missed checkpoint only lets the WAL grow a little
            _log.warning(
                "background checkpoint of SQLite database '%s' failed: %s", self._path, exc
            )

    def close(self) -> None:
        """Wait for a running checkpoint, then close (blocking; call it from a thread)."""
        self._executor.submit(lambda: self._conn.close() if self._conn is not None else None)
        self._executor.shutdown(wait=True)
