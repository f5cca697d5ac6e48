"""The ``distributed`` suite of ``python -m loadtests.bench``: Ruvon on a cluster vs Celery.

Two sets of workers serve the whole run, both on the one local Redis server:

* a :class:`~ruvon.testing.cluster.LocalCluster`: two ``ruvon worker`` s, prefork, one process
  each, both consuming :data:`QUEUE` and splitting the three :data:`STEP_QUEUES` between them
  (see :func:`distributed_cluster`), knowing the workflows of
  ``loadtests/workflows`` (``RUVON_REGISTRY_FILE``) and the baseline tasks
  (:mod:`loadtests.raw_tasks`), on a private database and Redis key prefix;
* a default Celery worker (:func:`loadtests.raw_celery.default_celery_worker`):
  ``celery -A loadtests.default_celery worker --concurrency 2``, an app configured with
  ``Celery(broker=URL, backend=URL)`` and nothing else, under its own key prefix.

The baselines, their configuration and how each is timed are described in
:mod:`loadtests.raw_celery`: **celery default** (the default worker) and **celery
ruvon-settings** ("raw Celery under Ruvon's worker settings": the same tasks inside the Ruvon
worker, under Ruvon's Celery configuration), each with empty ``ignore_result`` tasks/s, chords
of 100 and 1,000 (start -> callback result) and the ``.delay().get()`` round trip; the default
one also with chains of 3 empty tasks. Ruvon's figures:

* **3-step ASYNC, one queue**: ``BenchAsync3`` (three ASYNC steps on :data:`QUEUE`): ``N``
  workflows started by a few concurrent client coroutines, timed from the first start until one
  query counting their statuses says all are COMPLETED; steps/s = 3 N / elapsed.
* **3-step ASYNC, a queue per step**: ``BenchAsync3Queues``, the same with each step on its own
  ``queue:`` (:data:`STEP_QUEUES`), consumed by alternating workers, so every step is a broker
  hop (no continuation): the hop-forced workload, timed the same way.
* **PARALLEL(W) start->join**: ``BenchFanOutWide`` with ``W`` items (one branch each), one after
  another, each timed by the client from ``start`` until it reads COMPLETED (the join has
  committed; status polled every millisecond); a run reports the mean of
  :func:`~loadtests.raw_celery.fan_out_repeats` fan-outs, like the chords.
* **ASYNC step dispatch->commit** (:class:`StepLatency`): sequential ``BenchAsync1`` workflows,
  read from ``step_runs`` (kind ``step``): ``finished_at - created_at``, i.e. from the commit
  that queued the run (PostgreSQL's ``now()`` is its transaction's start) to the commit of its
  result, both on the database clock. p50/p99, with the split into queue wait
  (``created_at -> started_at``: commit, message, broker hop, claim) and run (``started_at ->
  finished_at``: load, execute, save), and the client's view (start -> COMPLETED seen by
  polling, which adds the workflow's start run) for information.

Runs are interleaved: in each of ``runs`` runs, every workload group (throughput; each width's
chords and fan-out; latency) measures the default baseline, the Ruvon-settings baseline and
Ruvon in turn (in reverse order on every other run), and each ratio is taken within a run, so
both sides see the same machine load. Targets, against the default baseline:

==========================================================  ======
3-step ASYNC, one queue: steps/s / empty tasks/s              >= 1.0
3-step ASYNC, a queue per step: steps/s / empty tasks/s       >= 0.5
ASYNC dispatch->commit p50 / ``.delay().get()`` p50           <= 1.5
PARALLEL(100) start->join / chord(100) start->callback        <= 1.0
PARALLEL(1,000) start->join / chord(1,000) start->callback    <= 1.0
==========================================================  ======

The same ratios against the Ruvon-settings baseline follow as secondary rows (no target), then
Ruvon's 3-step workflows against the default chain of 3 (workflows/s over chains/s; info).
Clients start workflows without the per-call broker check (``check_broker=False``): the
warm-up's start checks it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from loadtests.bench import Figure, _figure
from loadtests.raw_celery import (
    CHAIN_LENGTH,
    DEFAULT_LABEL,
    CeleryTarget,
    RoundTrip,
    Throughput,
    Timing,
    chain_throughput,
    chord_latency,
    default_celery_worker,
    empty_task_throughput,
    fan_out_repeats,
    joined_runs,
    p99_of,
    raw_cluster,
    round_trip_latency,
    ruvon_settings_target,
)
from ruvon.builder import WorkflowBuilder
from ruvon.client import Client
from ruvon.config import Settings
from ruvon.models import WorkflowStatus
from ruvon.testing.cluster import LocalCluster

__all__ = [
    "ONE_QUEUE",
    "QUEUE",
    "QUEUE_PER_STEP",
    "REGISTRY",
    "STEP_QUEUES",
    "WIDTHS",
    "Baseline",
    "DistributedBench",
    "StepLatency",
    "async_step_throughput",
    "bench_distributed",
    "distributed_cluster",
    "distributed_workers",
    "fan_out_latency",
    "run_distributed",
    "run_with_client",
    "sequential_workflows",
    "step_latency",
    "step_times",
    "wait_completed",
]

REGISTRY = Path(__file__).with_name("workflows") / "workflow_registry.yaml"
QUEUE = "default"  # private anyway: the cluster's Redis key prefix is unique to the run
STEP_QUEUES = ("bench-step-1", "bench-step-2", "bench-step-3")  # BenchAsync3Queues' steps
ONE_QUEUE = "BenchAsync3"
QUEUE_PER_STEP = "BenchAsync3Queues"
WIDTHS = (100, 1000)
ASYNC_STEPS = 3
_FAN_OUT = "BenchFanOutWide"
_THROUGHPUT_NAMES = {
    ONE_QUEUE: "ruvon: 3-step ASYNC, one queue",
    QUEUE_PER_STEP: "ruvon: 3-step ASYNC, a queue per step",
}
_TIMEOUT = 300.0  # per batch; a batch takes seconds, so this only turns a loss into an error
_BATCH_POLL = 0.01  # seconds between status counts of a batch (<= 0.5 % of a run)
_SINGLE_POLL = 0.001  # seconds between status reads of the one workflow waited for
_T = TypeVar("_T")

# One query per poll counts a batch's statuses; the latency reads the step runs once per run.
_NOT_COMPLETED = (
    "SELECT id, status FROM workflow_executions WHERE id = ANY($1::text[]) "
    "AND status <> 'COMPLETED'"
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
class Baseline:
    """One Celery baseline's figures; ``chords`` has one timing per width of the bench."""

    empty_tasks: Throughput
    chords: tuple[Timing, ...]
    round_trip: RoundTrip


