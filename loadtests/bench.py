"""Benchmark harness: ``python -m loadtests.bench {embedded,postgres,distributed,all} [...]``.

``all`` (see :mod:`loadtests.bench_all`) runs the three suites below and the studies of
:mod:`loadtests.studies` (scaling with worker processes, state size, fan-out width), printing
each table, and writes JSON, Markdown and (``--plot``) PNGs; ``--quick`` is a smoke run.

``embedded`` prints steps/s of a 5-step STANDARD workflow on in-memory and on SQLite persistence
(sync executor, everything in-process), each the median of ``--runs`` runs with its min-max spread.
Creating a workflow and running its steps are timed apart: "engine overhead per step" is the
time ``next_step`` spends per step on the in-memory provider, minus what the bare step function
and a dict merge cost outside the engine. Each SQLite run alternates, five chunks each, with
a raw ``sqlite3`` baseline (:mod:`loadtests.raw_sqlite`: ``UPDATE workflow_state SET state=?
WHERE id=?`` + ``COMMIT`` of the same state, as many writes as the chunk's steps, with the
provider's own pragmas, so the same durability), and "ratio" divides the run's durable steps/s
(steps timed apart from creation) by its raw updates/s. Targets (2-core machine): in-memory
overhead <= 50 microseconds per step; SQLite >= 2,000 durable steps/s (incl. create); ratio
>= 0.2.

``postgres`` (see :mod:`loadtests.bench_postgres`) prints the same workflow's steps/s on
PostgreSQL through the event-loop bridge next to a raw asyncpg single-row JSONB UPDATE loop on the
same server, and their ratio (target >= 0.5). It needs a PostgreSQL server (``--postgres-url``,
default ``RUVON_TEST_POSTGRES_URL`` or postgresql://postgres@127.0.0.1:5432/postgres).

``distributed`` (see :mod:`loadtests.bench_distributed`) starts one local cluster (one prefork
worker, concurrency 2) and one default-configuration Celery worker (prefork, concurrency 2) on
the same Redis, and prints, interleaved run by run: Celery's baselines (default configuration,
and under Ruvon's worker settings; see :mod:`loadtests.raw_celery`): empty tasks/s, chains of 3,
chords of 100 and 1,000, ``.delay().get()``; Ruvon's 3-step ASYNC steps/s on one queue and with a
queue per step, PARALLEL(100) and PARALLEL(1,000) start->join, one ASYNC step's
dispatch-to-commit p50/p99; and the ratios against their targets, vs the default baseline:
steps/s over tasks/s >= 1.0 (one queue) and >= 0.5 (a queue per step), step p50 over round trip
p50 <= 1.5, PARALLEL over chord <= 1.0 at both widths (the same against the Ruvon-settings
baseline as secondary rows). ``--workflows`` is the number of 3-step workflows (and of chains)
per run (default 200).

``server`` (see :mod:`loadtests.bench_server`) times Ruvon Server over real HTTP against a
``ruvon server`` subprocess on PostgreSQL: the workflow list with 100,000 workflows stored, by
filter (p50 / p95 / max; target p95 <= 50 ms), the web UI page and the JSON history of a
workflow with a 1,000-branch PARALLEL step run on a cluster (target p95 <= 300 ms), and the
live stream's commit->event lag (:mod:`loadtests.bench_live_stream`; target max <= 1 s).
``--quick`` shrinks its counts to a smoke run.

``priority`` (see :mod:`loadtests.bench_priority`) starts a backlog of ``--workflows`` (default
2,000) priority-0 3-step ASYNC workflows on a local cluster, then 50 at priority 9 behind it,
and prints each class's completion p50 and their ratio (target <= 0.2).

``rate_limit`` (see :mod:`loadtests.bench_rate_limit`) starts ``--workflows`` (default 500)
one-step workflows whose step has ``rate_limit: {per_second: 20, burst: 5}`` at once, and
prints first start to last completion (target 24.5-27 s for 500) and the worst window over
burst + rate * t (target <= 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadtests.raw_sqlite import RawUpdates
from loadtests.workloads import add_one, register_linear
from ruvon.builder import WorkflowBuilder
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon.models import WorkflowStatus
from ruvon.providers.persistence import PersistenceProvider

STEPS = 5
NAME_WIDTH = 60  # the longest figure name, the embedded ratio's
RAW_CHUNKS = 5  # SQLite / raw sqlite3 alternations per run


@dataclass
class Figure:
    """One measured quantity: median and spread over runs."""

    name: str
    unit: str
    median: float
    low: float
    high: float
    runs: int
    target: str = ""

    @staticmethod
    def header() -> str:
        """The column titles above :meth:`row`."""
        return f"{'benchmark':<{NAME_WIDTH}} {'median':>12} {'unit':<10} {'[min - max]':<26} target"

    def row(self) -> str:
        digits = 2 if abs(self.median) < 10 else 1  # ratios need two decimals
        spread = f"[{self.low:,.{digits}f} - {self.high:,.{digits}f}]"
        return (
            f"{self.name:<{NAME_WIDTH}} {self.median:>12,.{digits}f} {self.unit:<10} "
            f"{spread:<26} {self.target}"
        )


@dataclass
class Sample:
    """One run: throughput including creation, and the two costs it splits into."""

    steps_per_second: float
    create_us: float
    step_us: float


async def _prepare_linear(
    persistence: PersistenceProvider, data: dict[str, Any]
) -> tuple[WorkflowBuilder, str]:
    """A builder with the 5-step workflow on ``persistence``, warmed by one untimed run."""
    builder = WorkflowBuilder(
        persistence_provider=persistence, execution_provider=SyncExecutionProvider()
    )
    workflow_type = register_linear(builder, steps=STEPS)
    await persistence.initialize()
    # Warm caches (imports, definition snapshot) outside the timed region.
    warm = await builder.create_workflow(workflow_type, data)
    await warm.next_step()
    return builder, workflow_type


async def _time_linear(
    builder: WorkflowBuilder, workflow_type: str, workflows: int, data: dict[str, Any]
) -> tuple[float, float]:
    """Seconds spent creating and seconds spent stepping ``workflows`` workflows to the end."""
    creating = stepping = 0.0
    clock = time.perf_counter
    for _ in range(workflows):
        started = clock()
        workflow = await builder.create_workflow(workflow_type, data)
        created = clock()
        await workflow.next_step()  # automate_next: all five steps in one call
        stepping += clock() - created
        creating += created - started
        if workflow.status is not WorkflowStatus.COMPLETED:
            raise RuntimeError(f"benchmark workflow ended {workflow.status}")
    return creating, stepping


def _sample(workflows: int, creating: float, stepping: float) -> Sample:
    return Sample(
        workflows * STEPS / (creating + stepping),
        creating / workflows * 1e6,
        stepping / (workflows * STEPS) * 1e6,
    )


async def _run_linear(
    persistence: PersistenceProvider, workflows: int, data: dict[str, Any] | None = None
) -> Sample:
    """``workflows`` 5-step workflows created with ``data`` (default a bare counter) and run."""
    data = data or {"counter": 0}
    builder, workflow_type = await _prepare_linear(persistence, data)
    return _sample(workflows, *await _time_linear(builder, workflow_type, workflows, data))


async def _sqlite_against_raw(tmp: Path, workflows: int, chunks: int) -> tuple[Sample, float]:
    """One SQLite run, alternating ``chunks`` times with raw UPDATE+COMMIT chunks of as many writes.

    Each SQLite chunk runs on a provider opened for it and closed after it (its background
    checkpoint finished), so none of its work runs during the raw chunk that follows. Returns
    the SQLite sample and the raw seconds per update.
    """
    data = {"counter": 0}  # the state the benchmark workflow carries
    per_chunk = max(workflows // chunks, 1)
    creating = stepping = raw_seconds = 0.0
    with RawUpdates(tmp / "raw.sqlite3", data) as raw:
        for _ in range(chunks):
            provider = SQLitePersistenceProvider(str(tmp / "bench.sqlite3"))
            try:
                builder, workflow_type = await _prepare_linear(provider, data)
                spent = await _time_linear(builder, workflow_type, per_chunk, data)
            finally:
                await provider.close()
            creating, stepping = creating + spent[0], stepping + spent[1]
            raw_seconds += raw.seconds(per_chunk * STEPS)
    total = per_chunk * chunks
    return _sample(total, creating, stepping), raw_seconds / (total * STEPS)


def _bare_function_us(calls: int = 100_000) -> float:
    """Cost of the step function and a plain dict merge alone: what the engine adds is the rest."""
    state = {"counter": 0}
    started = time.perf_counter()
    for _ in range(calls):
        state = {**state, **add_one(state, None)}
    return (time.perf_counter() - started) / calls * 1e6


def _figure(name: str, unit: str, values: list[float], target: str = "") -> Figure:
    return Figure(
        name, unit, statistics.median(values), min(values), max(values), len(values), target
    )


def bench_embedded(workflows: int, runs: int) -> list[Figure]:
    """Memory and SQLite steps/s, creation and overhead costs, and SQLite against raw sqlite3.

    Each SQLite run alternates chunk by chunk with the raw ``sqlite3`` baseline
    (:mod:`loadtests.raw_sqlite`: one ``UPDATE`` + ``COMMIT`` per step of the same state, with
    the provider's pragmas), so both see the same machine load, and is divided by its own raw
    figure.
    """

    async def memory() -> Sample:
        provider = MemoryPersistenceProvider()
        try:
            return await _run_linear(provider, workflows)
        finally:
            await provider.close()

    async def sqlite() -> tuple[Sample, float]:
        with tempfile.TemporaryDirectory(prefix="ruvon-bench-") as tmp:
            return await _sqlite_against_raw(Path(tmp), max(workflows // 4, 50), RAW_CHUNKS)

    bare = _bare_function_us()
    mem = [asyncio.run(memory()) for _ in range(runs)]
    lite, raw = zip(*(asyncio.run(sqlite()) for _ in range(runs)), strict=True)
    raw_per_s = [1 / seconds for seconds in raw]
    durable_per_s = [1e6 / s.step_us for s in lite]
    return [
        _figure(
            "memory: 5-step workflow incl. create", "steps/s", [s.steps_per_second for s in mem]
        ),
        _figure("memory: create_workflow", "us/wf", [s.create_us for s in mem]),
        _figure(
            "memory: engine overhead per step",
            "us/step",
            [s.step_us - bare for s in mem],
            "target <= 50 us",
        ),
        _figure(
            "sqlite (WAL file): 5-step workflow incl. create",
            "steps/s",
            [s.steps_per_second for s in lite],
            "target >= 2,000 steps/s",
        ),
        _figure("sqlite: create_workflow", "us/wf", [s.create_us for s in lite]),
        _figure("sqlite: durable step (save + audit)", "us/step", [s.step_us for s in lite]),
        _figure("sqlite: durable steps", "steps/s", durable_per_s),
        _figure("raw sqlite3 UPDATE+COMMIT (WAL, NORMAL)", "updates/s", raw_per_s),
        _figure("raw sqlite3 UPDATE+COMMIT", "us/update", [s * 1e6 for s in raw]),
        _figure(
            "ratio: sqlite durable steps/s / raw sqlite3 UPDATE+COMMIT/s",
            "x",
            [steps / r for steps, r in zip(durable_per_s, raw_per_s, strict=True)],
            "target >= 0.2",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench", description=__doc__)
    parser.add_argument(
        "suite",
        choices=["embedded", "postgres", "distributed", "server", "priority", "rate_limit", "all"],
        help="which benchmark to run (all: the first three and the studies, see "
        "loadtests.bench_all; server: see loadtests.bench_server)",
    )
    parser.add_argument(
        "--workflows",
        type=int,
        default=None,
        help="workflows per run (default 2000; 200 distributed, and as many chains)",
    )
    parser.add_argument(
        "--runs", type=int, default=None, help="runs per figure (median reported; default 3)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--postgres-url", default=None, help="PostgreSQL server for the postgres suite"
    )
    parser.add_argument("--plot", action="store_true", help="all: draw each study as a PNG")
    parser.add_argument(
        "--quick", action="store_true", help="all, server: tiny counts, one run (a smoke test)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="all: results directory (default loadtests/results)"
    )
    parser.add_argument(
        "--ruvon-pool",
        default="prefork:1",
        metavar="POOL:N",
        help="distributed: the pool of each of the 2 Ruvon worker processes and its size "
        "(default prefork:1; e.g. threads:4)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.suite == "all":
        from loadtests.bench_all import Sizes, run_all
        from loadtests.plots import require_matplotlib

        if args.plot:
            require_matplotlib()  # before minutes of measuring, not after

        sizes = Sizes.quick(args.runs or 1) if args.quick else Sizes(runs=args.runs or 3)
        _, out = run_all(sizes, args.out, plot=args.plot, postgres_url=args.postgres_url)
        print(f"results in {out} ({time.perf_counter() - started:.1f} s in all)")
        return 0
    runs = max(args.runs or 3, 1)
    notes: list[str] = []
    if args.suite == "server":
        from loadtests.bench_server import ServerSizes, bench_server

        server_sizes = ServerSizes.quick(args.runs or 1) if args.quick else ServerSizes(runs=runs)
        figures, notes = bench_server(server_sizes)
    elif args.suite == "priority":
        from loadtests.bench_priority import bench_priority

        figures = bench_priority(runs, args.workflows or 2000)
    elif args.suite == "rate_limit":
        from loadtests.bench_rate_limit import bench_rate_limit

        figures = bench_rate_limit(runs, args.workflows or 500)
    elif args.suite == "distributed":
        from loadtests.bench_distributed import run_distributed

        pool, _, size = args.ruvon_pool.partition(":")
        figures = run_distributed(runs, args.workflows or 200, pool, int(size or 1))
    elif args.suite == "postgres":
        from loadtests.bench_postgres import bench_postgres

        figures = bench_postgres(max((args.workflows or 2000) // 4, 50), runs, args.postgres_url)
    else:
        figures = bench_embedded(args.workflows or 2000, runs)
    if args.json:
        print(json.dumps([asdict(f) for f in figures], indent=2))
    else:
        print(Figure.header())
        for figure in figures:
            print(figure.row())
        for note in notes:
            print(f"({note})")
        if args.suite == "distributed":
            print(
                f"(ruvon: 2 worker processes, pool {args.ruvon_pool}, splitting the per-step "
                "queues; "
                "celery default: its own worker, prefork, concurrency 2; celery ruvon-settings: "
                "Celery under Ruvon's worker settings, in the ruvon workers; "
                f"{time.perf_counter() - started:.1f} s in all)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
