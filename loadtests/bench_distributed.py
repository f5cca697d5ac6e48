"""The ``distributed`` suite of ``python -m loadtests.bench``: Ruvon on a cluster vs raw Celery.

One :class:`~ruvon.testing.cluster.LocalCluster` serves the whole run: one ``ruvon worker``,
prefork, concurrency 2, knowing the workflows of ``loadtests/workflows`` (``RUVON_REGISTRY_FILE``)
and the raw tasks of :mod:`loadtests.raw_tasks`, so both sides use the same broker, database and
pool processes. Figures (each the median of ``runs`` runs with the min-max spread):

(a) raw Celery empty tasks/s (:func:`loadtests.raw_celery.empty_task_throughput`);
(b) steps/s of ``BenchAsync3`` (three ASYNC steps): ``N`` workflows started by a few concurrent
    client coroutines, timed from the first start until one query counting their statuses says
    all are COMPLETED; steps/s = 3 N / elapsed;
(c) completed fan-outs/s of ``BenchFanOut10`` (a PARALLEL step of 10 branches), timed the same
    way, next to raw chords of 10 empty tasks/s;
(d) one ASYNC step's dispatch-to-commit latency: sequential ``BenchAsync1`` workflows, read
    from ``step_runs`` (kind ``step``): ``finished_at - created_at``, i.e. from the commit that
    queued the run (PostgreSQL's ``now()`` is its transaction's start) to the commit of its
    result, both on the database clock. p50/p99 next to a raw ``.delay().get()`` round trip,
    with the split into queue wait (``created_at -> started_at``: commit, message, broker hop,
    claim) and run (``started_at -> finished_at``: load, execute, save), and the client's view
    (start -> COMPLETED seen by polling, which adds the workflow's start run) for information.

Raw and Ruvon runs alternate ((a) (b) (c) (d) per run) and each ratio is taken within a run,
so both sides of a ratio see the same machine load. Targets: (b)/(a) >= 0.6, (c) fan-outs over
chords >= 1.0, (d) p50 over the raw p50 <= 2.0. Clients start workflows without the per-call
broker check (``check_broker=False``): the warm-up's start checks it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from loadtests.bench import Figure, _figure
from loadtests.raw_celery import (
    RoundTrip,
    Throughput,
    chord_throughput,
    empty_task_throughput,
    raw_cluster,
    round_trip_latency,
)
from ruvon.builder import WorkflowBuilder
from ruvon.client import Client
from ruvon.config import Settings
from ruvon.models import WorkflowStatus
from ruvon.testing.cluster import LocalCluster

__all__ = [
    "QUEUE",
    "REGISTRY",
    "DistributedBench",
    "StepLatency",
    "async_step_throughput",
    "bench_distributed",
    "distributed_cluster",
    "fan_out_throughput",
    "run_distributed",
    "run_with_client",
    "sequential_workflows",
    "step_latency",
    "step_times",
    "wait_completed",
]

REGISTRY = Path(__file__).with_name("workflows") / "workflow_registry.yaml"
QUEUE = "default"  # private anyway: the cluster's Redis key prefix is unique to the run
ASYNC_STEPS = 3
_TIMEOUT = 120.0  # per batch; a batch takes seconds, so this only turns a loss into an error
_BATCH_POLL = 0.01  # seconds between status counts of a batch (<= 0.5 % of a run)
_SINGLE_POLL = 0.001  # seconds between status reads of the one workflow (d) waits for
_T = TypeVar("_T")

# One query per poll counts a batch's statuses; (d) reads the step runs once per run.
_COUNT_STATUSES = (
    "SELECT status, count(*) FROM workflow_executions WHERE id = ANY($1::text[]) GROUP BY status"
)
_STATUS = "SELECT status FROM workflow_executions WHERE id = $1"
_STEP_TIMES = (
    "SELECT extract(epoch FROM finished_at - created_at) * 1e3, "
    "extract(epoch FROM started_at - created_at) * 1e3, "
    "extract(epoch FROM finished_at - started_at) * 1e3 "
    "FROM step_runs WHERE kind = 'step' AND status = 'DONE' AND workflow_id = ANY($1::text[])"
)
_FAILED = frozenset(s.value for s in WorkflowStatus if s.is_terminal) - {"COMPLETED"}


@dataclasses.dataclass(frozen=True)
class StepLatency:
    """Percentiles (ms) of one ASYNC step's dispatch-to-commit time, one value per run."""

    samples: int
    p50_ms: tuple[float, ...]
    p99_ms: tuple[float, ...]
    queue_wait_p50_ms: tuple[float, ...]
    run_p50_ms: tuple[float, ...]
    client_p50_ms: tuple[float, ...]
    client_p99_ms: tuple[float, ...]

    def figures(self) -> list[Figure]:
        """p50 and p99, the p50 split into its two parts, and the client's view."""
        rows = [
            ("ruvon: ASYNC step dispatch->commit p50", self.p50_ms),
            ("ruvon: ASYNC step dispatch->commit p99", self.p99_ms),
            ("  of which queue wait (created->started) p50", self.queue_wait_p50_ms),
            ("  of which run (started->finished) p50", self.run_p50_ms),
            ("ruvon: client start->COMPLETED p50 (info)", self.client_p50_ms),
            ("ruvon: client start->COMPLETED p99 (info)", self.client_p99_ms),
        ]
        return [_figure(name, "ms", list(values)) for name, values in rows]


