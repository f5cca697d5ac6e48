"""Migration 0012's partial indexes hold only what their queries look for, and serve them.

``step_runs``' queue and lease indexes keep unfinished runs only, ``workflow_executions``'
parent and deadline indexes only children and workflows with a deadline. A partial index is
used only for a query whose ``WHERE`` implies its predicate, so each query it exists for is
planned here (sequential scans disabled, as on a table too big to scan) and must name the index:
a query rewritten without ``status = 'QUEUED'`` would silently fall back to scanning every run
ever made.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ruvon.db_schema import database
from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider, listing
from ruvon.implementations.persistence.postgres import maintenance as maintenance_module
from ruvon.implementations.persistence.queries import load_queries
from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon.implementations.persistence.sqlite import provider as sqlite_module
from ruvon.testing.postgres import create_database, drop_database

_PG_SQL = Path(maintenance_module.__file__).with_name("sql")
_MAINTENANCE = load_queries(_PG_SQL / "maintenance.sql")
_RUNS = load_queries(_PG_SQL / "runs.sql")
_WORKFLOWS = load_queries(_PG_SQL / "workflows.sql")
_SQLITE_WORKFLOWS = load_queries(Path(sqlite_module.__file__).with_name("sql") / "workflows.sql")

#: index -> the predicate it keeps (as PostgreSQL prints it back, and as written for SQLite).
PARTIAL = {
    "ix_step_runs_status_run_at": ("status = ANY (ARRAY['QUEUED'::text, 'RUNNING'::text])",
                                   database.UNFINISHED_RUN),
    "ix_step_runs_lease_expires_at": ("status = 'RUNNING'::text", database.RUNNING_RUN),
    "ix_workflow_executions_parent": ("parent_execution_id IS NOT NULL",
                                      "parent_execution_id IS NOT NULL"),
    "ix_workflow_executions_status_deadline_at": ("deadline_at IS NOT NULL",
                                                  "deadline_at IS NOT NULL"),
}  # fmt: skip
_QUEUE_INDEXES = ("ix_step_runs_status_run_at", "ix_step_runs_lease_expires_at")

#: (query, the indexes any one of which must serve it). Running runs may be found through
#: either step_runs index (both hold every RUNNING run); the rest through one.
PLANNED = [
    (_MAINTENANCE["requeue_crashed"], _QUEUE_INDEXES),
    (_MAINTENANCE["exhausted_crashes"], _QUEUE_INDEXES),
    (_MAINTENANCE["expired_leases"], _QUEUE_INDEXES),
    (_MAINTENANCE["unclaimed_queues"], ("ix_step_runs_status_run_at",)),
    (_MAINTENANCE["redispatch_lost"], ("ix_step_runs_status_run_at",)),
    (_MAINTENANCE["queue_backlog"], ("ix_step_runs_status_run_at",)),
    (_RUNS["wake_parked"], ("ix_step_runs_status_run_at",)),
    (_RUNS["wake_parked_of_ended"], ("ix_step_runs_status_run_at",)),
    (_WORKFLOWS["list_past_deadline"], ("ix_workflow_executions_status_deadline_at",)),
    (
        listing.list_statement(listing.ListFilters(parent_execution_id="p", limit=10))[0],
        ("ix_workflow_executions_parent",),
    ),
]

_SAMPLES: dict[str, Any] = {
    "int2": 0, "int4": 10, "int8": 10, "float8": 1.0, "text": "default", "bool": True,
    "text[]": ["default"], "int2[]": [0], "int4[]": [0], "int8[]": [1], "bigint[]": [1],
    "timestamptz": datetime(2026, 12, 8, tzinfo=UTC),
}  # fmt: skip


@pytest.fixture
async def pg() -> AsyncIterator[asyncpg.Connection]:
    url = await create_database()
    provider = PostgresPersistenceProvider(url, 1, 2)
    await provider.initialize()  # at the head (and checked to be)
    await provider.close()
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()
        await drop_database(url)


async def test_postgres_indexes_keep_only_the_rows_their_queries_look_for(
    pg: asyncpg.Connection,
) -> None:
    rows = await pg.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY($1::text[])",
        list(PARTIAL),
    )
    found = {row["indexname"]: row["indexdef"] for row in rows}
    assert set(found) == set(PARTIAL)
    for name, (predicate, _) in PARTIAL.items():
        assert found[name].endswith(f"WHERE ({predicate})"), found[name]


async def test_sqlite_indexes_keep_only_the_rows_their_queries_look_for(tmp_path: Path) -> None:
    path = tmp_path / "partial.sqlite3"
    provider = SQLitePersistenceProvider(str(path))
    await provider.initialize()
    await provider.close()
    with sqlite3.connect(path) as conn:
        found = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'"))
        assert all(found[name].endswith(f"WHERE {sql}") for name, (_, sql) in PARTIAL.items())
        deadline = _SQLITE_WORKFLOWS["list_past_deadline"]
        plan = conn.execute(f"EXPLAIN QUERY PLAN {deadline}", {"now": "x", "limit": 1})
        assert "ix_workflow_executions_status_deadline_at" in " ".join(str(r) for r in plan)


@pytest.mark.parametrize("query, indexes", PLANNED, ids=[f"{n}-{i[0]}" for n, (_, i) in
                                                          enumerate(PLANNED)])  # fmt: skip
async def test_each_query_of_a_partial_index_is_still_served_by_it(
    pg: asyncpg.Connection, query: str, indexes: tuple[str, ...]
) -> None:
    await pg.execute("SET enable_seqscan = off")
    statement = await pg.prepare(f"EXPLAIN {query}")
    args = [_SAMPLES[parameter.name] for parameter in statement.get_parameters()]
    plan = "\n".join(row[0] for row in await statement.fetch(*args))
    used = set(re.findall(r"(ix_\w+)", plan))
    assert used & set(indexes), f"none of {indexes} in the plan:\n{plan}"
    assert "Seq Scan on step_runs" not in plan, plan
