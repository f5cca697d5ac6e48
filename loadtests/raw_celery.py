"""Celery baselines of the distributed benchmark: what Celery alone costs on this machine.

``python -m loadtests.raw_celery [--tasks N] [--chains N] [--widths W ...] [--samples N]
[--runs R] [--json]`` starts a :class:`~ruvon.testing.cluster.LocalCluster` and a default
Celery worker and prints both baselines, their runs interleaved.

Two baselines run the same task bodies (:mod:`loadtests.bench_tasks`) through the same code
below; only Celery's configuration differs:

* **celery default** (:func:`default_celery_worker`): :mod:`loadtests.default_celery`, i.e.
  ``Celery(broker=URL, backend=URL)`` and nothing else (prefetch multiplier 4, early acks, no
  events, no ``task_track_started``), its own ``celery -A loadtests.default_celery worker
  --concurrency 2`` (prefork, log level WARNING) on the same Redis server under its own key
  prefix. This is what the targets are set against.
* **celery ruvon-settings** (:func:`ruvon_settings_target`), "raw Celery under Ruvon's worker
  settings": the tasks inside the cluster's ``ruvon worker`` (prefork, concurrency 2, INFO), under
  Ruvon's Celery configuration (acks late, reject on worker lost, prefetch 1, task events,
  ``task_track_started``), sent by a client configured like Ruvon's.

Workloads, each one value per run (the bench reports the median and the min-max spread):

(a) **empty tasks/s**: ``N`` :data:`~loadtests.bench_tasks.NOOP_IGNORED` tasks (declared
    ``ignore_result=True``; sent with ``ignore_result=True``, as its ``.delay()`` would, so the
    client subscribes to no result), the last one replaced by the sentinel
    :data:`~loadtests.bench_tasks.MARK_DONE`, which ``RPUSH``-es to a run-unique key. Timed from
    the first send until the client's ``BLPOP`` on that key returns (no polling). Completion is
    thus observed without a result backend and without any I/O added to the empty tasks: the
    prefork pool hands messages to its processes in arrival order, one each when idle (Celery's
    default "fair" scheduling), so once the sentinel has run every earlier task has started, and
    at most one (on the other process) may still be finishing: well under a millisecond against
    runs of about a second, and an error that can only flatter the baseline.
(b) **chains/s**: ``M`` ``chain(noop.si(), noop.si(), noop.si())`` (results in the Redis backend,
    Celery's default for a task), timed until every chain's last result is in
    (``ResultSet.get``, which waits on the backend's pub/sub); steps/s = 3 x chains/s.
(c) **chord(W)**: ``chord([echo(i) for i in range(W)], join)`` with the Redis backend's native
    chord counter, one after another; each timed from ``apply_async`` (the header's signatures
    are built beforehand) until the callback's result is in; a run reports the mean of
    ``repeats`` chords.
(d) **round trip**: p50 and p99 of a sequential ``send_task(noop).get()`` after a warm-up.

Every function takes a :class:`CeleryTarget` (a client app, the queue its worker consumes, the
Redis server of the sentinel) and warms up before it times anything. Earlier versions measured
(a) on the Ruvon worker only and collected every task's result; the Ruvon-settings row now runs
the default row's workload, so the two rows differ by configuration alone.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import redis
from celery import Celery, chain, chord
from celery.result import ResultSet

from loadtests.bench import Figure, _figure
from loadtests.bench_tasks import ECHO, JOIN, MARK_DONE, NOOP, NOOP_IGNORED
from loadtests.default_celery import KEY_PREFIX_ENV, REDIS_URL_ENV, create_app
from ruvon.testing.cluster import (
    READY_TIMEOUT,
    LocalCluster,
    WorkerProcess,
    delete_broker_keys,
    spawn,
)
from ruvon.testing.redis import redis_url_for_tests

__all__ = [
    "CHAIN_LENGTH",
    "DEFAULT_LABEL",
    "RAW_TASKS_ARGS",
    "RUVON_SETTINGS_LABEL",
    "CeleryTarget",
    "RoundTrip",
    "Throughput",
    "Timing",
    "chain_throughput",
    "chord_latency",
    "default_celery_worker",
    "empty_task_throughput",
    "fan_out_repeats",
    "joined_runs",
    "measure_baselines",
    "p99_of",
    "raw_cluster",
    "round_trip_latency",
    "ruvon_settings_target",
]

RAW_TASKS_ARGS = ("--include", "loadtests.raw_tasks")
DEFAULT_LABEL = "celery default"
RUVON_SETTINGS_LABEL = "celery ruvon-settings"
CHAIN_LENGTH = 3
_WARMUP_TASKS = 50
_TIMEOUT = 300.0  # per batch; a batch takes seconds, so this only turns a lost task into an error
# ResultSet.get's default 0.5 s interval adds up to half a second to a run (155 tasks/s instead
# of ~420 for 100 tasks); results still arrive by pub/sub, the interval only bounds the waits.
_POLL_INTERVAL = 0.05
_T = TypeVar("_T")


@dataclass(frozen=True)
class CeleryTarget:
    """Where a baseline's tasks go: a client app, its worker's queue, the sentinel's Redis."""

    label: str
    """The rows' prefix: :data:`DEFAULT_LABEL` or :data:`RUVON_SETTINGS_LABEL`."""
    app: Celery
    queue: str | None
    """None: the app's default routing (Celery's ``celery`` queue)."""
    redis_url: str
    key_prefix: str
    """The sentinel keys go under it, so the run's key clean-up deletes a stray one."""

    @property
    def route(self) -> dict[str, Any]:
        return {} if self.queue is None else {"queue": self.queue}


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
class Timing:
    """Milliseconds one item takes (e.g. a chord, start to callback), one value per run."""

    name: str
    items: int
    ms: tuple[float, ...]

    def figure(self) -> Figure:
        return _figure(self.name, "ms", list(self.ms))


