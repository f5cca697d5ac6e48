"""The cluster's ``ruvon_workflows_started_total{workflow_type}``, read from PostgreSQL by the beat.

On a cluster a workflow is started wherever ``create_workflow`` runs: a client (``ruvon
start``, ``Client.start``, a load test), a worker (a child), the beat (a cron schedule).
Clients usually export no metrics, so counting in the process that starts a workflow missed most
starts (the throughput panel showed 0 while Locust started 199 workflows). Every start inserts
one ``workflow_executions`` row, in the transaction that stores its first run, and nothing
deletes rows: the number of rows per type *is* the cluster's start counter. The beat serves it
at each scrape:

* exactly once across any number of workers (one database, one reader);
* monotonic across beat restarts, rolling updates and worker restarts (it lives in PostgreSQL,
  not in a process), so ``rate()`` sees no reset;
* a workflow counts when it is stored, whether or not a worker has taken it yet.

Counting at the worker instead (the first claim of a workflow's first run) would miss
workflows no worker has taken yet and would have to tell a first run from a retry, a re-queued
zombie or a parallel branch; a counter kept in the beat's memory would reset at each restart and
miss starts while it is down. The cost is one index-only ``count(*) ... GROUP BY`` per scrape.
Run one beat: two would each serve the same total (``sum`` doubles it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from ruvon.implementations.persistence.queries import load_queries

__all__ = ["WorkflowsStartedCollector", "read_workflows_started"]

logger = logging.getLogger("ruvon.metrics")

_Q = load_queries(Path(__file__).with_name("sql") / "workflow_counts.sql")
QUERY_TIMEOUT = 5.0


async def read_workflows_started(connection: Any, timeout: float = QUERY_TIMEOUT) -> dict[str, int]:
    """Workflows ever stored, per type (``connection``: an asyncpg connection or pool)."""
    rows = await connection.fetch(_Q["workflows_started"], timeout=timeout)
    return {str(row[0]): int(row[1]) for row in rows}


class WorkflowsStartedCollector(Collector):
    """A Prometheus collector serving ``read()`` as ``ruvon_workflows_started_total``.

    A failed read serves nothing for that scrape (a gap, not a drop to 0 that ``rate()`` would
    take for a counter reset); ``ruvon_queue_stats_up`` reports the database failing.
    """

    def __init__(self, read: Callable[[], Mapping[str, int]]) -> None:
        self._read = read
        self._failing = False
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Metric]:
        return []  # no read at registration

    def collect(self) -> Iterable[Metric]:
        try:
            counts = dict(self._read())
        except Exception as exc:
            with self._lock:
                first, self._failing = not self._failing, True
            if first:  # once per outage, not at every scrape
                logger.warning("workflow counts: cannot read the database: %s", exc)
            return []
        with self._lock:
            self._failing = False
        started = CounterMetricFamily(
            "ruvon_workflows_started",
            "Workflows started on the cluster (stored in its database), by any process.",
            labels=["workflow_type"],
        )
        for workflow_type, count in sorted(counts.items()):
            started.add_metric([workflow_type], count)
        return [started]
