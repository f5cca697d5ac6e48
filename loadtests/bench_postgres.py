"""The ``postgres`` suite of ``python -m loadtests.bench``: the engine on PostgreSQL vs raw asyncpg.

The engine is driven the way a Celery task drives it: a synchronous caller hands each call to
the :class:`~ruvon.bridge.EventLoopBridge` (``bridge.run(builder.create_workflow(...))``, then
``bridge.run(workflow.next_step())``, which runs all five steps through automate_next). The
baseline is a loop of single-row JSONB ``UPDATE``s on one asyncpg connection (on the same
bridge loop, so both see the same event loop), i.e. one raw round trip plus commit. Runs
alternate between the two so both see the same server load, and each engine run is divided by
the raw run next to it. Target: ratio >= 0.5, i.e. a durable step costs at most two raw round
trips; that is the steps-only ratio (a workflow's steps, timed apart from its creation, as the
embedded suite does). The ratio with creation folded in (six writes for five steps) is printed
too. Everything happens in a fresh database cloned from the test template (the server is
``--postgres-url`` or ``RUVON_TEST_POSTGRES_URL``), dropped at the end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from loadtests.bench import STEPS, Figure, Sample, _figure
from loadtests.workloads import register_linear
from ruvon.bridge import EventLoopBridge
from ruvon.builder import WorkflowBuilder
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider
from ruvon.models import WorkflowStatus
from ruvon.records import AuditEntry, WorkflowRecord
from ruvon.testing.postgres import create_database, drop_database, server_url

__all__ = ["PostgresEngine", "bench_postgres", "postgres_engine"]

_RAW_UPDATE = "UPDATE bench_raw SET doc = $1 WHERE id = 1"
_RAW_SETUP = (
    "CREATE TABLE bench_raw (id int PRIMARY KEY, doc jsonb NOT NULL); "
    "INSERT INTO bench_raw VALUES (1, '{}')"
)
_TIMEOUT = 600.0


def _engine_run(
    bridge: EventLoopBridge,
    builder: WorkflowBuilder,
    kind: str,
    n: int,
    data: dict[str, Any] | None = None,
) -> Sample:
    """``n`` workflows created (with ``data``) and run to completion, each call via the bridge."""
    creating = stepping = 0.0
    clock = time.perf_counter
    for _ in range(n):
        started = clock()
        workflow = bridge.run(builder.create_workflow(kind, data or {"counter": 0}), _TIMEOUT)
        created = clock()
        bridge.run(workflow.next_step(), _TIMEOUT)  # automate_next: all five steps
        stepping += clock() - created
        creating += created - started
        if workflow.status is not WorkflowStatus.COMPLETED:
            raise RuntimeError(f"benchmark workflow ended {workflow.status}")
    return Sample(
        n * STEPS / (creating + stepping), creating / n * 1e6, stepping / (n * STEPS) * 1e6
    )


async def _raw_updates(url: str, n: int, doc: dict[str, Any] | None = None) -> float:
    """Seconds per single-row JSONB UPDATE (autocommit) on one plain asyncpg connection.

    The document is ``doc`` with a changing counter (default: the counter alone).
    """
    conn = await asyncpg.connect(url)
    try:
        await conn.set_type_codec(
            "jsonb",
            schema="pg_catalog",
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
        )
        base = doc or {}
        for i in range(50):  # warm the prepared statement and the row's page
            await conn.execute(_RAW_UPDATE, {**base, "counter": i})
        started = time.perf_counter()
        for i in range(n):
            await conn.execute(_RAW_UPDATE, {**base, "counter": i})
        return (time.perf_counter() - started) / n
    finally:
        await conn.close()


async def _operations(provider: PostgresPersistenceProvider, n: int) -> dict[str, float]:
    """Microseconds per provider call (on the bridge loop, no bridge hop per call)."""
    snapshot = {"workflow_type": "Ops", "steps": [{"name": f"s{i}"} for i in range(STEPS)]}
    clock = time.perf_counter
    records = [
        WorkflowRecord(
            f"ops-{time.time_ns()}-{i}", "Ops", WorkflowStatus.ACTIVE, {"n": 0}, snapshot
        )
        for i in range(n)
    ]
    started = clock()
    for record in records:
        await provider.create_workflow(record, [AuditEntry(record.id, "WORKFLOW_CREATED")])
    created = clock()
    for record in records:
        record.state = {"n": 1}
        audit = [AuditEntry(record.id, "STEP_COMPLETED", step_name="s0")]
        await provider.save_workflow(record, expected_version=record.version, audit=audit)
    saved = clock()
    for record in records:
        await provider.load_workflow(record.id)
    loaded = clock()
    return {
        "create": (created - started) / n * 1e6,
        "save": (saved - created) / n * 1e6,
        "load": (loaded - saved) / n * 1e6,
    }


@dataclass(frozen=True)
class PostgresEngine:
    """The 5-step workflow on a fresh PostgreSQL database, driven through an event-loop bridge.

    The database also holds ``bench_raw``, the one-row table of the raw UPDATE baseline.
    """

    bridge: EventLoopBridge
    provider: PostgresPersistenceProvider
    builder: WorkflowBuilder
    kind: str
    database: str

    def run_workflows(self, n: int, data: dict[str, Any] | None = None) -> Sample:
        """``n`` workflows created with ``data`` and run to completion through the bridge."""
        return _engine_run(self.bridge, self.builder, self.kind, n, data)

    def raw_update_seconds(self, n: int, doc: dict[str, Any] | None = None) -> float:
        """Seconds per raw single-row JSONB UPDATE of ``doc`` (plus a counter)."""
        return self.bridge.run(_raw_updates(self.database, n, doc), _TIMEOUT)


@contextlib.contextmanager
def postgres_engine(url: str | None = None) -> Iterator[PostgresEngine]:
    """A :class:`PostgresEngine` on a database cloned from the template, dropped on exit."""
    server = url or server_url()
    bridge = EventLoopBridge(name="ruvon-bench")
    database = bridge.run(create_database(server), _TIMEOUT)
    try:
        provider = PostgresPersistenceProvider(database, 2, 4)
        bridge.run(provider.initialize(), _TIMEOUT)
        try:
            builder = WorkflowBuilder(
                persistence_provider=provider, execution_provider=SyncExecutionProvider()
            )
            kind = register_linear(builder, steps=STEPS)
            setup = bridge.run(asyncpg.connect(database), _TIMEOUT)
            bridge.run(setup.execute(_RAW_SETUP), _TIMEOUT)
            bridge.run(setup.close(), _TIMEOUT)
            yield PostgresEngine(bridge, provider, builder, kind, database)
        finally:
            bridge.run(provider.close(), _TIMEOUT)
    finally:
        bridge.run(drop_database(database, server), _TIMEOUT)
        bridge.close()


def bench_postgres(workflows: int, runs: int, url: str | None = None) -> list[Figure]:
    """Engine steps/s through the bridge, raw UPDATEs/s, their ratio, and per-call costs."""
    with postgres_engine(url) as engine:
        return _measure(engine, workflows, runs)


def _measure(pg: PostgresEngine, workflows: int, runs: int) -> list[Figure]:
    pg.run_workflows(20)  # warm: imports, prepared statements, snapshots

    engine: list[Sample] = []
    raw: list[float] = []
    ops: list[dict[str, float]] = []
    for _ in range(runs):
        engine.append(pg.run_workflows(workflows))
        raw.append(pg.raw_update_seconds(workflows * STEPS))
        ops.append(pg.bridge.run(_operations(pg.provider, max(workflows // 2, 50)), _TIMEOUT))
    raw_per_s = [1 / seconds for seconds in raw]
    pairs = list(zip(engine, raw_per_s, strict=True))
    stepping_per_s = [1e6 / sample.step_us for sample in engine]

    def op(name: str) -> list[float]:
        return [run[name] for run in ops]

    figures: list[Any] = [
        _figure(
            "postgres via bridge: 5-step wf incl. create",
            "steps/s",
            [s.steps_per_second for s in engine],
        ),
        _figure("postgres via bridge: create_workflow", "us/wf", [s.create_us for s in engine]),
        _figure("postgres via bridge: durable step", "us/step", [s.step_us for s in engine]),
        _figure("raw asyncpg JSONB UPDATE (1 row, autocommit)", "updates/s", raw_per_s),
        _figure("raw asyncpg JSONB UPDATE", "us/update", [s * 1e6 for s in raw]),
        _figure(
            "ratio: durable steps/s / raw updates/s",
            "x",
            [steps / r for steps, r in zip(stepping_per_s, raw_per_s, strict=True)],
            "target >= 0.5",
        ),
        _figure(
            "ratio incl. create_workflow (6 writes / 5 steps)",
            "x",
            [s.steps_per_second / r for s, r in pairs],
            "(reported)",
        ),
        _figure("provider.create_workflow (1 audit row)", "us/call", op("create")),
        _figure("provider.save_workflow (1 audit row)", "us/call", op("save")),
        _figure("provider.load_workflow", "us/call", op("load")),
    ]
    return figures
