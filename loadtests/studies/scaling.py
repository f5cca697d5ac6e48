"""Scaling study: steps/s with 1, 2 and 4 worker processes, next to raw Celery at the same counts.

For each count ``n`` a fresh :func:`~loadtests.bench_distributed.distributed_cluster` runs one
``ruvon worker`` with ``n`` prefork processes (``--concurrency n``) on a private database and
Redis prefix. Raw and Ruvon runs alternate within it: ``tasks`` empty Celery tasks in that
worker, under Ruvon's Celery settings (``ignore_result`` tasks ended by a sentinel, see
:func:`loadtests.raw_celery.empty_task_throughput`; tasks/s), then ``workflows`` three-step
ASYNC workflows started by the client and timed until all are COMPLETED (steps/s), ``runs``
times. One task and one ASYNC step are the same unit of work for the cluster: one message, one
pool slot. (The default-configuration Celery baseline is in the ``distributed`` suite only.)

What to expect on a small machine: the client (sending, polling) and PostgreSQL share its cores
with the workers, so throughput flattens once processes outnumber cores; the study shows where.
"""

from __future__ import annotations

from collections.abc import Sequence

from loadtests.bench_distributed import QUEUE, async_step_throughput, distributed_cluster
from loadtests.raw_celery import empty_task_throughput, ruvon_settings_target
from loadtests.studies.model import Point, Series, Study

__all__ = ["PROCESS_COUNTS", "scaling_study"]

PROCESS_COUNTS = (1, 2, 4)


def scaling_study(
    counts: Sequence[int] = PROCESS_COUNTS,
    *,
    tasks: int = 1000,
    workflows: int = 200,
    runs: int = 3,
) -> Study:
    """Raw tasks/s and Ruvon ASYNC steps/s per worker-process count, ``runs`` alternating runs."""
    raw_points: list[Point] = []
    ruvon_points: list[Point] = []
    for count in counts:
        raw: list[float] = []
        ruvon: list[float] = []
        with distributed_cluster(split_step_queues=False, concurrency=count) as cluster:
            for _ in range(runs):
                raw_tasks = empty_task_throughput(ruvon_settings_target(cluster, QUEUE), tasks, 1)
                raw.extend(raw_tasks.per_second)
                # One starter coroutine per process keeps every process fed.
                steps = async_step_throughput(cluster, workflows, 1, starters=max(count, 2))
                ruvon.extend(steps.per_second)
        raw_points.append(Point(count, tuple(raw)))
        ruvon_points.append(Point(count, tuple(ruvon)))
    raw_series = Series("raw celery: empty tasks", "per s", tuple(raw_points))
    ruvon_series = Series("ruvon: 3-step ASYNC workflow steps", "per s", tuple(ruvon_points))
    return Study(
        key="scaling",
        title="Scaling: completed steps (tasks) per second by worker processes",
        x_label="worker processes",
        x_unit="",
        series=(raw_series, ruvon_series),
        findings=tuple(_findings(raw_series, ruvon_series)),
    )


def _findings(raw: Series, ruvon: Series) -> list[str]:
    base_raw, base_ruvon = raw.points[0], ruvon.points[0]
    lines = []
    for raw_point, ruvon_point in zip(raw.points, ruvon.points, strict=True):
        count = int(raw_point.x)
        lines.append(
            f"{count} process(es): ruvon/raw {ruvon_point.median / raw_point.median:.2f}; "
            f"speed-up over {int(base_raw.x)}: raw x{raw_point.median / base_raw.median:.2f}, "
            f"ruvon x{ruvon_point.median / base_ruvon.median:.2f}"
        )
    return lines
