"""Named provider factories, so one parametrized fixture runs a test against every backend.

The contract suite (``tests/contract``) parametrizes over ``PERSISTENCE_FACTORIES`` x
``EXECUTION_FACTORIES``. A new backend joins the suite by registering a factory here (or from a
plugin/conftest with :func:`register_persistence` / :func:`register_execution`); nothing else
changes. Implementation modules are imported inside the factories so that listing the names
never needs optional drivers installed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ruvon.builder import WorkflowBuilder
from ruvon.providers.execution import ExecutionProvider
from ruvon.providers.observer import WorkflowObserver
from ruvon.providers.persistence import PersistenceProvider
from ruvon.records import AuditEntry
from ruvon.workflow import Workflow

__all__ = [
    "EXECUTION_FACTORIES",
    "PERSISTENCE_FACTORIES",
    "EngineUnderTest",
    "ExecutionFactory",
    "PersistenceFactory",
    "make_execution",
    "make_persistence",
    "open_engine",
    "register_execution",
    "register_persistence",
]

PersistenceFactory = Callable[[Path], Awaitable[PersistenceProvider]]
"""Builds an *initialized* persistence provider; the path is a private scratch directory."""

ExecutionFactory = Callable[[], ExecutionProvider]
"""Builds an execution provider (the caller closes it)."""

THREAD_POOL_WORKERS = 8
SQLITE_FILE_NAME = "ruvon-contract.sqlite3"

_F = TypeVar("_F")


async def memory_persistence(tmp_dir: Path) -> PersistenceProvider:
    """In-process dictionaries: the reference twin of every real backend."""
    from ruvon.implementations.persistence.memory import MemoryPersistenceProvider

    provider = MemoryPersistenceProvider()
    await provider.initialize()
    return provider


async def sqlite_persistence(tmp_dir: Path) -> PersistenceProvider:
    """A SQLite file in ``tmp_dir`` (a file, not ``:memory:``, so WAL and reopening are real)."""
    from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider

    provider = SQLitePersistenceProvider(str(tmp_dir / SQLITE_FILE_NAME))
    await provider.initialize()
    return provider


async def postgres_persistence(tmp_dir: Path) -> PersistenceProvider:
    """A private PostgreSQL database cloned from a migrated template (dropped on close)."""
    from ruvon.testing.postgres import make_test_postgres_provider

    return await make_test_postgres_provider(tmp_dir)


async def redis_persistence(tmp_dir: Path) -> PersistenceProvider:
    """Redis with a key prefix private to this test (its keys are deleted on close)."""
    from ruvon.testing.redis import make_test_redis_provider

    return await make_test_redis_provider(tmp_dir)


def sync_execution() -> ExecutionProvider:
    """Step functions run inline in the caller's thread."""
    from ruvon.implementations.execution.sync import SyncExecutionProvider

    return SyncExecutionProvider()


def thread_pool_execution() -> ExecutionProvider:
    """Step functions run on a small thread pool, so PARALLEL branches really overlap."""
    from ruvon.implementations.execution.thread_pool import ThreadPoolExecutionProvider

    return ThreadPoolExecutionProvider(max_workers=THREAD_POOL_WORKERS)


PERSISTENCE_FACTORIES: dict[str, PersistenceFactory] = {
    "memory": memory_persistence,
    "sqlite": sqlite_persistence,
    "postgres": postgres_persistence,
    "redis": redis_persistence,
}

EXECUTION_FACTORIES: dict[str, ExecutionFactory] = {
    "sync": sync_execution,
    "thread_pool": thread_pool_execution,
}


def register_persistence(name: str, factory: PersistenceFactory) -> None:
    """Add (or replace) a named persistence backend for the contract suite."""
    PERSISTENCE_FACTORIES[name] = factory


def register_execution(name: str, factory: ExecutionFactory) -> None:
    """Add (or replace) a named execution backend for the contract suite."""
    EXECUTION_FACTORIES[name] = factory


def _lookup(registry: dict[str, _F], kind: str, name: str) -> _F:
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise KeyError(f"no {kind} provider named '{name}' (known: {known})") from None


async def make_persistence(name: str, tmp_dir: Path) -> PersistenceProvider:
    """Build the initialized persistence provider registered as ``name``."""
    return await _lookup(PERSISTENCE_FACTORIES, "persistence", name)(tmp_dir)


def make_execution(name: str) -> ExecutionProvider:
    """Build the execution provider registered as ``name``."""
    return _lookup(EXECUTION_FACTORIES, "execution", name)()


@dataclass
class EngineUnderTest:
    """One persistence x execution combination with a fresh builder wired to both.

    Contract tests receive this from their parametrized fixture and never name a backend.
    """

    persistence_name: str
    execution_name: str
    persistence: PersistenceProvider
    execution: ExecutionProvider
    builder: WorkflowBuilder
    scratch_dir: Path

    @property
    def name(self) -> str:
        """``persistence-execution``, e.g. ``sqlite-thread_pool``."""
        return f"{self.persistence_name}-{self.execution_name}"

    def new_builder(
        self,
        workflow_registry: Mapping[str, Any] | str | Path | None = None,
        *,
        observer: WorkflowObserver | None = None,
    ) -> WorkflowBuilder:
        """Another builder over the same providers (a restarted process, a second node)."""
        return WorkflowBuilder(
            workflow_registry,
            config_dir=self.scratch_dir,
            persistence_provider=self.persistence,
            execution_provider=self.execution,
            observer=observer,
        )

    async def create(
        self,
        workflow_type: str,
        initial_data: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Workflow:
        """Create a workflow through the fixture's builder."""
        return await self.builder.create_workflow(workflow_type, initial_data, **options)

    async def load(self, workflow_id: str, *, builder: WorkflowBuilder | None = None) -> Workflow:
        """Load a stored workflow as a new, independent object."""
        return await (builder or self.builder).load_workflow(workflow_id)

    async def audit_events(
        self, workflow_id: str, event_type: str | None = None
    ) -> list[AuditEntry]:
        """The workflow's audit rows (only ``event_type`` ones, if given), oldest first."""
        entries = await self.persistence.get_audit_log(workflow_id)
        return [e for e in entries if event_type is None or e.event_type == event_type]


@asynccontextmanager
async def open_engine(
    persistence_name: str, execution_name: str, scratch_dir: Path
) -> AsyncIterator[EngineUnderTest]:
    """Build the named providers and a builder; close all of them on exit."""
    persistence = await make_persistence(persistence_name, scratch_dir)
    execution = make_execution(execution_name)
    builder = WorkflowBuilder(
        config_dir=scratch_dir, persistence_provider=persistence, execution_provider=execution
    )
    try:
        yield EngineUnderTest(
            persistence_name, execution_name, persistence, execution, builder, scratch_dir
        )
    finally:
        try:
            await builder.close()
            await persistence.close()
        finally:
            execution.close()
