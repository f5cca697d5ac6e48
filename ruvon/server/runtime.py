"""What the server holds open while it runs: the database, the builder and the client."""

from __future__ import annotations

import contextlib
from typing import Any

from ruvon.builder import WorkflowBuilder
from ruvon.client import Client
from ruvon.config import Settings
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.observability.health import is_cluster_url
from ruvon.implementations.observability.tracing_setup import with_tracing
from ruvon.implementations.persistence.factory import persistence_from_url
from ruvon.models import WorkflowStatus
from ruvon.providers.persistence import PersistenceProvider
from ruvon.records import WorkflowRecord


class ServerRuntime:
    """The providers behind the API, opened at startup and closed at shutdown.

    On PostgreSQL the server is a cluster client: operations are stored and announced, and the
    workers run the steps (``ruvon.Client``'s default execution). On SQLite there are no
    workers: the server runs the workflow in-process after each operation, to its next wait,
    as ``ruvon run`` / ``ruvon resume`` do. ``execution`` overrides the choice.
    """

    def __init__(self, settings: Settings, *, execution: Any = None) -> None:
        self.settings = settings
        self._execution_override = execution
        self._persistence: PersistenceProvider | None = None
        self._client: Client | None = None
        self._owned_execution: SyncExecutionProvider | None = None

    @property
    def embedded(self) -> bool:
        """True when this process runs the steps (no workers behind the database)."""
        if self._execution_override is not None:
            return isinstance(self._execution_override, SyncExecutionProvider)
        return not is_cluster_url(self.settings.database_url)

    async def open(self) -> None:
        """Connect to the database (creating the SQLite schema if needed)."""
        persistence = persistence_from_url(
            self.settings.database_url,
            max_state_bytes=self.settings.max_state_bytes,
            settings=self.settings,
        )
        execution = self._execution_override
        if execution is None and self.embedded:
            execution = self._owned_execution = SyncExecutionProvider()
        builder = WorkflowBuilder(
            persistence_provider=persistence,
            execution_provider=execution,
            settings=self.settings,
            # RUVON_OTEL: a workflow started (or resumed) here records its start span here.
            observer=with_tracing(None),
        )
        client = Client(
            builder, settings=self.settings, persistence=persistence, execution=execution
        )
        try:
            await client.connect()
        except BaseException:
            with contextlib.suppress(Exception):
                await persistence.close()
            raise
        self._persistence, self._client = persistence, client

    async def close(self) -> None:
        """Release the client, the database and the in-process executor."""
        client, self._client = self._client, None
        persistence, self._persistence = self._persistence, None
        if client is not None:
            await client.close()
        if persistence is not None:
            await persistence.close()
        if self._owned_execution is not None:
            self._owned_execution.close()
            self._owned_execution = None

    @property
    def persistence(self) -> PersistenceProvider:
        assert self._persistence is not None, "the server runtime is not open"
        return self._persistence

    @property
    def client(self) -> Client:
        assert self._client is not None, "the server runtime is not open"
        return self._client

    @property
    def builder(self) -> WorkflowBuilder:
        return self.client.builder

    async def carry_on(self, record: WorkflowRecord) -> WorkflowRecord:
        """Embedded: run the workflow in this process to its next wait or its end."""
        if not self.embedded or record.runtime.get("cluster") or not _may_run(record):
            return record
        workflow = await self.builder.load_workflow(record.id)
        await workflow.run()
        return workflow.record


def _may_run(record: WorkflowRecord) -> bool:
    return not record.status.is_terminal and record.status is not WorkflowStatus.WAITING_HUMAN
