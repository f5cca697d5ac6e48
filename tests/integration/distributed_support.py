"""Shared pieces of the distributed tests: clusters, clients, embedded twins, database reads."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import redis

from ruvon.builder import WorkflowBuilder
from ruvon.client import Client
from ruvon.config import Settings
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon.testing.cluster import LocalCluster
from ruvon.workflow import Workflow

WORKFLOWS = Path(__file__).with_name("cluster_workflows")
REGISTRY = WORKFLOWS / "workflow_registry.yaml"
QUEUE = "default"
WAIT = 60.0


@contextlib.contextmanager
def started_cluster(env: Mapping[str, str] | None = None, **options: Any) -> Iterator[LocalCluster]:
    """A cluster of real prefork workers (concurrency 2) that knows the test workflows."""
    settings = {"RUVON_REGISTRY_FILE": str(REGISTRY), "RUVON_DEFAULT_QUEUE": QUEUE, **(env or {})}
    options.setdefault("queues", [QUEUE])
    with LocalCluster(env=settings, **options) as cluster:
        yield cluster


def settings_of(cluster: LocalCluster, **overrides: str) -> Settings:
    return Settings.from_env({**cluster.env, **overrides})


def builder_of(settings: Settings) -> WorkflowBuilder:
    return WorkflowBuilder(REGISTRY, settings=settings)


@contextlib.asynccontextmanager
async def client_of(cluster: LocalCluster, **overrides: str) -> AsyncIterator[Client]:
    settings = settings_of(cluster, **overrides)
    async with Client(builder_of(settings), settings=settings) as client:
        yield client


async def run_embedded(workflow_type: str, data: dict[str, Any]) -> Workflow:
    """The same workflow run in-process (memory provider, sync executor), for comparison."""
    builder = WorkflowBuilder(
        REGISTRY,
        persistence_provider=MemoryPersistenceProvider(),
        execution_provider=SyncExecutionProvider(),
        settings=Settings.from_env({}),
    )
    workflow = await builder.create_workflow(workflow_type, data)
    await workflow.run()
    return workflow


async def fetch(cluster: LocalCluster, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(cluster.database_url)
    for json_type in ("jsonb", "json"):  # state and definition_snapshot are json
        await connection.set_type_codec(
            json_type, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
    try:
        rows: list[asyncpg.Record] = await connection.fetch(sql, *args)
        return rows
    finally:
        await connection.close()


def effect_counts(cluster: LocalCluster, workflow_id: str) -> dict[str, int]:
    """Executions per step run, counted by the test step functions in Redis."""
    prefix = f"{cluster.key_prefix}effects:{workflow_id}:"
    with redis.Redis.from_url(cluster.env["RUVON_BROKER_URL"]) as client:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        return {key.decode()[len(prefix) :]: int(client.get(key) or 0) for key in keys}


def redis_list(cluster: LocalCluster, name: str) -> list[str]:
    with redis.Redis.from_url(cluster.env["RUVON_BROKER_URL"]) as client:
        return [item.decode() for item in client.lrange(f"{cluster.key_prefix}{name}", 0, -1)]


def without(state: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in state.items() if key not in keys}
