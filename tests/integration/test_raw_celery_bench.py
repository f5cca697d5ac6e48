"""Smoke test of the Celery baselines (:mod:`loadtests.raw_celery`) with tiny counts.

Two real prefork workers (concurrency 2) on the local Redis: Celery with its default
configuration (:mod:`loadtests.default_celery`, its own key prefix) and a Ruvon worker with
:mod:`loadtests.raw_tasks` included (a private database and prefix). Every workload runs on
both and only has to give positive, finite figures; the default worker is also asked which
settings it runs with, so a tuned "default" baseline fails here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.raw_celery import (
    DEFAULT_LABEL,
    RUVON_SETTINGS_LABEL,
    CeleryTarget,
    chain_throughput,
    chord_latency,
    default_celery_worker,
    empty_task_throughput,
    measure_baselines,
    raw_cluster,
    round_trip_latency,
    ruvon_settings_target,
)
from ruvon.config import Settings
from ruvon.implementations.execution.celery_config import celery_config
from ruvon.testing.cluster import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

RUNS = 2
# What `celery worker` reports as changed from Celery's defaults: the two URLs, the key prefix
# that isolates the run, and what the command line itself records.
ALLOWED_CHANGES = {
    "broker_url",
    "result_backend",
    "broker_transport_options",
    "result_backend_transport_options",
    "include",
    "deprecated_settings",
    "worker_disable_prefetch",
}


def positive_finite(values: tuple[float, ...]) -> bool:
    return bool(values) and all(value > 0 and math.isfinite(value) for value in values)


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


@pytest.fixture(scope="module")
def default(cluster: LocalCluster) -> Iterator[CeleryTarget]:
    assert cluster.log_dir is not None
    with default_celery_worker(cluster.log_dir) as target:
        yield target
    for log in cluster.log_dir.glob("default-celery-*.log"):
        print(f"--- default worker log ({log}) ---\n{log.read_text(errors='replace')}")


@pytest.fixture(params=[DEFAULT_LABEL, RUVON_SETTINGS_LABEL])
def target(
    request: pytest.FixtureRequest, cluster: LocalCluster, default: CeleryTarget
) -> CeleryTarget:
    return default if request.param == DEFAULT_LABEL else ruvon_settings_target(cluster)


def worker_settings(target: CeleryTarget, *, with_defaults: bool) -> dict[str, object]:
    # One worker under each target's key prefix: the first reply is the only one.
    replies = target.app.control.ping(timeout=5.0, limit=1)
    (hostname,) = (name for reply in replies for name in reply)
    inspect = target.app.control.inspect(destination=[hostname], timeout=5.0, limit=1)
    conf = inspect.conf(with_defaults=with_defaults)
    assert conf and hostname in conf, conf
    settings: dict[str, object] = conf[hostname]
    return settings


def test_the_default_worker_runs_celery_defaults(default: CeleryTarget) -> None:
    changed = worker_settings(default, with_defaults=False)
    assert set(changed) <= ALLOWED_CHANGES, changed
    assert changed.get("worker_disable_prefetch") in (None, False)
    settings = worker_settings(default, with_defaults=True)
    assert settings["worker_prefetch_multiplier"] == 4
    assert settings["task_acks_late"] is False
    assert settings["worker_send_task_events"] is False
    assert settings["task_track_started"] is False


def test_the_ruvon_settings_worker_runs_ruvon_settings(cluster: LocalCluster) -> None:
    settings = worker_settings(ruvon_settings_target(cluster), with_defaults=True)
    ruvon = celery_config(Settings.from_env(cluster.env))
    for name in ("worker_prefetch_multiplier", "task_acks_late", "worker_send_task_events"):
        assert settings[name] == ruvon[name], name


def test_empty_task_throughput(target: CeleryTarget) -> None:
    throughput = empty_task_throughput(target, tasks=20, runs=RUNS)
    assert len(throughput.per_second) == RUNS and positive_finite(throughput.per_second)
    assert throughput.name == f"{target.label}: empty task"


def test_chain_throughput(target: CeleryTarget) -> None:
    throughput = chain_throughput(target, chains=3, runs=RUNS)
    assert throughput.unit == "chains/s"
    assert len(throughput.per_second) == RUNS and positive_finite(throughput.per_second)


def test_chord_latency(target: CeleryTarget) -> None:
    timing = chord_latency(target, width=5, repeats=2, runs=RUNS)
    assert timing.name == f"{target.label}: chord(5) start->callback"
    assert len(timing.ms) == RUNS and positive_finite(timing.ms)


def test_round_trip_latency(target: CeleryTarget) -> None:
    latency = round_trip_latency(target, samples=10, runs=RUNS, warmup=2)
    assert len(latency.p50_ms) == len(latency.p99_ms) == RUNS
    assert positive_finite(latency.p50_ms)
    assert all(p50 <= p99 for p50, p99 in zip(latency.p50_ms, latency.p99_ms, strict=True))


def test_figures_of_both_baselines(cluster: LocalCluster, default: CeleryTarget) -> None:
    figures = measure_baselines(
        [default, ruvon_settings_target(cluster)],
        tasks=20,
        chains=3,
        widths=(5,),
        samples=5,
        runs=1,
    )
    per_target = ["tasks/s", "chains/s", "ms", "ms", "ms"]
    assert [figure.unit for figure in figures] == per_target * 2
    assert len({figure.name for figure in figures}) == len(figures)
    for figure in figures:
        assert figure.low <= figure.median <= figure.high
        assert figure.median > 0 and math.isfinite(figure.median), figure.row()
