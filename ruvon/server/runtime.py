"""What the server holds open while it runs: the database, the builder and the client."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from ruvon.builder import WorkflowBuilder
from ruvon.client import Client
from ruvon.clock import utc_now
from ruvon.config import Settings
from ruvon.embedded.claims import Claimant, claim_workflow, holder, release_workflow
from ruvon.errors import InvalidWorkflowOperation, RuvonError
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.observability.health import is_cluster_url
from ruvon.implementations.observability.tracing_setup import with_tracing
from ruvon.implementations.persistence.factory import persistence_from_url
from ruvon.models import WorkflowStatus
from ruvon.providers.persistence import PersistenceProvider
from ruvon.records import WorkflowRecord

_TIMED = (WorkflowStatus.WAITING_TIMER, WorkflowStatus.WAITING_HUMAN)


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
        # Embedded: one operation at a time per workflow in this process (see exclusive()).
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._claimant = Claimant.here("ruvon-server")

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

    @contextlib.asynccontextmanager
    async def exclusive(self, workflow_id: str) -> AsyncIterator[None]:
        """Embedded: hold ``workflow_id`` while an operation runs its steps in this process.

        A resume, an approval or a signal runs the workflow's steps here; so does an
        ``ruvon worker --embedded`` that fires the same workflow's deadline, and so would a
        second request for it. So within this process one operation per workflow runs at a time;
        a live claim of another process (the one the embedded runner and ``ruvon resume`` take)
        refuses the operation (``InvalidWorkflowOperation``, 409) before anything is written;
        and a workflow a runner may take meanwhile (its timer or deadline due within a minute)
        is claimed first, with a fenced save, and released after. On a cluster the workers run
        the steps under their own claims: nothing to hold here.
        """
        if not self.embedded:
            yield
            return
        lock = self._locks.get(workflow_id)
        if lock is None:
            lock = self._locks[workflow_id] = asyncio.Lock()
        async with lock:
            workflow = await self.builder.load_workflow(workflow_id)
            record = workflow.record
            if record.runtime.get("cluster") or workflow.status.is_terminal:
                yield  # workers run it, or it has ended (a retry starts it afresh)
                return
            current = holder(workflow)
            if current is not None and not self._claimant.holds(current):
                if self._claimant.is_live(current):
                    raise _being_run(workflow_id, current["owner"])
            elif not _due_for_a_runner(record):
                # No runner touches it before its timer or deadline: nothing to take, and a
                # refused operation (bad input) leaves the workflow unchanged.
                yield
                return
            taken = await claim_workflow(workflow, self._claimant)
            if taken is not None:
                raise _being_run(workflow_id, taken["owner"])
            try:
                yield
            finally:
                with contextlib.suppress(RuvonError):  # stale once this process is gone
                    await release_workflow(
                        await self.builder.load_workflow(workflow_id), self._claimant
                    )

    async def carry_on(self, record: WorkflowRecord) -> WorkflowRecord:
        """Embedded: run the workflow in this process to its next wait or its end."""
        if not self.embedded or record.runtime.get("cluster") or not _may_run(record):
            return record
        workflow = await self.builder.load_workflow(record.id)
        await workflow.run()
        return workflow.record


#: A runner takes a workflow whose timer or deadline comes due; one due within this many
#: seconds might come due while an operation runs, so the operation claims it first.
_DUE_MARGIN = timedelta(seconds=60)


def _due_for_a_runner(record: WorkflowRecord) -> bool:
    soon = utc_now() + _DUE_MARGIN
    timer = record.run_at if record.status in _TIMED else None
    return any(at is not None and at <= soon for at in (timer, record.deadline_at))


def _being_run(workflow_id: str, owner: str) -> InvalidWorkflowOperation:
    return InvalidWorkflowOperation(
        f"workflow '{workflow_id}' is being run by {owner} (an embedded runner that fired its "
        "timer or deadline); nothing was changed: try again once it waits again"
    )


def _may_run(record: WorkflowRecord) -> bool:
    return not record.status.is_terminal and record.status is not WorkflowStatus.WAITING_HUMAN
