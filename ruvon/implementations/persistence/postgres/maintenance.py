"""The beat's sweeps on PostgreSQL: one statement each (see ``sql/maintenance.sql``).

Mixed into :class:`~ruvon.implementations.persistence.postgres.PostgresPersistenceProvider`.
Every method returns the runs it queued (or re-queued) for the caller to announce.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ruvon.implementations.persistence.postgres.rows import audit_from_row
from ruvon.implementations.persistence.postgres.runs import queued_run
from ruvon.implementations.persistence.queries import load_queries
from ruvon.providers.ledger import (
    RECOVERY_EVENTS,
    ExpiredLease,
    LostRuns,
    QueueBacklog,
    UnclaimedQueues,
)
from ruvon.providers.runs import Lane, QueuedRun, RunKind
from ruvon.records import AuditEntry

__all__ = ["PostgresMaintenance"]

_Q = load_queries(Path(__file__).with_name("sql") / "maintenance.sql")


class PostgresMaintenance:
    """The PostgreSQL provider's :class:`~ruvon.providers.ledger.Maintenance` statements (and
    the :class:`~ruvon.providers.ledger.ClusterActivity` reads over the same rows)."""

    # Provided by PostgresPool (pool.py), the provider's other base.
    _query: Callable[[str, str, str, tuple[Any, ...]], Awaitable[Any]]

    async def _runs(self, operation: str, name: str, *args: Any) -> list[QueuedRun]:
        rows = await self._query(operation, "fetch", _Q[name], args)
        return [queued_run(tuple(row)) for row in rows]

    async def requeue_crashed(self, max_attempts: int, limit: int) -> list[QueuedRun]:
        """Expired leases with attempts left back to QUEUED (audited); the runs to announce."""
        return await self._runs("requeue crashed runs", "requeue_crashed", limit, max_attempts)

    async def exhausted_crashes(self, max_attempts: int, limit: int) -> list[int]:
        """Ids of expired runs that used up their attempts."""
        rows = await self._query(
            "find exhausted runs", "fetch", _Q["exhausted_crashes"], (limit, max_attempts)
        )
        return [row[0] for row in rows]

    async def expired_leases(self, older_than: float, limit: int) -> list[ExpiredLease]:
        """RUNNING runs whose lease expired more than ``older_than`` seconds ago."""
        rows = await self._query(
            "scan expired leases", "fetch", _Q["expired_leases"], (float(older_than), limit)
        )
        return [
            ExpiredLease(r[0], r[1], r[2], RunKind(r[3]), r[4], r[5], r[6], r[7], r[8])
            for r in rows
        ]

    async def unclaimed_queues(self, timeout: float) -> UnclaimedQueues:
        """Queues with due runs nobody claimed within ``timeout`` seconds, and the time now."""
        rows = await self._query(
            "find unclaimed queues", "fetch", _Q["unclaimed_queues"], (float(timeout),)
        )
        as_of: datetime | None = rows[0][2] if rows else None
        return UnclaimedQueues(tuple(sorted(Lane(row[0], row[1]) for row in rows)), as_of)

    async def redispatch_lost(
        self,
        timeout: float,
        limit: int,
        waiting: Mapping[Lane, int],
        as_of: datetime,
        suspected: Collection[int] = (),
    ) -> LostRuns:
        """Due runs unclaimed past ``timeout`` whose message the broker's counts say is missing:
        those already ``suspected`` marked sent again, the others suspected now."""
        lanes = sorted(waiting)
        counts = [max(int(waiting[lane]), 0) for lane in lanes]
        queues = [lane.queue for lane in lanes]
        priorities = [lane.priority for lane in lanes]
        rows = await self._query(
            "redispatch lost runs",
            "fetch",
            _Q["redispatch_lost"],
            (limit, float(timeout), queues, counts, as_of, sorted(set(suspected)), priorities),
        )
        resent = [queued_run(tuple(row)[1:]) for row in rows if row[0]]
        return LostRuns(resent, tuple(row[1] for row in rows if not row[0]))

    async def fire_due_timers(self, default_queue: str, limit: int) -> list[QueuedRun]:
        """An advance run for each cluster workflow whose timer is due."""
        return await self._runs("fire due timers", "fire_due_timers", limit, default_queue)

    async def fail_past_deadline(self, default_queue: str, limit: int) -> list[QueuedRun]:
        """An advance run for each unfinished cluster workflow past its deadline."""
        return await self._runs(
            "fail workflows past their deadline", "fail_past_deadline", limit, default_queue
        )

    async def reconcile_parents(
        self, default_queue: str, grace: float, limit: int
    ) -> list[QueuedRun]:
        """Resumption runs for parents whose child ended ``grace`` seconds ago or more."""
        return await self._runs(
            "reconcile parents", "reconcile_parents", limit, default_queue, float(grace)
        )

    async def reconcile_joins(
        self, default_queue: str, grace: float, limit: int
    ) -> list[QueuedRun]:
        """Join runs for complete joins that have none."""
        return await self._runs(
            "reconcile joins", "reconcile_joins", limit, default_queue, float(grace)
        )

    async def queue_backlog(self) -> list[QueueBacklog]:
        """Every queue with unfinished runs, by name."""
        rows = await self._query("read queue backlog", "fetch", _Q["queue_backlog"], ())
        return [QueueBacklog(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def recent_recoveries(self, limit: int) -> list[AuditEntry]:
        """The newest recoveries the beat audited, newest first."""
        rows = await self._query(
            "read recoveries",
            "fetch",
            _Q["recent_recoveries"],
            (max(limit, 0), list(RECOVERY_EVENTS)),
        )
        return [audit_from_row(row) for row in rows]