@dataclasses.dataclass(frozen=True)
class DistributedBench:
    """The two baselines and the engine's figures, measured in interleaved runs."""

    widths: tuple[int, ...]
    default: Baseline
    ruvon_settings: Baseline
    default_chains: Throughput
    one_queue: Throughput
    queue_per_step: Throughput
    fan_outs: tuple[Timing, ...]
    """Ruvon's PARALLEL start->join, one per width."""
    step_latency: StepLatency

    def figures(self) -> list[Figure]:
        """Throughput, fan-out and latency rows, then the ratios (those with targets first)."""
        default, settings = self.default, self.ruvon_settings
        chain_steps = [CHAIN_LENGTH * rate for rate in self.default_chains.per_second]
        rows = [
            default.empty_tasks.figure(),
            settings.empty_tasks.figure(),
            self.default_chains.figure(),
            _figure(f"{DEFAULT_LABEL}: chain of 3, its steps", "steps/s", chain_steps),
            self.one_queue.figure(),
            self.queue_per_step.figure(),
        ]
        for timings in zip(default.chords, settings.chords, self.fan_outs, strict=True):
            rows += [timing.figure() for timing in timings]
        rows += default.round_trip.figures()
        rows += settings.round_trip.figures()
        rows += self.step_latency.figures()
        rows += self.ratios(default, "default", throughput=(1.0, 0.5), latency=(1.5, 1.0))
        rows += self.ratios(settings, "ruvon-settings")
        chains = self.default_chains.per_second
        for name, steps in (("1 queue", self.one_queue), ("queue/step", self.queue_per_step)):
            workflows = [rate / ASYNC_STEPS for rate in steps.per_second]
            rows.append(
                _ratio(
                    f"ratio vs default chain of 3: ASYNC {name}",
                    workflows,
                    chains,
                    note="(info: workflows/s / chains/s)",
                )
            )
        return rows

    def ratios(
        self,
        baseline: Baseline,
        label: str,
        *,
        throughput: tuple[float, float] | None = None,
        latency: tuple[float, float] | None = None,
    ) -> list[Figure]:
        """Ruvon over ``baseline``: steps/s over empty tasks/s (one queue, a queue per step),
        step p50 over round-trip p50, PARALLEL over chord per width. ``throughput`` holds the
        two lower bounds, ``latency`` the upper bounds of the p50 and the fan-outs; without
        them the rows are secondary (no target)."""
        note = "" if throughput else "(secondary, no target)"
        low = throughput or (None, None)
        high = latency or (None, None)
        tasks = baseline.empty_tasks.per_second
        rows = [
            _ratio(
                f"ratio vs {label}: ASYNC 1 queue",
                self.one_queue.per_second,
                tasks,
                at_least=low[0],
                note=note,
            ),
            _ratio(
                f"ratio vs {label}: ASYNC queue/step",
                self.queue_per_step.per_second,
                tasks,
                at_least=low[1],
                note=note,
            ),
            _ratio(
                f"ratio vs {label}: step p50 / .get() p50",
                self.step_latency.p50_ms,
                baseline.round_trip.p50_ms,
                at_most=high[0],
                note=note,
            ),
        ]
        for width, fan_out, chord in zip(self.widths, self.fan_outs, baseline.chords, strict=True):
            rows.append(
                _ratio(
                    f"ratio vs {label}: PARALLEL({width:,})",
                    fan_out.ms,
                    chord.ms,
                    at_most=high[1],
                    note=note,
                )
            )
        return rows