@dataclass(frozen=True)
class RoundTrip:
    """Percentiles of sequential send-and-get round trips, one value per run, in ms."""

    label: str
    samples: int
    p50_ms: tuple[float, ...]
    p99_ms: tuple[float, ...]

    def figures(self) -> list[Figure]:
        """p50 and p99 (each the median over runs, with the spread)."""
        return [
            _figure(f"{self.label}: .delay().get() p50", "ms", list(self.p50_ms)),
            _figure(f"{self.label}: .delay().get() p99", "ms", list(self.p99_ms)),
        ]


# -- the two baselines ---------------------------------------------------------------------------


def raw_cluster(**options: Any) -> LocalCluster:
    """A cluster whose workers load :mod:`loadtests.raw_tasks` (one prefork worker, 2 children)."""
    options.setdefault("concurrency", 2)
    options["extra_args"] = (*RAW_TASKS_ARGS, *options.get("extra_args", ()))
    return LocalCluster(**options)


def ruvon_settings_target(cluster: LocalCluster, queue: str | None = None) -> CeleryTarget:
    """The tasks in ``cluster``'s Ruvon worker (see :func:`raw_cluster`), on ``queue``."""
    return CeleryTarget(
        RUVON_SETTINGS_LABEL,
        cluster.client,
        queue or cluster.queue,
        cluster.env["RUVON_BROKER_URL"],
        cluster.key_prefix,
    )


@contextlib.contextmanager
def default_celery_worker(
    log_dir: Path,
    *,
    concurrency: int = 2,
    redis_url: str | None = None,
    ready_timeout: float = READY_TIMEOUT,
) -> Iterator[CeleryTarget]:
    """Run ``celery -A loadtests.default_celery worker --concurrency N`` until the block ends.

    Its keys (queue, results, control replies) live under a run-unique prefix, deleted at the
    end with the worker stopped (warm shutdown, SIGKILL of its process group if it hangs).
    """
    url = redis_url or redis_url_for_tests()
    run_id = uuid.uuid4().hex[:12]
    prefix = f"ruvon-bench-default-celery-{run_id}:"
    # A developer's CELERY_* variables (broker, config module) must not reconfigure it.
    env = {key: value for key, value in os.environ.items() if not key.startswith("CELERY_")}
    env.update({REDIS_URL_ENV: url, KEY_PREFIX_ENV: prefix})
    hostname = f"default-celery-{run_id}@{socket.gethostname()}"
    command = [
        *(sys.executable, "-m", "celery", "-A", "loadtests.default_celery", "worker"),
        *("--concurrency", str(concurrency), "--hostname", hostname),
    ]
    log_path = log_dir / f"default-celery-{run_id}.log"
    app = create_app(url, prefix)
    with contextlib.ExitStack() as stack:
        stack.callback(delete_broker_keys, prefix, url)
        stack.callback(app.close)
        worker = WorkerProcess(
            spawn(command, env, log_path),
            hostname=hostname,
            queues=(app.conf.task_default_queue,),
            log_path=log_path,
            client=app,
        )
        stack.callback(worker.stop)
        worker.wait_ready(ready_timeout)
        yield CeleryTarget(DEFAULT_LABEL, app, None, url, prefix)


