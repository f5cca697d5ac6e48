"""Schedule claims on Redis: a compare-and-set of one field of the ``schedules`` hash.

Mixed into :class:`~ruvon.implementations.persistence.redis.RedisPersistenceProvider`; it
implements :class:`ruvon.cluster.schedules.ScheduleClaims`. Each conditional update is an
optimistic transaction: WATCH the hash, read the row, check it in Python, then MULTI/EXEC the
new row. EXEC fails if anyone wrote the hash since the WATCH, and the check is then made again
on a fresh read, so of two pollers that read one ``next_run_at`` exactly one moves it. (Not a
Lua script: re-encoding the row in Lua would change its JSON, an empty list becoming ``{}``.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from ruvon.clock import utc_now
from ruvon.implementations.persistence.redis.codec import schedule_from_value, schedule_value
from ruvon.implementations.persistence.redis.keys import RedisKeys
from ruvon.implementations.persistence.redis.scripts import RedisScripts
from ruvon.records import ScheduleRecord

__all__ = ["RedisSchedules"]

# A row is rewritten only when it passes the check; what the check says of the stored row.
_Change = Callable[[ScheduleRecord], ScheduleRecord | None]


def _utc(moment: datetime | None) -> datetime | None:
    """Naive datetimes are UTC (as every provider stores them); aware ones compare as UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class RedisSchedules:
    """Schedule statements of the Redis provider."""

    # Provided by RedisPersistenceProvider (provider.py).
    keys: RedisKeys
    _connection: Callable[[], Awaitable[RedisScripts]]
    _guard: Callable[[Awaitable[Any]], Awaitable[Any]]

    async def due_schedules(
        self, now: datetime | None, limit: int
    ) -> tuple[datetime, list[ScheduleRecord]]:
        """Enabled schedules due at ``now`` (None: this machine's clock), oldest tick first,
        and the moment they were judged against."""
        moment = _utc(now) or utc_now()
        scripts = await self._connection()
        raw: dict[bytes, bytes] = await self._guard(scripts.client.hgetall(self.keys.schedules))
        rows = [schedule_from_value(name.decode(), value) for name, value in raw.items()]
        due = [r for r in rows if r.enabled and (_utc(r.next_run_at) or moment) <= moment
               and r.next_run_at is not None]  # fmt: skip
        due.sort(key=lambda r: (_utc(r.next_run_at) or moment, r.name))
        return moment, due[: max(limit, 0)]

    async def claim_schedule_ticks(
        self, name: str, expected: datetime, next_run_at: datetime, last_run_at: datetime
    ) -> bool:
        """Take the ticks up to ``last_run_at``; only one caller holding ``expected`` wins."""

        def change(row: ScheduleRecord) -> ScheduleRecord | None:
            if not row.enabled or _utc(row.next_run_at) != _utc(expected):
                return None
            return replace(row, next_run_at=next_run_at, last_run_at=last_run_at)

        return await self._compare_and_set(name, change) is not None

    async def release_schedule_ticks(
        self, name: str, expected: datetime, next_run_at: datetime, last_run_at: datetime | None
    ) -> bool:
        """Give back the ticks from ``next_run_at`` on, after a start failed."""

        def change(row: ScheduleRecord) -> ScheduleRecord | None:
            if _utc(row.next_run_at) != _utc(expected):
                return None
            return replace(row, next_run_at=next_run_at, last_run_at=last_run_at)

        return await self._compare_and_set(name, change) is not None

    async def update_schedule_enabled(
        self, name: str, enabled: bool, next_run_at: datetime | None
    ) -> ScheduleRecord | None:
        """Pause or resume; a resume of a paused schedule moves it to ``next_run_at``."""

        def change(row: ScheduleRecord) -> ScheduleRecord:
            moved = next_run_at if enabled and not row.enabled else row.next_run_at
            return replace(row, enabled=enabled, next_run_at=moved)

        return await self._compare_and_set(name, change)

    async def _compare_and_set(self, name: str, change: _Change) -> ScheduleRecord | None:
        """Rewrite the row ``name`` as ``change`` says, atomically; None if it says no."""
        scripts = await self._connection()
        key = self.keys.schedules

        async def attempt(pipe: Pipeline) -> ScheduleRecord | None:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hget(key, name)  # immediate mode while watching
                    if raw is None:
                        return None
                    updated = change(schedule_from_value(name, cast(bytes, raw)))
                    if updated is None:
                        return None
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                    pipe.hset(key, name, schedule_value(updated))
                    await pipe.execute()
                    return updated
                except WatchError:
                    continue  # the hash changed since the read: check again
                finally:
                    await pipe.reset()  # type: ignore[no-untyped-call]

        async def run() -> ScheduleRecord | None:
            async with scripts.client.pipeline(transaction=True) as pipe:
                return await attempt(pipe)

        result: ScheduleRecord | None = await self._guard(run())
        return result
