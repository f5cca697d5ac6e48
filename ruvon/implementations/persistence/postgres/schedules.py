"""Schedule claims on PostgreSQL: one conditional statement each (``sql/schedules.sql``).

Mixed into :class:`~ruvon.implementations.persistence.postgres.PostgresPersistenceProvider`; it
implements :class:`ruvon.cluster.schedules.ScheduleClaims`, which makes the beat's poll safe
to run from several pollers at once: a tick's claim matches ``next_run_at`` as the poller read
it, so of two pollers that read the same row exactly one takes its ticks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ruvon.clock import utc_now
from ruvon.implementations.persistence.queries import load_queries
from ruvon.records import ScheduleRecord

__all__ = ["PostgresSchedules"]

_Q = load_queries(Path(__file__).with_name("sql") / "schedules.sql")
_SCHEDULE_COLUMNS = 9


class PostgresSchedules:
    """Schedule statements of the PostgreSQL provider."""

    # Provided by PostgresPool (pool.py), the provider's other base.
    _query: Callable[[str, str, str, tuple[Any, ...]], Awaitable[Any]]

    async def due_schedules(
        self, now: datetime | None, limit: int
    ) -> tuple[datetime, list[ScheduleRecord]]:
        """Enabled schedules due at ``now`` (None: the database clock), oldest tick first, and
        the moment they were judged against."""
        rows = await self._query("find due schedules", "fetch", _Q["due_schedules"], (now, limit))
        if not rows:
            return now or utc_now(), []
        schedules = [ScheduleRecord(*tuple(row)[:_SCHEDULE_COLUMNS]) for row in rows]
        judged_at: datetime = rows[0][_SCHEDULE_COLUMNS]
        return judged_at, schedules

    async def claim_schedule_ticks(
        self, name: str, expected: datetime, next_run_at: datetime, last_run_at: datetime
    ) -> bool:
        """Take the ticks up to ``last_run_at``; only one caller holding ``expected`` wins."""
        args = (name, expected, next_run_at, last_run_at)
        row = await self._query(
            "claim schedule ticks", "fetchrow", _Q["claim_schedule_ticks"], args
        )
        return row is not None

    async def release_schedule_ticks(
        self, name: str, expected: datetime, next_run_at: datetime, last_run_at: datetime | None
    ) -> bool:
        """Give back the ticks from ``next_run_at`` on, after a start failed."""
        args = (name, expected, next_run_at, last_run_at)
        row = await self._query(
            "release schedule ticks", "fetchrow", _Q["release_schedule_ticks"], args
        )
        return row is not None

    async def update_schedule_enabled(
        self, name: str, enabled: bool, next_run_at: datetime | None
    ) -> ScheduleRecord | None:
        """Pause or resume; a resume of a paused schedule moves it to ``next_run_at``."""
        row = await self._query(
            "pause or resume schedule",
            "fetchrow",
            _Q["set_schedule_enabled"],
            (name, enabled, next_run_at),
        )
        return ScheduleRecord(*tuple(row)) if row is not None else None
