"""The two live streams as async iterators of SSE text: one workflow's commits, the list's.

Event ids make ``Last-Event-ID`` resume exact: one workflow's events are numbered by the
workflow's ``version`` (it grows by one per commit); the list's by the commit's position
``<updated_at ISO 8601>/<workflow id>``, from which a reconnecting stream first reads what it
missed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from ruvon.errors import WorkflowNotFound
from ruvon.models import WorkflowStatus
from ruvon.providers.changes import ChangePosition, WorkflowChange, WorkflowChanges
from ruvon.records import ListPosition
from ruvon.server.live.feed import PAGE, Change
from ruvon.server.live.hub import LiveHub
from ruvon.server.live.sse import KEEP_ALIVE, event_frame, retry_frame
from ruvon.server.models import WorkflowSummary

__all__ = [
    "ListFilter",
    "list_events",
    "parse_position",
    "position_id",
    "workflow_events",
]

RECONNECT_MS = 1000
#: A reconnecting list stream reads at most this many missed changes, then says ``reset``.
MAX_CATCH_UP = 5000


def position_id(record: WorkflowChange) -> str:
    """The list stream's event id of a commit."""
    return f"{record.updated_at.isoformat()}/{record.id}"


def parse_position(event_id: str) -> ChangePosition:
    """The position an event id names (``ValueError`` if it is not one of ours)."""
    moment, slash, workflow_id = event_id.partition("/")
    if not slash:
        raise ValueError(event_id)
    updated_at = datetime.fromisoformat(moment)
    if updated_at.tzinfo is None:
        raise ValueError(event_id)
    return ChangePosition(updated_at, workflow_id)


def _summary(change: WorkflowChange) -> str:
    """The same JSON as an item of ``GET /workflows``."""
    return WorkflowSummary(
        id=change.id,
        workflow_type=change.workflow_type,
        workflow_version=change.workflow_version,
        status=str(change.status),
        current_step=change.current_step_name,
        parent_execution_id=change.parent_execution_id,
        error=change.error,
        created_at=change.created_at,
        updated_at=change.updated_at,
        completed_at=change.completed_at,
        cursor=ListPosition(change.created_at, change.id).to_cursor(),
    ).model_dump_json()


class _Ticker:
    """Deadlines of the keep-alive comment and of a periodic check, on the loop's clock."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.due = asyncio.get_running_loop().time() + every

    def left(self) -> float:
        return max(0.0, self.due - asyncio.get_running_loop().time())

    def expired(self) -> bool:
        if self.left() > 0:
            return False
        self.due = asyncio.get_running_loop().time() + self.every
        return True


async def workflow_events(
    hub: LiveHub, workflow_id: str, after_version: int | None
) -> AsyncIterator[str]:
    """Each commit of one workflow after ``after_version``; ends after a terminal status."""
    persistence = hub.runtime.persistence
    yield retry_frame(RECONNECT_MS)
    async with hub.feed.subscribe(workflow_id) as subscription:
        sent = after_version or 0

        def frame(record: WorkflowChange) -> str | None:
            nonlocal sent
            if record.version <= sent:
                return None
            sent = record.version
            return event_frame("workflow", _summary(record), str(record.version))

        # Read after subscribing: a commit made in between is in the feed, or in this read.
        current = WorkflowChange.of(await persistence.load_workflow(workflow_id))
        if (text := frame(current)) is not None:
            yield text
        if current.status.is_terminal:
            return
        keep_alive, recheck = _Ticker(hub.keep_alive), _Ticker(hub.recheck)
        while True:
            try:
                change = await subscription.next(min(keep_alive.left(), recheck.left()))
            except TimeoutError:
                if keep_alive.expired():
                    yield KEEP_ALIVE
                if recheck.expired():
                    try:
                        current = WorkflowChange.of(await persistence.load_workflow(workflow_id))
                    except WorkflowNotFound:
                        return  # deleted while watched
                    if (text := frame(current)) is not None:
                        yield text
                    if current.status.is_terminal:
                        return
                continue
            if change is None:
                return  # the server stops, or this stream fell behind: the client resumes
            record = change.record
            if record.id != workflow_id:
                continue
            if (text := frame(record)) is not None:
                yield text
            if record.status.is_terminal:
                return


@dataclass(frozen=True, slots=True)
class ListFilter:
    """Which changes the list stream sends (None: any)."""

    status: WorkflowStatus | None = None
    workflow_type: str | None = None

    def wants(self, record: WorkflowChange, previous: WorkflowStatus | None = None) -> bool:
        """A change matches by its new status, or by its old one (it left the filtered set)."""
        if self.workflow_type is not None and record.workflow_type != self.workflow_type:
            return False
        return self.status is None or self.status in (record.status, previous)


async def list_events(
    hub: LiveHub, wanted: ListFilter, after: ChangePosition | None
) -> AsyncIterator[str]:
    """Every commit of a workflow matching ``wanted`` (creations too); after ``after`` first."""
    yield retry_frame(RECONNECT_MS)
    feed = hub.feed
    async with feed.subscribe() as subscription:
        # Versions sent while catching up: the live feed may bring the same commits again.
        sent: dict[str, int] = {}
        if after is not None:
            async for text in _catch_up(feed.source, wanted, after, sent.__setitem__):
                yield text
        keep_alive = _Ticker(hub.keep_alive)
        while True:
            try:
                change = await subscription.next(keep_alive.left())
            except TimeoutError:
                if keep_alive.expired():
                    yield KEEP_ALIVE
                continue
            if change is None:
                return
            if _fresh(change, sent) and wanted.wants(change.record, change.previous_status):
                yield event_frame("workflow", _summary(change.record), position_id(change.record))


def _fresh(change: Change, sent: dict[str, int]) -> bool:
    if not sent:
        return True
    version = sent.get(change.record.id)
    if version is None:
        return True
    if change.record.version <= version:
        return False
    del sent[change.record.id]
    return True


async def _catch_up(
    source: WorkflowChanges,
    wanted: ListFilter,
    after: ChangePosition,
    remember: Callable[[str, int], None],
) -> AsyncIterator[str]:
    """The commits after ``after`` as they stand now (a workflow committed twice since shows
    its newest commit once)."""
    read = 0
    while read < MAX_CATCH_UP:
        rows = await source.list_changed_workflows(after, PAGE)
        for record in rows:
            remember(record.id, record.version)
            if wanted.wants(record):
                yield event_frame("workflow", _summary(record), position_id(record))
        read += len(rows)
        if len(rows) < PAGE:
            return
        after = ChangePosition.of(rows[-1])
    yield event_frame(
        "reset",
        f'{{"reason": "more than {MAX_CATCH_UP} changes were missed: reload the list"}}',
    )
