"""The ``priority`` suite of ``python -m loadtests.bench``: urgent workflows behind a backlog.

One local cluster (one prefork worker of two processes, :func:`distributed_cluster` without the
queue split) and, per run:

1. ``backlog`` (default 2,000) ``BenchAsync3`` workflows started at priority 0, as fast as four
   client coroutines can start them; the workers start draining them at once;
2. once they are all stored, ``urgent`` (default 50) more at priority 9, one every
   ``spacing`` ms (default 20), while the backlog is still waiting;
3. wait until all are COMPLETED.

Each workflow's latency is ``completed_at - created_at`` on the database's clock (its start's
commit to its last step's). A run's figure is the p50 of the urgent ones over the p50 of the
backlog's: the target is <= 0.2 (issue 15). The backlog must still be queued when the urgent
workflows start, or the run proves nothing: the suite checks it (runs waiting behind them, read
from ``step_runs`` when the last urgent start committed) and reports the figure.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import asyncpg

from loadtests.bench import Figure, _figure
from loadtests.bench_distributed import (
    ONE_QUEUE,
    _client,
    _connection,
    _wait_batch,
    distributed_cluster,
)
from ruvon.client import Client

__all__ = ["bench_priority"]

LOW, HIGH = 0, 9
_STARTERS = 4
_LATENCY = (
    "SELECT extract(epoch FROM completed_at - created_at) * 1e3 FROM workflow_executions"
    " WHERE id = ANY($1::text[])"
)
_WAITING = "SELECT count(*) FROM step_runs WHERE status = 'QUEUED' AND priority = $1"


async def _start_backlog(client: Client, count: int) -> list[str]:
    ids: list[str] = []

    async def start(share: int) -> None:
        for _ in range(share):
            record = await client.start(ONE_QUEUE, {"counter": 0}, check_broker=False)
            ids.append(record.id)

    shares = [count // _STARTERS + (i < count % _STARTERS) for i in range(_STARTERS)]
    await asyncio.gather(*(start(share) for share in shares if share))
    return ids


async def _one_run(
    client: Client, db: asyncpg.Connection, backlog: int, urgent: int, spacing: float
) -> tuple[float, float, int]:
    """(backlog p50 ms, urgent p50 ms, backlog runs still queued after the urgent starts)."""
    low = await _start_backlog(client, backlog)
    high = []
    for _ in range(urgent):
        record = await client.start(ONE_QUEUE, {"counter": 0}, priority=HIGH, check_broker=False)
        high.append(record.id)
        await asyncio.sleep(spacing)
    behind = int(await db.fetchval(_WAITING, LOW))
    await _wait_batch(db, [*low, *high])
    low_ms = [float(row[0]) for row in await db.fetch(_LATENCY, low)]
    high_ms = [float(row[0]) for row in await db.fetch(_LATENCY, high)]
    return statistics.median(low_ms), statistics.median(high_ms), behind


def bench_priority(
    runs: int = 3, backlog: int = 2000, urgent: int = 50, spacing: float = 0.02
) -> list[Figure]:
    """The figures of ``bench priority`` (see the module docstring)."""
    with distributed_cluster(split_step_queues=False) as cluster:

        async def main() -> list[tuple[float, float, int]]:
            async with _client(cluster) as client, _connection(cluster) as db:
                warm = await client.start(ONE_QUEUE, {"counter": 0})  # checks the broker once
                await _wait_batch(db, [warm.id])
                return [await _one_run(client, db, backlog, urgent, spacing) for _ in range(runs)]

        started = time.perf_counter()
        results = asyncio.run(main())
        elapsed = time.perf_counter() - started
    low = [r[0] for r in results]
    high = [r[1] for r in results]
    behind = [float(r[2]) for r in results]
    return [
        _figure(f"priority 0 backlog of {backlog}: completion p50", "ms", low),
        _figure(f"priority 9, {urgent} started behind it: completion p50", "ms", high),
        _figure("backlog runs still queued after the last urgent start", "runs", behind),
        _figure(
            "urgent p50 / backlog p50",
            "ratio",
            [h / b for h, b in zip(high, low, strict=True)],
            "target <= 0.2",
        ),
        _figure("suite wall time", "s", [elapsed]),
    ]