@dataclasses.dataclass(frozen=True)
class DistributedBench:
    """The raw baselines and the engine's figures, measured in alternating runs."""

    empty_tasks: Throughput
    async_steps: Throughput
    chords: Throughput
    fan_outs: Throughput
    round_trip: RoundTrip
    step_latency: StepLatency

    def figures(self) -> list[Figure]:
        """The table: (a), (b), (c), (d), then the three ratios against their targets."""
        return [
            self.empty_tasks.figure(),
            self.async_steps.figure(),
            self.chords.figure(),
            self.fan_outs.figure(),
            *self.round_trip.figures(),
            *self.step_latency.figures(),
            _ratio(
                "ratio (b)/(a): ASYNC steps/s / raw tasks/s",
                self.async_steps.per_second,
                self.empty_tasks.per_second,
                at_least=0.6,
            ),
            _ratio(
                "ratio (c): PARALLEL fan-outs/s / chords/s",
                self.fan_outs.per_second,
                self.chords.per_second,
                at_least=1.0,
            ),
            _ratio(
                "ratio (d): step p50 / raw round trip p50",
                self.step_latency.p50_ms,
                self.round_trip.p50_ms,
                at_most=2.0,
            ),
        ]


def distributed_cluster(**options: Any) -> LocalCluster:
    """One prefork worker (2 children) knowing the bench workflows and the raw tasks."""
    options["env"] = {
        "RUVON_REGISTRY_FILE": str(REGISTRY),
        "RUVON_DEFAULT_QUEUE": QUEUE,
        **options.get("env", {}),
    }
    options.setdefault("queues", [QUEUE])
    return raw_cluster(**options)


def async_step_throughput(
    cluster: LocalCluster, workflows: int = 200, runs: int = 3, starters: int = 4
) -> Throughput:
    """(b) Steps/s of ``workflows`` concurrent BenchAsync3 workflows, first start to last done."""
    elapsed = run_with_client(
        cluster, lambda c, db: _batches(c, db, "BenchAsync3", workflows, runs, starters)
    )
    rates = tuple(ASYNC_STEPS * workflows / seconds for seconds in elapsed)
    return Throughput("ruvon: 3-step ASYNC workflow", "steps/s", workflows, rates)


def fan_out_throughput(
    cluster: LocalCluster, fan_outs: int = 100, runs: int = 3, starters: int = 4
) -> Throughput:
    """(c) Completed BenchFanOut10 workflows (a 10-branch PARALLEL step) per second."""
    elapsed = run_with_client(
        cluster, lambda c, db: _batches(c, db, "BenchFanOut10", fan_outs, runs, starters)
    )
    rates = tuple(fan_outs / seconds for seconds in elapsed)
    return Throughput("ruvon: PARALLEL of 10 branches", "fan-outs/s", fan_outs, rates)


def step_latency(
    cluster: LocalCluster, samples: int = 200, runs: int = 3, warmup: int = 20
) -> StepLatency:
    """(d) Sequential BenchAsync1 workflows: their step's times from ``step_runs``, per run."""
    per_run = run_with_client(cluster, lambda c, db: _latency_runs(c, db, samples, runs, warmup))
    p50, p99, queue_wait, run, client_p50, client_p99 = zip(*per_run, strict=True)
    return StepLatency(samples, p50, p99, queue_wait, run, client_p50, client_p99)


