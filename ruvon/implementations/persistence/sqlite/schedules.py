"""Schedule claims on SQLite: one conditional statement each (``sql/schedules.sql``).

Mixed into :class:`~ruvon.implementations.persistence.sqlite.SQLitePersistenceProvider`; it
implements :class:`ruvon.cluster.schedules.ScheduleClaims`, so several processes polling one
file (two ``ruvon worker --embedded``) start each tick once: a claim matches ``next_run_at`` as
the poller read it, and SQLite runs one statement as one transaction under its write lock, so
of two pollers that read the same row exactly one changes it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ruvon.clock import utc_now
from ruvon.implementations.persistence.queries import load_queries
from ruvon.implementations.persistence.sqlite.rows import Row, text, time, time_or_none
from ruvon.records import ScheduleRecord
from ruvon.serialization import loads

__all__ = ["SQLiteSchedules"]

_Q = load_queries(Path(__file__).with_name("sql") / "schedules.sql")


def _rows(conn: sqlite3.Connection, sql: str, params: Any) -> list[Row]:
    return conn.execute(sql, params).fetchall()


def _changed(conn: sqlite3.Connection, sql: str, params: Any) -> int:
    """How many rows one conditional UPDATE changed (its own transaction, in autocommit)."""
    return conn.execute(sql, params).rowcount


def _schedule(row: Row) -> ScheduleRecord:
    name, kind, cron, data, enabled, source, next_at, last_at, created = row
    return ScheduleRecord(name, kind, cron, loads(data), bool(enabled), source,
                          time_or_none(next_at), time_or_none(last_at), time(created))  # fmt: skip


class SQLiteSchedules:
    """Schedule statements of the SQLite provider."""

    # Provided by SQLitePersistenceProvider (provider.py).
    _run: Callable[..., Awaitable[Any]]
    _write: Callable[..., Awaitable[Any]]

    async def due_schedules(
        self, now: datetime | None, limit: int
    ) -> tuple[datetime, list[ScheduleRecord]]:
        """Enabled schedules due at ``now`` (None: this machine's clock), oldest tick first,
        and the moment they were judged against."""
        moment = now or utc_now()
        params = {"now": text(moment), "limit": max(limit, 0)}
        rows: list[Row] = await self._run(_rows, _Q["due_schedules"], params)
        return moment, [_schedule(row) for row in rows]

    async def claim_schedule_ticks(
        self, name: str, expected: datetime, next_run_at: datetime, last_run_at: datetime
    ) -> bool:
        """Take the ticks up to ``last_run_at``; only one caller holding ``expected`` wins."""
        return await self._move("claim_schedule_ticks", name, expected, next_run_at, last_run_at)

    async def release_schedule_ticks(
        self, name: str, expected: datetime, next_run_at: datetime, last_run_at: datetime | None
    ) -> bool:
        """Give back the ticks from ``next_run_at`` on, after a start failed."""
        return await self._move("release_schedule_ticks", name, expected, next_run_at, last_run_at)

    async def update_schedule_enabled(
        self, name: str, enabled: bool, next_run_at: datetime | None
    ) -> ScheduleRecord | None:
        """Pause or resume; a resume of a paused schedule moves it to ``next_run_at``."""
        params = {"name": name, "enabled": int(enabled), "next_run_at": text(next_run_at)}
        rows: list[Row] = await self._write(_rows, _Q["set_schedule_enabled"], params)
        return _schedule(rows[0]) if rows else None

    async def _move(
        self,
        query: str,
        name: str,
        expected: datetime,
        next_run_at: datetime,
        last_run_at: datetime | None,
    ) -> bool:
        params = {
            "name": name,
            "expected": text(expected),
            "next_run_at": text(next_run_at),
            "last_run_at": text(last_run_at),
        }
        changed: int = await self._write(_changed, _Q[query], params)
        return changed == 1