@contextlib.contextmanager
def distributed_cluster(
    *, split_step_queues: bool = True, **options: Any
) -> Iterator[LocalCluster]:
    """Ruvon workers knowing the bench workflows and the baseline tasks: 2 processes in all.

    With ``split_step_queues`` (the suite): two prefork workers of one process each, both on
    :data:`QUEUE`, the first also on steps 1 and 3 of :data:`STEP_QUEUES`, the second on step 2,
    so every step of ``BenchAsync3Queues`` must hop through the broker to the other worker (a
    worker that consumes the next step's queue would continue with it in the same task).
    Without it, one prefork worker of ``concurrency`` processes (default 2) on every queue.
    """
    options["env"] = {
        "RUVON_REGISTRY_FILE": str(REGISTRY),
        "RUVON_DEFAULT_QUEUE": QUEUE,
        **options.get("env", {}),
    }
    if not split_step_queues:
        options.setdefault("queues", [QUEUE, *STEP_QUEUES])
        with raw_cluster(**options) as cluster:
            yield cluster
        return
    first, second, third = STEP_QUEUES
    options.setdefault("concurrency", 1)
    with raw_cluster(queues=[QUEUE, first, third], **options) as cluster:
        cluster.start_worker([QUEUE, second], name="step-2")
        yield cluster


def async_step_throughput(
    cluster: LocalCluster,
    workflows: int = 200,
    runs: int = 3,
    starters: int = 4,
    workflow_type: str = ONE_QUEUE,
) -> Throughput:
    """Steps/s of ``workflows`` concurrent 3-step ASYNC workflows, first start to last done."""
    elapsed = run_with_client(
        cluster, lambda c, db: _batches(c, db, workflow_type, workflows, runs, starters)
    )
    rates = tuple(ASYNC_STEPS * workflows / seconds for seconds in elapsed)
    name = _THROUGHPUT_NAMES.get(workflow_type, f"ruvon: {workflow_type}")
    return Throughput(name, "steps/s", workflows, rates)


