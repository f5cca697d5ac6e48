"""Smoke test of the distributed benchmark (:mod:`loadtests.bench_distributed`) with tiny counts.

One real prefork Ruvon worker (concurrency 2) knowing the bench workflows and the baseline
tasks, on a private database and Redis prefix, and one default-configuration Celery worker
(:func:`loadtests.raw_celery.default_celery_worker`); the figures only have to be positive and
finite, and every row of the suite's table has to be there.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from loadtests.bench_distributed import (
    QUEUE_PER_STEP,
    STEP_QUEUES,
    async_step_throughput,
    bench_distributed,
    distributed_workers,
    fan_out_latency,
    step_latency,
)
from loadtests.raw_celery import CeleryTarget
from ruvon.testing.cluster import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

WIDTHS = (5, 8)
TARGET_ROWS = [
    "ratio vs default: ASYNC 1 queue",
    "ratio vs default: ASYNC queue/step",
    "ratio vs default: step p50 / .get() p50",
    "ratio vs default: PARALLEL(5)",
    "ratio vs default: PARALLEL(8)",
]
MEASURED_ROWS = [
    "celery default: empty task",
    "celery ruvon-settings: empty task",
    "celery default: chain of 3 empty tasks",
    "celery default: chain of 3, its steps",
    "ruvon: 3-step ASYNC, one queue",
    "ruvon: 3-step ASYNC, a queue per step",
    *(
        f"{side}({width}) {end}"
        for width in WIDTHS
        for side, end in (
            ("celery default: chord", "start->callback"),
            ("celery ruvon-settings: chord", "start->callback"),
            ("ruvon: PARALLEL", "start->join"),
        )
    ),
    "celery default: .delay().get() p50",
    "celery ruvon-settings: .delay().get() p50",
    "ruvon: ASYNC step dispatch->commit p50",
]


def positive_finite(values: tuple[float, ...]) -> bool:
    return bool(values) and all(value > 0 and math.isfinite(value) for value in values)


@pytest.fixture(scope="module")
def workers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalCluster, CeleryTarget]]:
    log_dir: Path = tmp_path_factory.mktemp("bench-distributed")
    try:
        with distributed_workers(log_dir=log_dir) as both:
            yield both
    finally:
        for log in sorted(log_dir.glob("*.log")):  # shown by pytest only when a test failed
            print(f"--- {log.name} ---\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def cluster(workers: tuple[LocalCluster, CeleryTarget]) -> LocalCluster:
    return workers[0]


def test_async_step_throughput_on_one_queue(cluster: LocalCluster) -> None:
    throughput = async_step_throughput(cluster, workflows=5, runs=1, starters=2)
    assert throughput.unit == "steps/s" and positive_finite(throughput.per_second)


def test_async_steps_with_a_queue_each_run_on_their_queues(cluster: LocalCluster) -> None:
    throughput = async_step_throughput(
        cluster, workflows=3, runs=1, starters=2, workflow_type=QUEUE_PER_STEP
    )
    assert throughput.name == "ruvon: 3-step ASYNC, a queue per step"
    assert positive_finite(throughput.per_second)
    assert sorted(step_queues(cluster)) == sorted(STEP_QUEUES)


def step_queues(cluster: LocalCluster) -> list[str]:
    """The queues the QUEUE_PER_STEP workflows' step runs were sent to."""

    async def query() -> list[str]:
        connection = await asyncpg.connect(cluster.database_url)
        try:
            rows = await connection.fetch(
                "SELECT DISTINCT r.queue FROM step_runs r JOIN workflow_executions w "
                "ON w.id = r.workflow_id WHERE w.workflow_type = $1 AND r.kind = 'step'",
                QUEUE_PER_STEP,
            )
        finally:
            await connection.close()
        return [row[0] for row in rows]

    return asyncio.run(query())


def test_fan_out_latency(cluster: LocalCluster) -> None:
    timing = fan_out_latency(cluster, width=5, repeats=2, runs=1)
    assert timing.name == "ruvon: PARALLEL(5) start->join" and positive_finite(timing.ms)


def test_step_latency(cluster: LocalCluster) -> None:
    latency = step_latency(cluster, samples=5, runs=1, warmup=1)
    for values in (latency.p50_ms, latency.p99_ms, latency.client_p50_ms):
        assert positive_finite(values)
    assert latency.p50_ms[0] <= latency.p99_ms[0]
    assert latency.queue_wait_p50_ms[0] >= 0 and latency.run_p50_ms[0] > 0


def test_figures_of_the_whole_bench(workers: tuple[LocalCluster, CeleryTarget]) -> None:
    cluster, default = workers
    bench = bench_distributed(
        cluster,
        default,
        tasks=20,
        workflows=5,
        widths=WIDTHS,
        repeats=1,
        samples=5,
        runs=2,
    )
    figures = bench.figures()
    by_name = {figure.name: figure for figure in figures}
    assert len(by_name) == len(figures), "row names must be unique"
    assert set(MEASURED_ROWS) <= set(by_name), set(MEASURED_ROWS) - set(by_name)
    with_targets = [f.name for f in figures if f.target.startswith("target")]
    assert with_targets == TARGET_ROWS
    assert all(by_name[name].target.endswith((": met", ": NOT met")) for name in with_targets)
    secondary = [f.name for f in figures if f.target.startswith("(secondary")]
    assert secondary == [name.replace("vs default", "vs ruvon-settings") for name in TARGET_ROWS]
    assert [f.name for f in figures if f.target.startswith("(info")] == [
        "ratio vs default chain of 3: ASYNC 1 queue",
        "ratio vs default chain of 3: ASYNC queue/step",
    ]
    for figure in figures:
        assert figure.runs == 2, figure.row()
        assert figure.low <= figure.median <= figure.high
        assert math.isfinite(figure.median), figure.row()
        if not figure.name.lstrip().startswith("of which queue wait"):
            assert figure.median > 0, figure.row()
