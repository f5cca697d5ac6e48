"""Signals on PostgreSQL: named events kept in ``workflow_signals`` (``sql/signals.sql``).

Mixed into :class:`~ruvon.implementations.persistence.postgres.PostgresPersistenceProvider`.
The unique ``(workflow_id, event_id)`` makes a duplicate send one statement that inserts
nothing, however many senders race.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from ruvon.errors import WorkflowNotFound
from ruvon.implementations.persistence.queries import load_queries
from ruvon.records import SignalRecord
from ruvon.serialization import dumps

__all__ = ["PostgresSignals"]

_Q = load_queries(Path(__file__).with_name("sql") / "signals.sql")


class PostgresSignals:
    """Signal statements of the PostgreSQL provider."""

    # Provided by PostgresPool (pool.py), the provider's other base.
    _query: Callable[[str, str, str, tuple[Any, ...]], Awaitable[Any]]

    async def record_signal(self, signal: SignalRecord) -> bool:
        """Keep a signal unless its workflow has one with the same event id."""
        params = (signal.workflow_id, signal.name, signal.event_id, dumps(signal.data),
                  signal.sent_by, signal.sent_at)  # fmt: skip
        try:
            inserted = await self._query("record signal", "fetchval", _Q["insert_signal"], params)
        except asyncpg.ForeignKeyViolationError:
            raise WorkflowNotFound(signal.workflow_id) from None
        return inserted is not None

    async def list_signals(self, workflow_id: str, name: str | None = None) -> list[SignalRecord]:
        """A workflow's signals (called ``name``, if given), oldest first."""
        rows = await self._query("list signals", "fetch", _Q["list_signals"], (workflow_id, name))
        return [SignalRecord(*row) for row in rows]
