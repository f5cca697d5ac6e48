"""Smoke test of the distributed benchmark (:mod:`loadtests.bench_distributed`) with tiny counts.

One real prefork worker (concurrency 2) knowing the bench workflows and the raw tasks, on a
private database and Redis prefix; the figures only have to be positive and finite.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.bench_distributed import (
    async_step_throughput,
    bench_distributed,
    distributed_cluster,
    fan_out_throughput,
    step_latency,
)
from ruvon.testing.cluster import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def positive_finite(values: tuple[float, ...]) -> bool:
    return bool(values) and all(value > 0 and math.isfinite(value) for value in values)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    log_dir: Path = tmp_path_factory.mktemp("bench-distributed")
    cluster = distributed_cluster(log_dir=log_dir)
    try:
        with cluster:
            yield cluster
    finally:
        for worker in cluster.workers:  # shown by pytest only when a test failed
            print(f"--- worker log ({worker.log_path}) ---\n{worker.log()}")


def test_async_step_throughput(cluster: LocalCluster) -> None:
    throughput = async_step_throughput(cluster, workflows=5, runs=1, starters=2)
    assert throughput.unit == "steps/s" and positive_finite(throughput.per_second)


def test_fan_out_throughput(cluster: LocalCluster) -> None:
    throughput = fan_out_throughput(cluster, fan_outs=2, runs=1)
    assert throughput.unit == "fan-outs/s" and positive_finite(throughput.per_second)


def test_step_latency(cluster: LocalCluster) -> None:
    latency = step_latency(cluster, samples=5, runs=1, warmup=1)
    for values in (latency.p50_ms, latency.p99_ms, latency.client_p50_ms):
        assert positive_finite(values)
    assert latency.p50_ms[0] <= latency.p99_ms[0]
    assert latency.queue_wait_p50_ms[0] >= 0 and latency.run_p50_ms[0] > 0


def test_figures_of_the_whole_bench(cluster: LocalCluster) -> None:
    bench = bench_distributed(
        cluster, tasks=20, workflows=5, fan_outs=2, chords=2, samples=5, runs=1
    )
    figures = bench.figures()
    assert [figure.unit for figure in figures][:4] == [
        "tasks/s",
        "steps/s",
        "chords/s",
        "fan-outs/s",
    ]
    ratios = [figure for figure in figures if figure.unit == "x"]
    assert len(ratios) == 3
    assert all(figure.target.endswith((": met", ": NOT met")) for figure in ratios)
    for figure in figures:
        assert figure.low <= figure.median <= figure.high
        assert math.isfinite(figure.median), figure.row()
        if not figure.name.lstrip().startswith("of which queue wait"):
            assert figure.median > 0, figure.row()