# -- the workloads -------------------------------------------------------------------------------


def empty_task_throughput(target: CeleryTarget, tasks: int = 1000, runs: int = 3) -> Throughput:
    """(a) Empty ``ignore_result`` tasks per second, first send to the sentinel's signal."""
    with _sentinel_client(target) as waiter:
        _send_empty(target, waiter, min(tasks, _WARMUP_TASKS))  # connections, each process
        rates = []
        for _ in range(runs):
            started = time.perf_counter()
            _send_empty(target, waiter, tasks)
            rates.append(tasks / (time.perf_counter() - started))
    return Throughput(f"{target.label}: empty task", "tasks/s", tasks, tuple(rates))


def chain_throughput(
    target: CeleryTarget, chains: int = 200, runs: int = 3, length: int = CHAIN_LENGTH
) -> Throughput:
    """(b) Chains of ``length`` empty tasks completed per second, first send to last result."""
    _run_chains(target, min(chains, 10), length)
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        _run_chains(target, chains, length)
        rates.append(chains / (time.perf_counter() - started))
    return Throughput(
        f"{target.label}: chain of {length} empty tasks", "chains/s", chains, tuple(rates)
    )


def chord_latency(
    target: CeleryTarget, width: int, repeats: int | None = None, runs: int = 3
) -> Timing:
    """(c) ms from a chord of ``width`` echo tasks' ``apply_async`` to its callback's result."""
    repeats = repeats or fan_out_repeats(width)
    _one_chord(target, min(width, 10))  # the backend's pub/sub, the chord counter's script
    per_run = [
        statistics.fmean(_one_chord(target, width) for _ in range(repeats)) for _ in range(runs)
    ]
    return Timing(f"{target.label}: chord({width:,}) start->callback", repeats, tuple(per_run))


def round_trip_latency(
    target: CeleryTarget, samples: int = 200, runs: int = 3, warmup: int = 30
) -> RoundTrip:
    """(d) p50/p99 of ``send_task(noop).get()``, one at a time, after ``warmup`` round trips."""
    app, route = target.app, target.route
    clock = time.perf_counter
    for _ in range(warmup):
        app.send_task(NOOP, **route).get(timeout=_TIMEOUT)
    p50: list[float] = []
    p99: list[float] = []
    for _ in range(runs):
        times = []
        for _ in range(samples):
            started = clock()
            app.send_task(NOOP, **route).get(timeout=_TIMEOUT)
            times.append((clock() - started) * 1e3)
        p50.append(statistics.median(times))
        p99.append(p99_of(times))
    return RoundTrip(target.label, samples, tuple(p50), tuple(p99))


