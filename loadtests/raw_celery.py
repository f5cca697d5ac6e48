"""Raw-Celery baselines for the distributed benchmark: what Celery alone costs here.

``python -m loadtests.raw_celery [--tasks N] [--chords N] [--samples N] [--runs R] [--json]``
starts a :class:`~ruvon.testing.cluster.LocalCluster` (one ``ruvon worker``, prefork,
concurrency 2, with :mod:`loadtests.raw_tasks` included) and prints three figures, each the
median of ``--runs`` runs with its min-max spread:

(a) empty tasks/s: ``N`` ``noop`` tasks sent by name, timed from the first send until every
    result is in the Redis result backend (``ResultSet.get``, which waits on the backend's
    pub/sub rather than polling). Results are what "completed" means to any caller, so the
    client's cost of collecting them is part of the figure, as it is for a Ruvon caller.
(c) chords/s: ``N`` chords of 10 ``echo`` tasks joined by a ``join`` callback (the Redis
    backend's native chord counter), timed until every callback's result is in.
(d) round trip: p50 and p99 of a sequential ``send_task(...).get()`` of ``noop`` after a
    warm-up.

The tasks run in a real Ruvon worker with its settings (acks late, prefetch 1, JSON, task
events, ``task_track_started``): the baselines are Celery under the configuration Ruvon runs
on, which is what the engine's figures on the same cluster should be divided by. The functions
take a running cluster whose workers include :data:`RAW_TASKS_ARGS`, so a benchmark may share
one cluster between these baselines and the engine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from celery import chord
from celery.result import ResultSet

from loadtests.bench import Figure, _figure, header
from ruvon.testing.cluster import LocalCluster

__all__ = [
    "ECHO",
    "JOIN",
    "NOOP",
    "RAW_TASKS_ARGS",
    "RawCeleryBaseline",
    "RoundTrip",
    "Throughput",
    "bench_raw_celery",
    "chord_throughput",
    "empty_task_throughput",
    "raw_cluster",
    "round_trip_latency",
]

# The names loadtests/raw_tasks.py registers (imported by the worker, never by a sender).
NOOP = "ruvon.bench.noop"
ECHO = "ruvon.bench.echo"
JOIN = "ruvon.bench.join"
RAW_TASKS_ARGS = ("--include", "loadtests.raw_tasks")
CHORD_WIDTH = 10
_WARMUP_TASKS = 50
_TIMEOUT = 300.0  # per run; a run takes seconds, so this only turns a lost task into an error
# ResultSet.get's default 0.5 s interval adds up to half a second to a run (155 tasks/s instead
# of ~420 for 100 tasks); results still arrive by pub/sub, the interval only bounds the waits.
_POLL_INTERVAL = 0.05


@dataclass(frozen=True)
class Throughput:
    """Completed items per second of one workload, one value per run."""

    name: str
    unit: str
    items: int
    per_second: tuple[float, ...]

    def figure(self, target: str = "") -> Figure:
        """The median over runs with its spread, as the bench prints it."""
        return _figure(self.name, self.unit, list(self.per_second), target)


@dataclass(frozen=True)
class RoundTrip:
    """Percentiles of sequential send-and-get round trips, one value per run, in ms."""

    samples: int
    p50_ms: tuple[float, ...]
    p99_ms: tuple[float, ...]

    def figures(self) -> list[Figure]:
        """p50 and p99 (each the median over runs, with the spread)."""
        return [
            _figure("raw celery: .delay().get() round trip p50", "ms", list(self.p50_ms)),
            _figure("raw celery: .delay().get() round trip p99", "ms", list(self.p99_ms)),
        ]


@dataclass(frozen=True)
class RawCeleryBaseline:
    """The three baselines measured on one cluster."""

    empty_tasks: Throughput
    chords: Throughput
    round_trip: RoundTrip

    def figures(self) -> list[Figure]:
        """Rows for the bench table, in the order (a), (c), (d)."""
        return [self.empty_tasks.figure(), self.chords.figure(), *self.round_trip.figures()]


def raw_cluster(**options: Any) -> LocalCluster:
    """A cluster whose workers load :mod:`loadtests.raw_tasks` (one prefork worker, 2 children)."""
    options.setdefault("concurrency", 2)
    options["extra_args"] = (*RAW_TASKS_ARGS, *options.get("extra_args", ()))
    return LocalCluster(**options)


def empty_task_throughput(
    cluster: LocalCluster, tasks: int = 2000, runs: int = 3, queue: str | None = None
) -> Throughput:
    """(a) Empty tasks completed per second, from the first send to the last result."""
    client, queue = cluster.client, queue or cluster.queue
    _send_and_collect(client, queue, _WARMUP_TASKS)  # imports, connections, pub/sub
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        _send_and_collect(client, queue, tasks)
        rates.append(tasks / (time.perf_counter() - started))
    return Throughput("raw celery: empty task", "tasks/s", tasks, tuple(rates))


def chord_throughput(
    cluster: LocalCluster,
    chords: int = 50,
    runs: int = 3,
    queue: str | None = None,
    width: int = CHORD_WIDTH,
) -> Throughput:
    """(c) Chords of ``width`` echo tasks and a join callback completed per second."""
    client, queue = cluster.client, queue or cluster.queue
    _run_chords(client, queue, 2, width)
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        _run_chords(client, queue, chords, width)
        rates.append(chords / (time.perf_counter() - started))
    return Throughput(f"raw celery: chord of {width} empty tasks", "chords/s", chords, tuple(rates))


def round_trip_latency(
    cluster: LocalCluster,
    samples: int = 300,
    runs: int = 3,
    queue: str | None = None,
    warmup: int = 30,
) -> RoundTrip:
    """(d) p50/p99 of ``send_task(noop).get()``, one at a time, after ``warmup`` round trips."""
    client, queue = cluster.client, queue or cluster.queue
    clock = time.perf_counter
    for _ in range(warmup):
        client.send_task(NOOP, queue=queue).get(timeout=_TIMEOUT)
    p50: list[float] = []
    p99: list[float] = []
    for _ in range(runs):
        times = []
        for _ in range(samples):
            started = clock()
            client.send_task(NOOP, queue=queue).get(timeout=_TIMEOUT)
            times.append((clock() - started) * 1e3)
        p50.append(statistics.median(times))
        # "inclusive": with few samples the percentile stays within the observed range.
        p99.append(statistics.quantiles(times, n=100, method="inclusive")[98])
    return RoundTrip(samples, tuple(p50), tuple(p99))


def bench_raw_celery(
    cluster: LocalCluster,
    *,
    tasks: int = 2000,
    chords: int = 50,
    samples: int = 300,
    runs: int = 3,
    queue: str | None = None,
) -> RawCeleryBaseline:
    """(a), (c) and (d) on one running cluster."""
    return RawCeleryBaseline(
        empty_task_throughput(cluster, tasks, runs, queue),
        chord_throughput(cluster, chords, runs, queue),
        round_trip_latency(cluster, samples, runs, queue),
    )


def _send_and_collect(client: Any, queue: str, tasks: int) -> None:
    results = ResultSet([client.send_task(NOOP, queue=queue) for _ in range(tasks)], app=client)
    results.get(timeout=_TIMEOUT, interval=_POLL_INTERVAL)


def _run_chords(client: Any, queue: str, chords: int, width: int) -> None:
    body = client.signature(JOIN, queue=queue)
    pending = []
    for _ in range(chords):
        tasks = [client.signature(ECHO, args=(i,), queue=queue) for i in range(width)]
        pending.append(chord(tasks, body.clone(), app=client).apply_async())
    for result in pending:
        joined = result.get(timeout=_TIMEOUT, interval=_POLL_INTERVAL)
        if joined != width:
            raise RuntimeError(f"a raw chord's callback saw {joined} results, not {width}")


def main(argv: list[str] | None = None) -> int:
    """Start a cluster, measure the three baselines, print them."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.raw_celery", description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000, help="empty tasks per run (a)")
    parser.add_argument("--chords", type=int, default=50, help="chords per run (c)")
    parser.add_argument("--samples", type=int, default=300, help="round trips per run (d)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median reported)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with raw_cluster() as cluster:
        baseline = bench_raw_celery(
            cluster,
            tasks=args.tasks,
            chords=args.chords,
            samples=args.samples,
            runs=max(args.runs, 1),
        )
    figures = baseline.figures()
    if args.json:
        print(json.dumps([asdict(f) for f in figures], indent=2))
    else:
        print(header())
        for figure in figures:
            print(figure.row())
        print(f"(1 worker, prefork, concurrency 2; {time.perf_counter() - started:.1f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