def bench_distributed(
    cluster: LocalCluster,
    *,
    tasks: int = 1000,
    workflows: int = 200,
    fan_outs: int = 100,
    chords: int = 100,
    samples: int = 200,
    runs: int = 3,
) -> DistributedBench:
    """All figures on one running :func:`distributed_cluster`, raw and Ruvon runs alternating."""
    empty: list[Throughput] = []
    steps: list[Throughput] = []
    chords_raw: list[Throughput] = []
    fan_outs_done: list[Throughput] = []
    round_trips: list[RoundTrip] = []
    latencies: list[StepLatency] = []
    for _ in range(runs):
        empty.append(empty_task_throughput(cluster, tasks, 1, QUEUE))
        steps.append(async_step_throughput(cluster, workflows, 1))
        chords_raw.append(chord_throughput(cluster, chords, 1, QUEUE))
        fan_outs_done.append(fan_out_throughput(cluster, fan_outs, 1))
        round_trips.append(round_trip_latency(cluster, samples, 1, QUEUE))
        latencies.append(step_latency(cluster, samples, 1))
    return DistributedBench(
        _joined(empty),
        _joined(steps),
        _joined(chords_raw),
        _joined(fan_outs_done),
        _joined(round_trips),
        _joined(latencies),
    )


def run_distributed(runs: int = 3, workflows: int = 200) -> list[Figure]:
    """Start the cluster, measure everything, stop it: the figures ``bench distributed`` prints."""
    with distributed_cluster() as cluster:
        # 100 fan-outs (and chords) per run by default: with fewer, a run lasts about a second
        # and its ramp-up and tail (the last joins) swing the rate by +-15 %.
        side = max(workflows // 2, 1)
        result = bench_distributed(
            cluster, workflows=workflows, fan_outs=side, chords=side, runs=runs
        )
    return result.figures()


# -- the engine's side ---------------------------------------------------------------------------


def run_with_client(
    cluster: LocalCluster,
    measure: Callable[[Client, asyncpg.Connection], Awaitable[_T]],
) -> _T:
    """Run ``measure`` with a client of the cluster and a connection to its database."""

    async def main() -> _T:
        async with _client(cluster) as client, _connection(cluster) as db:
            return await measure(client, db)

    return asyncio.run(main())


@contextlib.asynccontextmanager
async def _client(cluster: LocalCluster) -> AsyncIterator[Client]:
    settings = Settings.from_env(cluster.env)
    async with Client(WorkflowBuilder(REGISTRY, settings=settings), settings=settings) as client:
        yield client


@contextlib.asynccontextmanager
async def _connection(cluster: LocalCluster) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(cluster.database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def _batches(
    client: Client,
    db: asyncpg.Connection,
    workflow_type: str,
    count: int,
    runs: int,
    starters: int,
) -> list[float]:
    """Seconds from the first start of ``count`` workflows to all of them COMPLETED, per run."""
    warm = await client.start(workflow_type, {"counter": 0})  # checks the broker once
    await _wait_batch(db, [warm.id])
    await _start_and_wait(client, db, workflow_type, min(count, 10), starters)
    return [await _start_and_wait(client, db, workflow_type, count, starters) for _ in range(runs)]


async def _start_and_wait(
    client: Client, db: asyncpg.Connection, workflow_type: str, count: int, starters: int
) -> float:
    ids: list[str] = []

    async def start(share: int) -> None:
        for _ in range(share):
            record = await client.start(workflow_type, {"counter": 0}, check_broker=False)
            ids.append(record.id)

    shares = [count // starters + (i < count % starters) for i in range(starters)]
    started = time.perf_counter()
    await asyncio.gather(*(start(share) for share in shares if share))
    await _wait_batch(db, ids)
    return time.perf_counter() - started


async def _wait_batch(db: asyncpg.Connection, ids: Sequence[str]) -> None:
    """Poll one status count until every workflow of ``ids`` is COMPLETED."""
    deadline = time.monotonic() + _TIMEOUT
    while True:
        counts = {row[0]: row[1] for row in await db.fetch(_COUNT_STATUSES, list(ids))}
        if counts.get("COMPLETED", 0) == len(ids):
            return
        failed = {status: n for status, n in counts.items() if status in _FAILED}
        if failed or time.monotonic() > deadline:
            raise RuntimeError(f"benchmark workflows did not all complete: {counts}")
        await asyncio.sleep(_BATCH_POLL)


async def _latency_runs(
    client: Client, db: asyncpg.Connection, samples: int, runs: int, warmup: int
) -> list[tuple[float, ...]]:
    """Per run: step p50, p99, queue wait p50, run p50, client p50, client p99 (ms)."""
    warm = await client.start("BenchAsync1", {"counter": 0})  # checks the broker once
    await _wait_batch(db, [warm.id])
    await sequential_workflows(client, db, warmup)
    results: list[tuple[float, ...]] = []
    for _ in range(runs):
        ids, client_ms = await sequential_workflows(client, db, samples)
        total, queued, ran = await step_times(db, ids)
        results.append(
            (
                statistics.median(total),
                _p99(total),
                statistics.median(queued),
                statistics.median(ran),
                statistics.median(client_ms),
                _p99(client_ms),
            )
        )
    return results


async def sequential_workflows(
    client: Client,
    db: asyncpg.Connection,
    count: int,
    data: dict[str, Any] | None = None,
    workflow_type: str = "BenchAsync1",
) -> tuple[list[str], list[float]]:
    """Start ``count`` workflows one after another, each once the last is COMPLETED.

    Returns their ids and each one's start -> COMPLETED time seen by the client (ms).
    """
    ids, client_ms = [], []
    clock = time.perf_counter
    for _ in range(count):
        started = clock()
        record = await client.start(workflow_type, data or {"counter": 0}, check_broker=False)
        await wait_completed(db, record.id)
        client_ms.append((clock() - started) * 1e3)
        ids.append(record.id)
    return ids, client_ms


async def wait_completed(db: asyncpg.Connection, workflow_id: str) -> None:
    """Poll one workflow's status every millisecond until it is COMPLETED."""
    deadline = time.monotonic() + _TIMEOUT
    while (status := await db.fetchval(_STATUS, workflow_id)) != "COMPLETED":
        if status in _FAILED or time.monotonic() > deadline:
            raise RuntimeError(f"benchmark workflow {workflow_id} is {status}")
        await asyncio.sleep(_SINGLE_POLL)


async def step_times(
    db: asyncpg.Connection, ids: Sequence[str]
) -> tuple[list[float], list[float], list[float]]:
    """The ASYNC step runs of ``ids`` (one each): dispatch->commit, queue wait, run (ms)."""
    rows = await db.fetch(_STEP_TIMES, list(ids))
    if len(rows) != len(ids):
        raise RuntimeError(f"expected {len(ids)} finished step runs, found {len(rows)}")
    total, queued, ran = (list(map(float, column)) for column in zip(*rows, strict=True))
    return total, queued, ran


# -- figures -------------------------------------------------------------------------------------


def _p99(values: list[float]) -> float:
    # "inclusive": with few samples the percentile stays within the observed range.
    return (
        statistics.quantiles(values, n=100, method="inclusive")[98]
        if len(values) > 1
        else values[0]
    )


def _ratio(
    name: str,
    numerators: Sequence[float],
    denominators: Sequence[float],
    *,
    at_least: float | None = None,
    at_most: float | None = None,
) -> Figure:
    """Run-by-run ratios (median and spread), marked met / NOT met on the median."""
    ratios = [n / d for n, d in zip(numerators, denominators, strict=True)]
    median = statistics.median(ratios)
    if at_least is not None:
        met, bound = median >= at_least, f">= {at_least:.1f}"
    elif at_most is not None:
        met, bound = median <= at_most, f"<= {at_most:.1f}"
    else:
        raise ValueError("a ratio needs a target: at_least or at_most")
    return _figure(name, "x", ratios, f"target {bound}: {'met' if met else 'NOT met'}")


def _joined(results: list[_T]) -> _T:
    """Single-run results as one result of ``len(results)`` runs (per-run tuples concatenated)."""
    first = results[0]
    joined = {
        field.name: tuple(v for result in results for v in getattr(result, field.name))
        for field in dataclasses.fields(first)  # type: ignore[arg-type]
        if isinstance(getattr(first, field.name), tuple)
    }
    return dataclasses.replace(first, **joined)  # type: ignore[type-var]