def fan_out_latency(
    cluster: LocalCluster, width: int, repeats: int | None = None, runs: int = 3
) -> Timing:
    """ms from ``start`` of a ``width``-branch PARALLEL workflow to COMPLETED read, per run."""
    repeats = repeats or fan_out_repeats(width)
    data = {"items": list(range(width))}

    async def measure(client: Client, db: asyncpg.Connection) -> list[float]:
        warm = {"items": list(range(min(width, 10)))}
        await sequential_workflows(client, db, 1, warm, _FAN_OUT)
        per_run = []
        for _ in range(runs):
            _, client_ms = await sequential_workflows(client, db, repeats, data, _FAN_OUT)
            per_run.append(statistics.fmean(client_ms))
        return per_run

    per_run = run_with_client(cluster, measure)
    return Timing(f"ruvon: PARALLEL({width:,}) start->join", repeats, tuple(per_run))


def step_latency(
    cluster: LocalCluster, samples: int = 200, runs: int = 3, warmup: int = 20
) -> StepLatency:
    """Sequential BenchAsync1 workflows: their step's times from ``step_runs``, per run."""
    per_run = run_with_client(cluster, lambda c, db: _latency_runs(c, db, samples, runs, warmup))
    p50, p99, queue_wait, run, client_p50, client_p99 = zip(*per_run, strict=True)
    return StepLatency(samples, p50, p99, queue_wait, run, client_p50, client_p99)


def bench_distributed(
    cluster: LocalCluster,
    default: CeleryTarget,
    *,
    tasks: int = 1000,
    workflows: int = 200,
    chains: int | None = None,
    widths: Sequence[int] = WIDTHS,
    repeats: int | None = None,
    samples: int = 200,
    runs: int = 3,
) -> DistributedBench:
    """Every figure, on a running :func:`distributed_cluster` and default worker, interleaved.

    ``chains`` defaults to ``workflows``; ``repeats`` (chords and fan-outs per run and width)
    to :func:`~loadtests.raw_celery.fan_out_repeats`.
    """
    settings = ruvon_settings_target(cluster, QUEUE)
    chains = chains or workflows
    done: dict[str, list[Any]] = {}

    def step(key: str, measure: Callable[[], Any]) -> Callable[[], None]:
        return lambda: done.setdefault(key, []).append(measure())

    groups = [
        [
            step("default tasks", lambda: empty_task_throughput(default, tasks, 1)),
            step("settings tasks", lambda: empty_task_throughput(settings, tasks, 1)),
            step("one queue", lambda: async_step_throughput(cluster, workflows, 1)),
            step("default chains", lambda: chain_throughput(default, chains, 1)),
            step(
                "queue per step",
                lambda: async_step_throughput(cluster, workflows, 1, workflow_type=QUEUE_PER_STEP),
            ),
        ],
        *(
            [
                step(f"default chord {w}", lambda w=w: chord_latency(default, w, repeats, 1)),
                step(f"settings chord {w}", lambda w=w: chord_latency(settings, w, repeats, 1)),
                step(f"fan-out {w}", lambda w=w: fan_out_latency(cluster, w, repeats, 1)),
            ]
            for w in widths
        ),
        [
            step("default round trip", lambda: round_trip_latency(default, samples, 1)),
            step("settings round trip", lambda: round_trip_latency(settings, samples, 1)),
            step("latency", lambda: step_latency(cluster, samples, 1)),
        ],
    ]
    for run in range(runs):
        for group in groups:
            # Alternate the order, so neither side always runs first (warm caches, drift).
            for measure in group if run % 2 == 0 else reversed(group):
                measure()
    result = {key: joined_runs(values) for key, values in done.items()}
    return DistributedBench(
        widths=tuple(widths),
        default=Baseline(
            result["default tasks"],
            tuple(result[f"default chord {w}"] for w in widths),
            result["default round trip"],
        ),
        ruvon_settings=Baseline(
            result["settings tasks"],
            tuple(result[f"settings chord {w}"] for w in widths),
            result["settings round trip"],
        ),
        default_chains=result["default chains"],
        one_queue=result["one queue"],
        queue_per_step=result["queue per step"],
        fan_outs=tuple(result[f"fan-out {w}"] for w in widths),
        step_latency=result["latency"],
    )


