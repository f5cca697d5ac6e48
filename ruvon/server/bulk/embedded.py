"""Embedded (SQLite): the server runs bulk operations itself, in background tasks.

The request returns 202 as soon as the bulk workflow is stored; the task then runs it to its
end in this process, and carries each retried workflow on as ``POST /workflows/{id}/retry``
does. At shutdown a bulk run still going is given a moment, then cancelled: it stays ACTIVE
with the outcomes of the pages it committed (start another bulk operation for the rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ruvon.providers.persistence import PersistenceProvider
from ruvon.records import WorkflowRecord
from ruvon.server.bulk.steps import acting_through
from ruvon.server.runtime import ServerRuntime

__all__ = ["EmbeddedBulkRuns", "RuntimeTarget"]

logger = logging.getLogger("ruvon.server.bulk")

SHUTDOWN_GRACE = 5.0


class RuntimeTarget:
    """The server's client, carrying a retried workflow on in this process (embedded)."""

    def __init__(self, runtime: ServerRuntime) -> None:
        self.runtime = runtime

    @property
    def persistence(self) -> PersistenceProvider:
        return self.runtime.persistence

    async def retry(self, workflow_id: str, actor: str) -> WorkflowRecord:
        record = await self.runtime.client.retry(workflow_id, actor=actor)
        return await self.runtime.carry_on(record)

    async def cancel(self, workflow_id: str, reason: str | None, actor: str) -> WorkflowRecord:
        return await self.runtime.client.cancel(workflow_id, reason, actor=actor)


class EmbeddedBulkRuns:
    """The bulk runs this server process is running (none on a cluster: workers run them)."""

    def __init__(self, runtime: ServerRuntime) -> None:
        self.runtime = runtime
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        return len(self._tasks)

    def start(self, record: WorkflowRecord) -> None:
        """Run the stored bulk workflow ``record`` to its end, in the background."""
        task = asyncio.create_task(self._run(record), name=f"ruvon-bulk-{record.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, record: WorkflowRecord) -> None:
        try:
            with acting_through(RuntimeTarget(self.runtime)):
                await self.runtime.carry_on(record)
        except Exception:
            logger.exception("bulk operation %s stopped with an error", record.id)

    async def close(self) -> None:
        """Let running bulk operations finish for a moment, then cancel them."""
        tasks = set(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
        for task in pending:
            logger.warning("bulk operation task %s cancelled at shutdown", task.get_name())
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
