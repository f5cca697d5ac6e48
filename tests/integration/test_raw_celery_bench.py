"""Smoke test of the raw-Celery baselines (:mod:`loadtests.raw_celery`) with tiny counts.

One real prefork worker (concurrency 2) with :mod:`loadtests.raw_tasks` included, on a private
database and Redis prefix; the figures only have to be positive and finite.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.raw_celery import (
    bench_raw_celery,
    chord_throughput,
    empty_task_throughput,
    raw_cluster,
    round_trip_latency,
)
from ruvon.testing.cluster import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

RUNS = 2


def positive_finite(values: tuple[float, ...]) -> bool:
    return all(value > 0 and math.isfinite(value) for value in values)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    log_dir: Path = tmp_path_factory.mktemp("raw-celery")
    cluster = raw_cluster(log_dir=log_dir)
    try:
        with cluster:
            yield cluster
    finally:
        for worker in cluster.workers:  # shown by pytest only when a test failed
            print(f"--- worker log ({worker.log_path}) ---\n{worker.log()}")


def test_empty_task_throughput(cluster: LocalCluster) -> None:
    throughput = empty_task_throughput(cluster, tasks=20, runs=RUNS)
    assert len(throughput.per_second) == RUNS
    assert positive_finite(throughput.per_second)


def test_chord_throughput(cluster: LocalCluster) -> None:
    throughput = chord_throughput(cluster, chords=2, runs=RUNS)
    assert len(throughput.per_second) == RUNS
    assert positive_finite(throughput.per_second)


def test_round_trip_latency(cluster: LocalCluster) -> None:
    latency = round_trip_latency(cluster, samples=10, runs=RUNS, warmup=2)
    assert len(latency.p50_ms) == len(latency.p99_ms) == RUNS
    assert positive_finite(latency.p50_ms)
    assert all(p50 <= p99 for p50, p99 in zip(latency.p50_ms, latency.p99_ms, strict=True))


def test_figures_of_the_whole_baseline(cluster: LocalCluster) -> None:
    baseline = bench_raw_celery(cluster, tasks=20, chords=2, samples=10, runs=1)
    figures = baseline.figures()
    assert [figure.unit for figure in figures] == ["tasks/s", "chords/s", "ms", "ms"]
    for figure in figures:
        assert figure.low <= figure.median <= figure.high
        assert figure.median > 0 and math.isfinite(figure.median), figure.row()
