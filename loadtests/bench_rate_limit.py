"""The ``rate_limit`` suite of ``python -m loadtests.bench``: a cluster-wide rate limit.

One local cluster (one prefork worker of two processes) and, per run, ``calls`` (default 500)
``BenchRated`` workflows started at once, as fast as four client coroutines can start them:
one ASYNC step each, ``rate_limit: {per_second: 20, burst: 5}`` on a key of its own per run
(so runs do not share a cell). A run over the limit is deferred to its turn (``run_at``), not
failed and not polled.

Figures per run: the time from the first start to the last completion (the target, issue 15:
between 24.5 s and 27 s for 500 calls: 495 after the burst at 20 a second take 24.75 s), and
the worst window: over every pair of calls i < j (by the time each step function started,
read from its state), ``(j - i + 1) - (burst + rate * (t_j - t_i))``, which must never be
above 0 (the limit allows ``burst + rate * t`` calls in any window of t seconds).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg

from loadtests.bench import Figure, _figure
from loadtests.bench_distributed import _client, _connection, _wait_batch, distributed_cluster
from ruvon.client import Client

__all__ = ["BURST", "RATE", "bench_rate_limit", "worst_window"]

RATE, BURST = 20.0, 5
_STARTERS = 4
_CALLED = (
    "SELECT (state->>'called_at')::float8, extract(epoch FROM created_at)::float8,"
    " extract(epoch FROM completed_at)::float8 FROM workflow_executions"
    " WHERE id = ANY($1::text[])"
)
_ATTEMPTS = (
    "SELECT count(*) FILTER (WHERE reserved_step IS NOT NULL), max(attempt) FROM step_runs"
    " WHERE workflow_id = ANY($1::text[]) AND kind = 'step'"
)


def worst_window(times: list[float], rate: float = RATE, burst: int = BURST) -> float:
    """The most calls any window held beyond ``burst + rate * t`` (<= 0: the limit held)."""
    ordered = sorted(times)
    worst = float("-inf")
    for i, first in enumerate(ordered):
        for j in range(i, len(ordered)):
            worst = max(worst, (j - i + 1) - (burst + rate * (ordered[j] - first)))
    return worst


async def _start(client: Client, count: int, run: str) -> list[str]:
    ids: list[str] = []

    async def start(share: int) -> None:
        for _ in range(share):
            record = await client.start("BenchRated", {"run": run}, check_broker=False)
            ids.append(record.id)

    shares = [count // _STARTERS + (i < count % _STARTERS) for i in range(_STARTERS)]
    await asyncio.gather(*(start(share) for share in shares if share))
    return ids


async def _one_run(
    client: Client, db: asyncpg.Connection, calls: int
) -> tuple[float, float, int, int]:
    """(first start to last completion s, worst window, deferred runs, most attempts)."""
    ids = await _start(client, calls, uuid.uuid4().hex[:8])
    await _wait_batch(db, ids)
    rows = await db.fetch(_CALLED, ids)
    called = [float(r[0]) for r in rows]
    span = max(float(r[2]) for r in rows) - min(float(r[1]) for r in rows)
    deferred, attempts = await db.fetchrow(_ATTEMPTS, ids)
    return span, worst_window(called), int(deferred), int(attempts)


def bench_rate_limit(runs: int = 3, calls: int = 500) -> list[Figure]:
    """The figures of ``bench rate_limit`` (see the module docstring)."""
    lower = (calls - BURST) / RATE
    with distributed_cluster(split_step_queues=False) as cluster:

        async def main() -> list[tuple[float, float, int, int]]:
            async with _client(cluster) as client, _connection(cluster) as db:
                return [await _one_run(client, db, calls) for _ in range(runs)]

        started = time.perf_counter()
        results = asyncio.run(main())
        elapsed = time.perf_counter() - started
    return [
        _figure(
            f"{calls} calls at {RATE:g}/s burst {BURST}: first start to last done", "s",
            [r[0] for r in results], f"{lower - 0.25:.1f} <= x <= {lower + 2.25:.1f}",
        ),
        _figure("worst window: calls over burst + rate * t", "calls", [r[1] for r in results],
                "<= 0"),
        _figure("runs deferred to their turn", "runs", [float(r[2]) for r in results]),
        _figure("most attempts of one run (deferrals spend none)", "attempts",
                [float(r[3]) for r in results], "1"),
        _figure("suite wall time", "s", [elapsed]),
    ]  # fmt: skip
