"""State size study: per-step latency with 1 KB, 64 KB and 1 MB of workflow state.

The state is ``{"counter": 0, "rows": [...]}`` where ``rows`` are small records (an id, a name,
a price, two tags: about 70 bytes of JSON each) until the JSON reaches the size: the shape of
real state (many small objects), not one long string that every layer copies for free. Every
step increments the counter, so every step saves the whole state. Four series, each the median
of ``runs`` runs (ms per step):

- ``sqlite in-process``: the 5-step STANDARD workflow on SQLite (WAL file), sync executor;
- ``postgres in-process``: the same workflow on PostgreSQL through the event-loop bridge;
- ``raw asyncpg UPDATE``: one autocommit JSONB ``UPDATE`` of the same document on the same
  server (the floor under a durable step of this size);
- ``cluster ASYNC step``: the time from one ASYNC step's save to the next one's, in sequential
  ``BenchAsync3`` workflows (steps 2 and 3; ``step_runs.finished_at``, the database clock, which
  is the start of each one-statement save): one save of the state, the message hop, the claim
  that loads the state, the step. The part on the worker between claim and save (``started_at``
  to ``finished_at``: claim with the state, decode, execute, encode) is reported apart; the rest
  is the save itself and the hop.

Growth is judged from 64 KB to 1 MB (16 x the data): a factor above 16 is super-linear.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from loadtests.bench import STEPS, _run_linear
from loadtests.bench_distributed import run_with_client, sequential_workflows
from loadtests.bench_postgres import postgres_engine
from loadtests.studies.model import Point, Series, Study
from ruvon.client import Client
from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon.testing.cluster import LocalCluster

__all__ = ["SIZES_KB", "state_document", "state_size_study"]

SIZES_KB = (1, 64, 1024)
_CHAIN_WORKFLOW = "BenchAsync3"
_CHAIN_STEPS = 3
# Each ASYNC step run of the given workflows, in commit order (epoch seconds, database clock).
_STEP_RUN_TIMES = (
    "SELECT workflow_id, extract(epoch FROM started_at), extract(epoch FROM finished_at) "
    "FROM step_runs WHERE kind = 'step' AND status = 'DONE' AND workflow_id = ANY($1::text[]) "
    "ORDER BY workflow_id, finished_at"
)
_ROW_BYTES = len(
    orjson.dumps({"id": 0, "name": "item-00000000", "price": 12.5, "tags": ["alpha", "beta"]})
)


def state_document(size_kb: int) -> dict[str, Any]:
    """Workflow input of about ``size_kb`` KiB of JSON: a counter and small records."""
    rows = max(1, size_kb * 1024 // (_ROW_BYTES + 1))
    return {
        "counter": 0,
        "rows": [
            {"id": i, "name": f"item-{i:08d}", "price": 12.5, "tags": ["alpha", "beta"]}
            for i in range(rows)
        ],
    }


def _workflows_for(size_kb: int, scale: float) -> int:
    """Workflows (embedded) or sequential samples (cluster) per run: fewer as state grows."""
    base = 40 if size_kb <= 1 else 20 if size_kb <= 64 else 6
    return max(2, round(base * scale))


def state_size_study(
    cluster: LocalCluster | None,
    sizes_kb: Sequence[int] = SIZES_KB,
    runs: int = 3,
    *,
    scale: float = 1.0,
    postgres_url: str | None = None,
) -> Study:
    """The four series per size; ``cluster`` None leaves the cluster series out."""
    sqlite: list[Point] = []
    postgres: list[Point] = []
    raw: list[Point] = []
    with postgres_engine(postgres_url) as pg:
        pg.run_workflows(5)  # warm: prepared statements, snapshots
        for size in sizes_kb:
            data = state_document(size)
            n = _workflows_for(size, scale)
            lite, engine, update = [], [], []
            for _ in range(runs):
                lite.append(_sqlite_step_ms(n, data))
                engine.append(pg.run_workflows(n, data).step_us / 1e3)
                update.append(pg.raw_update_seconds(n * STEPS, data) * 1e3)
            sqlite.append(Point(size, tuple(lite)))
            postgres.append(Point(size, tuple(engine)))
            raw.append(Point(size, tuple(update)))
    series = [
        Series("sqlite in-process: durable step", "ms", tuple(sqlite)),
        Series("postgres in-process (bridge): durable step", "ms", tuple(postgres)),
        Series("raw asyncpg: JSONB UPDATE of the same state", "ms", tuple(raw)),
    ]
    if cluster is not None:
        total, ran = _cluster_points(cluster, sizes_kb, runs, scale)
        series += [
            Series("cluster: ASYNC step, commit to next commit", "ms", tuple(total)),
            Series("  of which worker claim+load+execute", "ms", tuple(ran)),
        ]
    return Study(
        key="state_size",
        title="State size: per-step latency by state size",
        x_label="state",
        x_unit="KiB",
        series=tuple(series),
        log_x=True,
        log_y=True,
        findings=tuple(_findings(series)),
    )


def _sqlite_step_ms(workflows: int, data: dict[str, Any]) -> float:
    async def run() -> float:
        with tempfile.TemporaryDirectory(prefix="ruvon-bench-") as tmp:
            provider = SQLitePersistenceProvider(str(Path(tmp) / "bench.sqlite3"))
            try:
                return (await _run_linear(provider, workflows, data)).step_us / 1e3
            finally:
                await provider.close()

    return asyncio.run(run())


def _cluster_points(
    cluster: LocalCluster, sizes_kb: Sequence[int], runs: int, scale: float
) -> tuple[list[Point], list[Point]]:
    async def measure(client: Client, db: asyncpg.Connection) -> tuple[list[Point], list[Point]]:
        await sequential_workflows(client, db, 3, workflow_type=_CHAIN_WORKFLOW)  # warm
        chained_points, run_points = [], []
        for size in sizes_kb:
            data = state_document(size)
            samples = _workflows_for(size, scale)
            await sequential_workflows(client, db, 1, data, _CHAIN_WORKFLOW)
            chained, ran = [], []
            for _ in range(runs):
                ids, _client_ms = await sequential_workflows(
                    client, db, samples, data, _CHAIN_WORKFLOW
                )
                intervals, runs_ms = await _chain_times(db, ids)
                chained.append(statistics.median(intervals))
                ran.append(statistics.median(runs_ms))
            chained_points.append(Point(size, tuple(chained)))
            run_points.append(Point(size, tuple(ran)))
        return chained_points, run_points

    return run_with_client(cluster, measure)


async def _chain_times(
    db: asyncpg.Connection, ids: Sequence[str]
) -> tuple[list[float], list[float]]:
    """Steps 2 and 3 of each workflow: commit-to-commit interval and worker run time (ms)."""
    rows = await db.fetch(_STEP_RUN_TIMES, list(ids))
    by_workflow: dict[str, list[tuple[float, float]]] = {}
    for workflow_id, started, finished in rows:
        by_workflow.setdefault(workflow_id, []).append((float(started), float(finished)))
    intervals, runs_ms = [], []
    for workflow_id in ids:
        steps = by_workflow.get(workflow_id, [])
        if len(steps) != _CHAIN_STEPS:
            raise RuntimeError(
                f"{workflow_id}: {len(steps)} finished step runs, not {_CHAIN_STEPS}"
            )
        for (_, previous), (started, finished) in itertools.pairwise(steps):
            intervals.append((finished - previous) * 1e3)
            runs_ms.append((finished - started) * 1e3)
    return intervals, runs_ms


def _findings(series: list[Series]) -> list[str]:
    lines = []
    for one in series:
        if one.name.startswith("  "):
            continue
        small, mid, large = one.points[0], one.points[-2], one.points[-1]
        size_growth = large.x / mid.x
        growth = large.median / mid.median
        verdict = "super-linear" if growth > size_growth * 1.1 else "linear or better"
        per_mb = (large.median - mid.median) / ((large.x - mid.x) / 1024)
        lines.append(
            f"{one.name.split(':')[0]}: {small.median:.2f} -> {large.median:.1f} ms "
            f"({int(small.x)} -> {int(large.x)} KiB); x{growth:.1f} for x{size_growth:.0f} "
            f"data from {int(mid.x)} KiB ({verdict}); marginal {per_mb:.1f} ms per MiB"
        )
    return lines