@contextlib.contextmanager
def distributed_workers(**options: Any) -> Iterator[tuple[LocalCluster, CeleryTarget]]:
    """A :func:`distributed_cluster` and a default Celery worker: ``(cluster, default)``."""
    with distributed_cluster(**options) as cluster:
        assert cluster.log_dir is not None
        with default_celery_worker(cluster.log_dir) as default:
            yield cluster, default


def run_distributed(
    runs: int = 3, workflows: int = 200, pool: str = "prefork", concurrency: int = 1
) -> list[Figure]:
    """Start the workers, measure everything, stop them: the figures ``bench distributed``
    prints (``workflows`` 3-step workflows and as many chains per run).

    ``pool`` and ``concurrency`` shape each of the two Ruvon worker processes (``--ruvon-pool
    threads:4``: four task threads in each); the baselines keep Celery's defaults.
    """
    with distributed_workers(pool=pool, concurrency=concurrency) as (cluster, default):
        result = bench_distributed(cluster, default, workflows=workflows, runs=runs)
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
    """Poll until every workflow of ``ids`` is COMPLETED.

    The polls share the two cores with the cluster they watch, so they are kept cheap: first
    the last workflow started alone (one row), then only the ones not yet seen COMPLETED (the
    first full count, 200 rows, cost ~5 ms of PostgreSQL per poll, a tenth of its time).
    """
    deadline = time.monotonic() + _TIMEOUT
    pending = list(ids)
    if len(pending) > 1:
        while await db.fetchval(_STATUS, pending[-1]) not in ("COMPLETED", *_FAILED):
            _check_deadline(deadline, {"pending": len(pending)})
            await asyncio.sleep(_BATCH_POLL)
    while pending:
        rows = await db.fetch(_NOT_COMPLETED, pending)
        failed = {row[1] for row in rows} & _FAILED
        if failed:
            counts = {status: sum(1 for r in rows if r[1] == status) for status in failed}
            raise RuntimeError(f"benchmark workflows did not all complete: {counts}")
        pending = [row[0] for row in rows]
        if pending:
            _check_deadline(deadline, {"pending": len(pending)})
            await asyncio.sleep(_BATCH_POLL)


def _check_deadline(deadline: float, counts: dict[str, int]) -> None:
    if time.monotonic() > deadline:
        raise RuntimeError(f"benchmark workflows did not all complete: {counts}")


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
                p99_of(total),
                statistics.median(queued),
                statistics.median(ran),
                statistics.median(client_ms),
                p99_of(client_ms),
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


def _ratio(
    name: str,
    numerators: Sequence[float],
    denominators: Sequence[float],
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    note: str = "",
) -> Figure:
    """Run-by-run ratios (median and spread), marked met / NOT met on the median, or, with no
    bound, labelled with ``note``."""
    ratios = [n / d for n, d in zip(numerators, denominators, strict=True)]
    median = statistics.median(ratios)
    if at_least is not None:
        met, bound = median >= at_least, f">= {at_least:.1f}"
    elif at_most is not None:
        met, bound = median <= at_most, f"<= {at_most:.1f}"
    elif note:
        return _figure(name, "x", ratios, note)
    else:
        raise ValueError("a ratio needs a target (at_least or at_most) or a note")
    return _figure(name, "x", ratios, f"target {bound}: {'met' if met else 'NOT met'}")
