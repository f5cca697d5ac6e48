"""Migration 0004 on PostgreSQL: stored states and snapshots survive jsonb -> json and back.

A row written at revision 0003 (jsonb, with a NUL escaped the way the provider stores it) is
read back exactly by the provider after the upgrade, can be saved again, and is still the same
document after a downgrade to jsonb.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from ruvon.db_schema import migrations
from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider

BEFORE = "0003_parallel_joins"
STORED_STATE = '{"nul": "a\\u001f0b", "rows": [1, 2, 3]}'  # as 0003's provider wrote "a\x00b"
STATE = {"nul": "a\x00b", "rows": [1, 2, 3]}


def _asyncpg_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _fetch(url: str, query: str) -> Any:
    conn = await asyncpg.connect(_asyncpg_url(url))
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def _insert_legacy_row(url: str) -> None:
    conn = await asyncpg.connect(_asyncpg_url(url))
    try:
        await conn.execute(
            "INSERT INTO workflow_executions (id, workflow_type, status, state, "
            "definition_snapshot, version, created_at, updated_at) "
            "VALUES ('old-1', 'Order', 'ACTIVE', $1::jsonb, "
            """'{"workflow_type": "Order", "steps": []}'::jsonb, 3, now(), now())""",
            STORED_STATE,
        )
    finally:
        await conn.close()


async def _load_and_save(url: str) -> dict[str, Any]:
    provider = PostgresPersistenceProvider(_asyncpg_url(url), 1, 1)
    await provider.initialize()
    try:
        record = await provider.load_workflow("old-1")
        assert record.definition_snapshot == {"workflow_type": "Order", "steps": []}
        state = dict(record.state)
        record.state = {**state, "saved": True}
        await provider.save_workflow(record, expected_version=record.version, audit=[])
        return state
    finally:
        await provider.close()


def test_states_survive_the_type_change_both_ways(postgres_url: str) -> None:
    migrations.upgrade(postgres_url, BEFORE)
    asyncio.run(_insert_legacy_row(postgres_url))

    migrations.upgrade(postgres_url)
    column_type = "SELECT data_type FROM information_schema.columns WHERE column_name = 'state'"
    assert asyncio.run(_fetch(postgres_url, column_type)) == "json"
    assert asyncio.run(_load_and_save(postgres_url)) == STATE

    migrations.downgrade(postgres_url, BEFORE)
    assert asyncio.run(_fetch(postgres_url, column_type)) == "jsonb"
    stored = asyncio.run(
        _fetch(
            postgres_url,
            "SELECT state - 'saved' = $$" + STORED_STATE + "$$::jsonb FROM workflow_executions",
        )
    )
    assert stored is True
    saved = "SELECT (state ->> 'saved')::boolean FROM workflow_executions WHERE id = 'old-1'"
    assert asyncio.run(_fetch(postgres_url, saved)) is True
