"""Fan-out width study: PARALLEL join time for 10, 100 and 1,000 branches vs raw Celery groups.

Ruvon: ``BenchFanOutWide`` (a dynamic PARALLEL step, one branch per item of ``items``) started
by the client; the figure is the client's time from ``start`` until it reads COMPLETED (the join
has committed). Raw Celery: a ``group`` of the same number of ``echo`` tasks, timed from
``apply_async`` until every result is in the Redis backend. Both sides run on one cluster (one
prefork worker, concurrency 2), alternating, ``runs`` times; a run of a narrow fan-out repeats
it a few times (10 x 10 branches, 3 x 100, 1 x 1,000) and reports the mean, so the figure is
not one 30 ms sample. Cost growth is shown as time per branch (second panel).

For the Ruvon side the database also tells where the time went, per width (medians):
``dispatch`` (the fan-out's commit to the first branch claimed: inserting the branch runs,
sending their messages), ``branches`` (first branch claimed to last branch recorded) and
``join`` (last branch recorded to the join committed: loading and merging the outcomes).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
from celery import group

from loadtests.bench_distributed import QUEUE, run_with_client, sequential_workflows
from loadtests.bench_tasks import ECHO
from loadtests.studies.model import Point, Series, Study
from ruvon.client import Client
from ruvon.testing.cluster import LocalCluster

__all__ = ["WIDTHS", "fan_out_study"]

WIDTHS = (10, 100, 1000)
_TIMEOUT = 300.0
_POLL_INTERVAL = 0.005
_WORKFLOW = "BenchFanOutWide"

# Per workflow: commit -> first branch claimed, first claimed -> last recorded, last recorded ->
# join committed (ms, database clock).
_PHASES = """
SELECT
  extract(epoch FROM min(started_at) FILTER (WHERE kind = 'branch')
                   - min(created_at) FILTER (WHERE kind = 'branch')) * 1e3,
  extract(epoch FROM max(finished_at) FILTER (WHERE kind = 'branch')
                   - min(started_at) FILTER (WHERE kind = 'branch')) * 1e3,
  extract(epoch FROM max(finished_at) FILTER (WHERE kind = 'join')
                   - max(finished_at) FILTER (WHERE kind = 'branch')) * 1e3
FROM step_runs WHERE workflow_id = $1
"""


def repeats_for(width: int) -> int:
    """Fan-outs per run: about 100-300 branches' worth, at least one."""
    return max(1, min(10, 300 // width))


def fan_out_study(cluster: LocalCluster, widths: Sequence[int] = WIDTHS, runs: int = 3) -> Study:
    """Raw group and Ruvon PARALLEL completion time per width, and Ruvon's phases."""
    raw_points, ruvon_points = [], []
    raw_per_branch, ruvon_per_branch = [], []
    phases: dict[int, list[tuple[float, float, float]]] = {}
    for width in widths:
        repeats = repeats_for(width)
        _raw_groups(cluster, width, 1)  # warm: connections, the backend's pub/sub
        run_with_client(cluster, lambda c, db, w=width: _fan_outs(c, db, w, 1))
        raw_ms: list[float] = []
        ruvon_ms: list[float] = []
        for _ in range(runs):
            raw_ms.append(_raw_groups(cluster, width, repeats))
            mean_ms, workflow_phases = run_with_client(
                cluster, lambda c, db, w=width, r=repeats: _fan_outs(c, db, w, r)
            )
            ruvon_ms.append(mean_ms)
            phases.setdefault(width, []).extend(workflow_phases)
        raw_points.append(Point(width, tuple(raw_ms)))
        ruvon_points.append(Point(width, tuple(ruvon_ms)))
        raw_per_branch.append(Point(width, tuple(ms / width for ms in raw_ms)))
        ruvon_per_branch.append(Point(width, tuple(ms / width for ms in ruvon_ms)))
    series = (
        Series("raw celery: group, send -> all results", "ms", tuple(raw_points)),
        Series("ruvon: PARALLEL, start -> join committed", "ms", tuple(ruvon_points)),
        Series("raw celery: per branch", "ms/branch", tuple(raw_per_branch)),
        Series("ruvon: per branch", "ms/branch", tuple(ruvon_per_branch)),
    )
    return Study(
        key="fan_out",
        title="Fan-out width: time until the join, PARALLEL vs raw Celery group",
        x_label="branches",
        x_unit="",
        series=series,
        log_x=True,
        log_y=True,
        findings=tuple(_findings(series, phases)),
    )


def _raw_groups(cluster: LocalCluster, width: int, repeats: int) -> float:
    """Mean ms of ``repeats`` groups of ``width`` echo tasks, one after another."""
    client = cluster.client
    clock = time.perf_counter
    total = 0.0
    for _ in range(repeats):
        started = clock()
        signatures = [client.signature(ECHO, args=(i,), queue=QUEUE) for i in range(width)]
        results = group(signatures, app=client).apply_async()
        values = results.get(timeout=_TIMEOUT, interval=_POLL_INTERVAL)
        total += clock() - started
        if len(values) != width:
            raise RuntimeError(f"a raw group returned {len(values)} results, not {width}")
    return total / repeats * 1e3


async def _fan_outs(
    client: Client, db: asyncpg.Connection, width: int, repeats: int
) -> tuple[float, list[tuple[float, float, float]]]:
    """Mean ms of ``repeats`` sequential BenchFanOutWide runs, and each one's phases."""
    data: dict[str, Any] = {"items": list(range(width))}
    ids, client_ms = await sequential_workflows(client, db, repeats, data, _WORKFLOW)
    phases = []
    for workflow_id in ids:
        row = await db.fetchrow(_PHASES, workflow_id)
        if row is None or any(value is None for value in row):
            raise RuntimeError(f"fan-out {workflow_id} has no complete branch/join runs")
        phases.append((float(row[0]), float(row[1]), float(row[2])))
    return statistics.fmean(client_ms), phases


def _findings(
    series: tuple[Series, ...], phases: dict[int, list[tuple[float, float, float]]]
) -> list[str]:
    raw, ruvon, raw_branch, ruvon_branch = series
    lines = []
    for point in ruvon.points:
        width = int(point.x)
        dispatch, branches, join = (
            statistics.median(values) for values in zip(*phases[width], strict=True)
        )
        lines.append(
            f"{width:>5} branches: ruvon/raw time {point.median / raw.at(width).median:.2f}; "
            f"ruvon phases (ms) dispatch {dispatch:.1f}, branches {branches:.1f} "
            f"({branches / width:.2f}/branch), join {join:.1f}"
        )
    # Judged against the cheapest width: fixed costs make narrow fan-outs dearer per branch, so
    # only a per-branch cost that rises again towards the widest fan-out is super-linear.
    for name, per_branch in (("ruvon", ruvon_branch), ("raw", raw_branch)):
        cheapest = min(per_branch.points, key=lambda point: point.median)
        last = per_branch.points[-1]
        growth = last.median / cheapest.median
        verdict = "super-linear" if growth > 1.25 else "linear"
        lines.append(
            f"{name} per-branch cost at {int(last.x)} branches: x{growth:.2f} the cheapest "
            f"({cheapest.median:.2f} ms at {int(cheapest.x)}): {verdict}"
        )
    return lines