def fan_out_repeats(width: int) -> int:
    """Chords (or fan-outs) per run of ``width``: about 300 branches' worth, 1 to 10."""
    return max(1, min(10, 300 // width))


def p99_of(values: Sequence[float]) -> float:
    """The 99th percentile; "inclusive", so with few samples it stays within the range seen."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[98]


@contextlib.contextmanager
def _sentinel_client(target: CeleryTarget) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(target.redis_url)
    try:
        client.ping()  # connected before anything is timed
        yield client
    finally:
        client.close()


def _send_empty(target: CeleryTarget, waiter: redis.Redis, tasks: int) -> None:
    app, route = target.app, target.route
    key = f"{target.key_prefix}bench-done:{uuid.uuid4().hex}"
    for _ in range(tasks - 1):
        app.send_task(NOOP_IGNORED, ignore_result=True, **route)
    app.send_task(MARK_DONE, args=(key,), ignore_result=True, **route)
    if waiter.blpop([key], timeout=_TIMEOUT) is None:
        raise RuntimeError(f"{target.label}: {tasks} empty tasks not done in {_TIMEOUT} s")


def _run_chains(target: CeleryTarget, chains: int, length: int) -> None:
    app = target.app
    link = app.signature(NOOP, immutable=True, **target.route)
    pending = [
        chain(*(link.clone() for _ in range(length)), app=app).apply_async() for _ in range(chains)
    ]
    ResultSet(pending, app=app).get(timeout=_TIMEOUT, interval=_POLL_INTERVAL)


def _one_chord(target: CeleryTarget, width: int) -> float:
    """ms of one chord, ``apply_async`` to the callback's result."""
    app, route = target.app, target.route
    header = [app.signature(ECHO, args=(i,), **route) for i in range(width)]
    body = app.signature(JOIN, **route)
    started = time.perf_counter()
    joined = (
        chord(header, body, app=app).apply_async().get(timeout=_TIMEOUT, interval=_POLL_INTERVAL)
    )
    elapsed = (time.perf_counter() - started) * 1e3
    if joined != width:
        raise RuntimeError(f"{target.label}: a chord's callback saw {joined} results, not {width}")
    return elapsed


# -- the command line ----------------------------------------------------------------------------


def measure_baselines(
    targets: Sequence[CeleryTarget],
    *,
    tasks: int = 1000,
    chains: int = 200,
    widths: Sequence[int] = (100, 1000),
    samples: int = 200,
    runs: int = 3,
) -> list[Figure]:
    """Every workload on every target, the targets' runs interleaved; the figures, grouped."""
    per_run: list[list[Any]] = []
    for _ in range(runs):
        one: list[Any] = []
        for target in targets:
            one.append(empty_task_throughput(target, tasks, 1))
            one.append(chain_throughput(target, chains, 1))
            one.extend(chord_latency(target, width, runs=1) for width in widths)
            one.append(round_trip_latency(target, samples, 1))
        per_run.append(one)
    figures: list[Figure] = []
    for results in zip(*per_run, strict=True):
        joined = joined_runs(list(results))
        figures.extend(joined.figures() if isinstance(joined, RoundTrip) else [joined.figure()])
    return figures


def joined_runs(results: list[_T]) -> _T:
    """Single-run results as one result of ``len(results)`` runs (per-run tuples concatenated)."""
    first = results[0]
    joined = {
        field.name: tuple(v for result in results for v in getattr(result, field.name))
        for field in dataclasses.fields(first)  # type: ignore[arg-type]
        if isinstance(getattr(first, field.name), tuple)
    }
    return dataclasses.replace(first, **joined)  # type: ignore[type-var]


def main(argv: list[str] | None = None) -> int:
    """Start a cluster and a default worker, measure both baselines, print them."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.raw_celery", description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000, help="empty tasks per run (a)")
    parser.add_argument("--chains", type=int, default=200, help="chains of 3 per run (b)")
    parser.add_argument(
        "--widths", type=int, nargs="+", default=[100, 1000], help="chord widths (c)"
    )
    parser.add_argument("--samples", type=int, default=200, help="round trips per run (d)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median reported)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with raw_cluster() as cluster:
        assert cluster.log_dir is not None
        with default_celery_worker(cluster.log_dir) as default:
            figures = measure_baselines(
                [default, ruvon_settings_target(cluster)],
                tasks=args.tasks,
                chains=args.chains,
                widths=args.widths,
                samples=args.samples,
                runs=max(args.runs, 1),
            )
    if args.json:
        print(json.dumps([asdict(f) for f in figures], indent=2))
    else:
        print(Figure.header())
        for figure in figures:
            print(figure.row())
        print(
            "(each baseline: 1 worker, prefork, concurrency 2; "
            f"{time.perf_counter() - started:.1f} s in all)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
