"""Drivers that run one workflow the same way through every executor, for the executor contract.

A test talks to an :class:`ExecutorDriver` only: start a workflow, let it settle (terminal, or
waiting for a person), answer it, read what the database recorded. Two implementations:

* :class:`EmbeddedDriver` runs in this process (sync or thread-pool executor, any persistence):
  settling is ``Workflow.run()``;
* :class:`ClusterDriver` runs on real ``ruvon worker`` subprocesses of one :class:`LocalCluster`
  through :class:`ruvon.Client`: settling is polling PostgreSQL (``Client.wait``).

The workflows live in ``executor_workflows/`` (one registry for this process and the workers).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol

from ruvon.builder import WorkflowBuilder
from ruvon.client import Client
from ruvon.config import Settings
from ruvon.providers.persistence import PersistenceProvider
from ruvon.records import AuditEntry, WorkflowRecord
from ruvon.testing.cluster import LocalCluster
from ruvon.testing.providers import open_engine

__all__ = [
    "REGISTRY",
    "SETTLE_TIMEOUT",
    "ClusterDriver",
    "EmbeddedDriver",
    "ExecutorDriver",
    "open_cluster",
]

REGISTRY = Path(__file__).with_name("executor_workflows") / "workflow_registry.yaml"
SETTLE_TIMEOUT = 30.0
CLUSTER_QUEUE = "default"


class ExecutorDriver(Protocol):
    """One executor as a test sees it; every method reads or writes the workflow by id."""

    name: str
    runs_children_inline: bool
    """Whether a FIRE_AND_FORGET child has run (to its first wait) when its parent settles."""

    async def start(
        self, workflow_type: str, data: dict[str, Any], *, version: str | None = None
    ) -> str:
        """Store a new workflow (of ``version``, or the latest) and set it going; its id."""
        ...

    async def settle(self, workflow_id: str) -> WorkflowRecord:
        """Wait until the workflow is terminal or waits for a person; the stored record."""
        ...

    async def resume(self, workflow_id: str, user_input: dict[str, Any]) -> WorkflowRecord:
        """Answer a workflow waiting for a person, then settle it."""
        ...

    async def get(self, workflow_id: str) -> WorkflowRecord:
        """The workflow as stored now."""
        ...

    async def children(self, workflow_id: str) -> list[WorkflowRecord]:
        """The workflows whose parent is ``workflow_id``."""
        ...

    async def ids_of_version(self, workflow_type: str, version: str) -> list[str]:
        """The ids of the workflows of ``workflow_type`` started on ``version``."""
        ...

    async def audit_log(self, workflow_id: str) -> list[AuditEntry]:
        """The workflow's audit rows, oldest first."""
        ...

    async def audit_events(self, workflow_id: str) -> list[str]:
        """The event types of :meth:`audit_log`, in order."""
        ...

    async def compensations(self, workflow_id: str) -> list[str]:
        """Step names from the compensation log, in the order they ran."""
        ...


class _StoredReads:
    """The read side both drivers share: everything comes from the persistence provider."""

    persistence: PersistenceProvider

    async def get(self, workflow_id: str) -> WorkflowRecord:
        return await self.persistence.load_workflow(workflow_id)

    async def children(self, workflow_id: str) -> list[WorkflowRecord]:
        return await self.persistence.list_workflows(parent_execution_id=workflow_id)

    async def ids_of_version(self, workflow_type: str, version: str) -> list[str]:
        found = await self.persistence.list_workflows(
            workflow_type=workflow_type, workflow_version=version
        )
        return [record.id for record in found]

    async def audit_log(self, workflow_id: str) -> list[AuditEntry]:
        return await self.persistence.get_audit_log(workflow_id)

    async def audit_events(self, workflow_id: str) -> list[str]:
        return [entry.event_type for entry in await self.audit_log(workflow_id)]

    async def compensations(self, workflow_id: str) -> list[str]:
        log = await self.persistence.get_compensation_log(workflow_id)
        return [entry.step_name for entry in log]


class EmbeddedDriver(_StoredReads):
    """In-process execution (``sync`` or ``thread_pool``) over any persistence provider."""

    runs_children_inline = True

    def __init__(self, persistence: PersistenceProvider, builder: WorkflowBuilder, name: str):
        self.persistence = persistence
        self.builder = builder
        self.name = name

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, persistence_name: str, execution_name: str, scratch_dir: Path
    ) -> AsyncIterator[EmbeddedDriver]:
        """The named providers (closed on exit) and a builder over the contract registry."""
        async with open_engine(persistence_name, execution_name, scratch_dir) as engine:
            builder = WorkflowBuilder(
                REGISTRY,
                persistence_provider=engine.persistence,
                execution_provider=engine.execution,
                settings=Settings.from_env({}),  # the developer's RUVON_* must not leak in
            )
            try:
                yield cls(engine.persistence, builder, engine.name)
            finally:
                await builder.close()

    async def start(
        self, workflow_type: str, data: dict[str, Any], *, version: str | None = None
    ) -> str:
        workflow = await self.builder.create_workflow(workflow_type, data, workflow_version=version)
        return workflow.id

    async def settle(self, workflow_id: str) -> WorkflowRecord:
        workflow = await self.builder.load_workflow(workflow_id)
        await asyncio.wait_for(workflow.run(), SETTLE_TIMEOUT)
        return await self.get(workflow_id)

    async def resume(self, workflow_id: str, user_input: dict[str, Any]) -> WorkflowRecord:
        workflow = await self.builder.load_workflow(workflow_id)
        # A failing step after the answer is persisted (and re-raised): the record tells.
        with contextlib.suppress(Exception):
            await workflow.resume(user_input)
        return await self.settle(workflow_id)


class ClusterDriver(_StoredReads):
    """Celery workers of one :class:`LocalCluster`, driven through :class:`ruvon.Client`."""

    runs_children_inline = False

    def __init__(self, persistence: PersistenceProvider, client: Client, name: str):
        self.persistence = persistence
        self.client = client
        self.name = name

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, cluster: LocalCluster, name: str) -> AsyncIterator[ClusterDriver]:
        """A client (and a persistence provider for reads) on the cluster's database."""
        from ruvon.implementations.persistence.factory import persistence_from_url

        settings = Settings.from_env(cluster.env)
        persistence = persistence_from_url(cluster.database_url)
        await persistence.initialize()
        try:
            builder = WorkflowBuilder(REGISTRY, settings=settings)
            async with Client(builder, settings=settings, persistence=persistence) as client:
                yield cls(persistence, client, name)
        finally:
            await persistence.close()

    async def start(
        self, workflow_type: str, data: dict[str, Any], *, version: str | None = None
    ) -> str:
        record = await self.client.start(workflow_type, data, version=version)
        return record.id

    async def settle(self, workflow_id: str) -> WorkflowRecord:
        return await self.client.wait(workflow_id, timeout=SETTLE_TIMEOUT)

    async def resume(self, workflow_id: str, user_input: dict[str, Any]) -> WorkflowRecord:
        # As embedded: bad input or a failing step is recorded, and the record tells.
        with contextlib.suppress(Exception):
            await self.client.resume(workflow_id, user_input)
        return await self.settle(workflow_id)


@contextlib.contextmanager
def open_cluster() -> Iterator[LocalCluster]:
    """One prefork worker (concurrency 2) that knows the contract's workflows."""
    env = {"RUVON_REGISTRY_FILE": str(REGISTRY), "RUVON_DEFAULT_QUEUE": CLUSTER_QUEUE}
    with LocalCluster(workers=1, concurrency=2, queues=[CLUSTER_QUEUE], env=env) as cluster:
        yield cluster
