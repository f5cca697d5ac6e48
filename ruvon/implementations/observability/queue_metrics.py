"""Queue depth and lag, read from PostgreSQL when scraped (the beat serves them).

=============================  =====  ==========================================================
metric                         label  meaning
=============================  =====  ==========================================================
``ruvon_steps_queued``         queue  due step runs waiting for a worker (QUEUED, run_at past)
``ruvon_steps_scheduled``      queue  QUEUED runs not due yet (a retry's backoff)
``ruvon_queue_lag_seconds``    queue  age of the oldest due run: how long work waits for a worker
``ruvon_queue_stats_up``              1 if the last read succeeded, 0 if the database failed
=============================  =====  ==========================================================

The database is the truth about what waits (a broker's queue length counts hints, which may be
lost or doubled). A queue seen once keeps being reported (at 0 when it empties), so an alert on
lag does not go silent exactly when the queue drains.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ruvon.bridge import EventLoopBridge
from ruvon.implementations.persistence.queries import load_queries

__all__ = ["PostgresQueueStats", "QueueMetricsCollector", "QueueStats", "read_queue_stats"]

logger = logging.getLogger("ruvon.metrics")

_Q = load_queries(Path(__file__).with_name("sql") / "queue_metrics.sql")
QUERY_TIMEOUT = 5.0
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What waits on one queue."""

    queue: str
    queued: int
    scheduled: int
    lag_seconds: float


async def read_queue_stats(connection: Any, timeout: float = QUERY_TIMEOUT) -> list[QueueStats]:
    """The stats of every queue with QUEUED runs (``connection``: an asyncpg connection/pool)."""
    rows = await connection.fetch(_Q["queue_stats"], timeout=timeout)
    return [QueueStats(str(r[0]), int(r[1]), int(r[2]), float(r[3])) for r in rows]


class QueueMetricsCollector(Collector):
    """A Prometheus collector calling ``read()`` at each scrape."""

    def __init__(self, read: Callable[[], Sequence[QueueStats]]) -> None:
        self._read = read
        self._seen: set[str] = set()
        self._failing = False
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Metric]:
        return []  # no read at registration

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "ruvon_queue_stats_up", "1 if the queue stats were read from the database."
        )
        try:
            stats = list(self._read())
        except Exception as exc:
            self._report_failure(exc)
            up.add_metric([], 0)
            return [up]
        with self._lock:
            if self._failing:
                logger.info("queue metrics: reading the database works again")
            self._failing = False
            by_queue = {s.queue: s for s in stats}
            self._seen |= by_queue.keys()
            queues = sorted(self._seen)
        queued = GaugeMetricFamily(
            "ruvon_steps_queued", "Due step runs waiting for a worker.", labels=["queue"]
        )
        scheduled = GaugeMetricFamily(
            "ruvon_steps_scheduled",
            "Queued step runs not due yet (retry backoff).",
            labels=["queue"],
        )
        lag = GaugeMetricFamily(
            "ruvon_queue_lag_seconds",
            "Age of the oldest due step run waiting for a worker.",
            labels=["queue"],
        )
        for queue in queues:
            entry = by_queue.get(queue) or QueueStats(queue, 0, 0, 0.0)
            queued.add_metric([queue], entry.queued)
            scheduled.add_metric([queue], entry.scheduled)
            lag.add_metric([queue], max(entry.lag_seconds, 0.0))
        up.add_metric([], 1)
        return [queued, scheduled, lag, up]

    def _report_failure(self, exc: Exception) -> None:
        with self._lock:
            first, self._failing = not self._failing, True
        if first:  # once per outage, not at every scrape
            logger.warning("queue metrics: cannot read the database: %s", exc)


class PostgresQueueStats:
    """Reads :class:`QueueStats` from a PostgreSQL URL, synchronously (for a collector).

    Owns a private event-loop bridge and a one-connection asyncpg pool, opened at the first
    read; :meth:`close` releases both. :meth:`query` runs other reads on them (the beat's
    workflow counts).
    """

    def __init__(self, url: str, *, application_name: str = "ruvon-metrics") -> None:
        from ruvon.implementations.persistence.postgres.target import ConnectionTarget

        self._dsn = ConnectionTarget.from_url(url).dsn
        self._application_name = application_name
        self._bridge: EventLoopBridge | None = None
        self._pool: Any = None
        self._lock = threading.Lock()

    def __call__(self) -> list[QueueStats]:
        return self.query(read_queue_stats)

    def query(self, read: Callable[[Any], Awaitable[T]]) -> T:
        """``read(pool)`` on the private bridge: its result."""
        with self._lock:  # one read at a time: scrapes are rare, and the pool opens once
            return self._open().run(self._read(read), timeout=QUERY_TIMEOUT + 5)

    def _open(self) -> EventLoopBridge:
        if self._bridge is None:
            self._bridge = EventLoopBridge(name="ruvon-queue-metrics")
            self._bridge.on_close(self._close_pool)
        return self._bridge

    async def _read(self, read: Callable[[Any], Awaitable[T]]) -> T:
        if self._pool is None:
            import asyncpg

            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=0,
                max_size=1,
                timeout=QUERY_TIMEOUT,
                server_settings={"application_name": self._application_name},
            )
        return await read(self._pool)

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def close(self) -> None:
        """Close the pool and the bridge (idempotent)."""
        with self._lock:
            bridge, self._bridge = self._bridge, None
        if bridge is not None:
            bridge.close()
