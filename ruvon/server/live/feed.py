"""One poller of the database's changes, shared by every live stream of a server process.

Why polling and not PostgreSQL ``LISTEN/NOTIFY``: a commit is made by whichever process runs
the step (a Celery worker, the beat, a ``ruvon run`` on a laptop, this server), through one of
several providers, and SQLite has no notifications at all. Polling one indexed query
(``(updated_at, id)`` after a position, migration 0005) a few times a second works the same on
both databases, needs nothing from the writers, and costs one query per interval whatever the
number of connected streams: the feed fans each change out to its subscribers.

``updated_at`` is set by the committing process before its commit, so a commit can become
visible with a position older than one already read. Each poll therefore reads again from
``lookback`` seconds before the newest position seen, and drops what it already published
(the workflow's ``version`` grows with every commit). A workflow committed several times
between two polls is published once, as its newest commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from ruvon.clock import utc_now
from ruvon.models import WorkflowStatus
from ruvon.providers.changes import ChangePosition, WorkflowChange, WorkflowChanges

__all__ = ["Change", "ChangeFeed", "Subscription"]

logger = logging.getLogger("ruvon.server.live")

DEFAULT_INTERVAL = 0.2
DEFAULT_LOOKBACK = 2.0
PAGE = 200
#: Pages read per poll at most; the rest waits for the next poll (streams stay responsive).
MAX_PAGES = 25
QUEUE_SIZE = 2000


@dataclass(frozen=True, slots=True)
class Change:
    """A workflow's commit as the feed saw it, with the status it had before (if seen)."""

    record: WorkflowChange
    previous_status: WorkflowStatus | None


class Subscription:
    """What one stream receives: changes in commit order, then None when the feed stops.

    A subscriber that falls :data:`QUEUE_SIZE` changes behind is dropped (``overflowed``): its
    stream ends and the client resumes from its last event id.
    """

    def __init__(self, workflow_id: str | None = None) -> None:
        self.workflow_id = workflow_id
        self._queue: asyncio.Queue[Change | None] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False
        self.closed = False

    def offer(self, change: Change | None) -> None:
        if self.closed:
            return
        try:
            self._queue.put_nowait(change)
        except asyncio.QueueFull:
            self.overflowed = self.closed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()  # room for the end marker
            self._queue.put_nowait(None)
        if change is None:
            self.closed = True

    async def next(self, timeout: float) -> Change | None:
        """The next change; raises ``TimeoutError`` when none came within ``timeout``."""
        return await asyncio.wait_for(self._queue.get(), timeout)


class ChangeFeed:
    """Polls ``source`` every ``interval`` seconds while anyone is subscribed."""

    def __init__(
        self,
        source: WorkflowChanges,
        *,
        interval: float = DEFAULT_INTERVAL,
        lookback: float = DEFAULT_LOOKBACK,
    ) -> None:
        self.source = source
        self.interval = interval
        self.lookback = timedelta(seconds=lookback)
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._primed = asyncio.Event()
        self._stopped = False
        # Per workflow: (version, status, updated_at) of the newest commit published.
        self._seen: dict[str, tuple[int, WorkflowStatus, ChangePosition]] = {}
        self._position = ChangePosition(utc_now())
        self.polls = 0

    @property
    def subscribers(self) -> int:
        """Streams connected now."""
        return len(self._subscribers)

    @property
    def polling(self) -> bool:
        """True while the poller runs (it stops with the last subscriber)."""
        return self._task is not None and not self._task.done()

    @contextlib.asynccontextmanager
    async def subscribe(self, workflow_id: str | None = None) -> AsyncIterator[Subscription]:
        """Receive every change committed from now on (the feed has read up to now first);
        only those of ``workflow_id`` if given."""
        subscription = Subscription(workflow_id)
        if self._stopped:
            subscription.offer(None)
            yield subscription
            return
        self._subscribers.add(subscription)
        if self._task is None or self._task.done():
            self._primed.clear()
            self._task = asyncio.create_task(self._poll_forever(), name="ruvon-change-feed")
        try:
            await self._primed.wait()
            yield subscription
        finally:
            # No await here: a disconnected client's stream runs this while being cancelled.
            self._subscribers.discard(subscription)
            if not self._subscribers and self._task is not None:
                self._task.cancel()
                self._task = None

    async def close(self) -> None:
        """Stop polling and end every stream (server shutdown)."""
        self._stopped = True
        for subscription in list(self._subscribers):
            subscription.offer(None)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll_forever(self) -> None:
        # The first poll only learns what is there; the subscribers read their start after it.
        # Should it fail, the next one publishes its whole window: a change from just before a
        # stream started may then come twice, but none committed after it is lost.
        first = True
        while True:
            try:
                await self._poll(publish=not first)
            except Exception:  # a database hiccup: keep the streams, try again
                logger.warning("live stream poll failed; retrying", exc_info=True)
            first = False
            self._primed.set()
            self.polls += 1
            await asyncio.sleep(self.interval)

    async def _poll(self, *, publish: bool) -> None:
        floor = ChangePosition(self._position.updated_at - self.lookback)
        after = floor
        for _ in range(MAX_PAGES):
            rows = await self.source.list_changed_workflows(after, PAGE)
            for record in rows:
                self._note(record, publish=publish)
            if len(rows) < PAGE:
                break
            after = ChangePosition.of(rows[-1])
        self._seen = {
            workflow_id: seen for workflow_id, seen in self._seen.items() if seen[2] > floor
        }

    def _note(self, record: WorkflowChange, *, publish: bool) -> None:
        position = ChangePosition.of(record)
        seen = self._seen.get(record.id)
        if seen is not None and seen[0] >= record.version:
            return
        self._seen[record.id] = (record.version, record.status, position)
        # A writer whose clock runs ahead must not move the window past the present (the
        # commits of the others would fall behind it); its row is read again, and skipped.
        self._position = max(self._position, min(position, ChangePosition(utc_now())))
        if publish:
            change = Change(record, seen[1] if seen is not None else None)
            for subscription in list(self._subscribers):
                if subscription.workflow_id not in (None, record.id):
                    continue
                subscription.offer(change)
                if subscription.overflowed:
                    self._subscribers.discard(subscription)
