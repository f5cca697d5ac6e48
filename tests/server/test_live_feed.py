"""The change feed on its own, over the memory provider: order, dedup, fan-out, overflow, stop."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest

from ruvon.clock import utc_now
from ruvon.errors import PersistenceError
from ruvon.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon.models import WorkflowStatus
from ruvon.providers.changes import ChangePosition, WorkflowChange
from ruvon.records import WorkflowRecord
from ruvon.server.live import feed as feed_module
from ruvon.server.live.feed import ChangeFeed


def record(workflow_id: str) -> WorkflowRecord:
    now = utc_now()
    return WorkflowRecord(
        id=workflow_id,
        workflow_type="T",
        status=WorkflowStatus.ACTIVE,
        state={},
        definition_snapshot={"steps": [{"name": "a"}]},
        created_at=now,
        updated_at=now,
    )


async def move(store: MemoryPersistenceProvider, workflow_id: str, status: WorkflowStatus) -> None:
    stored = await store.load_workflow(workflow_id)
    moved = dataclasses.replace(stored, status=status, updated_at=utc_now())
    await store.save_workflow(moved, expected_version=stored.version)


@pytest.fixture
async def store() -> MemoryPersistenceProvider:
    provider = MemoryPersistenceProvider()
    await provider.initialize()
    return provider


async def test_subscribers_get_each_commit_once_in_order_with_the_status_before(
    store: MemoryPersistenceProvider,
) -> None:
    await store.create_workflow(record("before"))  # committed before subscribing: not sent
    feed = ChangeFeed(store, interval=0.01)
    async with feed.subscribe() as everything, feed.subscribe("wf-1") as one:
        await store.create_workflow(record("wf-1"))
        await store.create_workflow(record("wf-2"))
        seen = [await everything.next(2.0) for _ in range(2)]
        # (Seen first: commits made between two polls reach a stream as the newest only.)
        await move(store, "wf-1", WorkflowStatus.COMPLETED)
        seen.append(await everything.next(2.0))
        assert [(c.record.id, c.record.version) for c in seen if c] == [
            ("wf-1", 1),
            ("wf-2", 1),
            ("wf-1", 2),
        ]
        assert seen[2] is not None and seen[2].previous_status is WorkflowStatus.ACTIVE
        mine = [await one.next(2.0), await one.next(2.0)]
        assert [c.record.version for c in mine if c] == [1, 2]  # wf-2 is not its business
        await asyncio.sleep(0.1)  # several polls re-read the lookback window: no repeats
        with pytest.raises(TimeoutError):
            await everything.next(0.05)
        assert feed.subscribers == 2 and feed.polling
    assert feed.subscribers == 0
    await asyncio.sleep(0)  # the cancelled poller finishes
    assert not feed.polling


async def test_commits_between_two_polls_coalesce_into_the_newest(
    store: MemoryPersistenceProvider,
) -> None:
    feed = ChangeFeed(store, interval=0.2)
    async with feed.subscribe() as subscription:
        await store.create_workflow(record("wf-1"))
        await move(store, "wf-1", WorkflowStatus.WAITING_HUMAN)
        await move(store, "wf-1", WorkflowStatus.COMPLETED)
        change = await subscription.next(2.0)
        assert change is not None and change.record.version in (1, 2, 3)
        while change is not None and change.record.version < 3:
            change = await subscription.next(2.0)
        assert change is not None and change.record.status is WorkflowStatus.COMPLETED


async def test_a_late_commit_inside_the_lookback_is_still_sent(
    store: MemoryPersistenceProvider,
) -> None:
    feed = ChangeFeed(store, interval=0.01, lookback=2.0)
    async with feed.subscribe() as subscription:
        await store.create_workflow(record("new"))
        assert (change := await subscription.next(2.0)) is not None
        late = dataclasses.replace(record("late"), updated_at=utc_now() - timedelta(seconds=1))
        await store.create_workflow(late)  # visible now, positioned before "new"
        change = await subscription.next(2.0)
        assert change is not None and change.record.id == "late"


async def test_a_subscriber_that_falls_behind_is_dropped_and_told(
    store: MemoryPersistenceProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_module, "QUEUE_SIZE", 3)
    feed = ChangeFeed(store, interval=0.01)
    async with feed.subscribe() as slow:
        for n in range(5):
            await store.create_workflow(record(f"wf-{n}"))
        await asyncio.sleep(0.1)
        assert slow.overflowed
        received = [await slow.next(1.0) for _ in range(3)]
        assert received[-1] is None  # the end: its stream closes, the client resumes


async def test_close_ends_every_subscription_and_the_poller(
    store: MemoryPersistenceProvider,
) -> None:
    feed = ChangeFeed(store, interval=0.01)
    async with feed.subscribe() as subscription:
        await feed.close()
        assert await subscription.next(1.0) is None
        assert not feed.polling
    async with feed.subscribe() as after:  # a closed feed ends new streams at once
        assert await after.next(1.0) is None


class _DownAtFirst:
    """A store whose first poll fails (the database restarting)."""

    def __init__(self, store: MemoryPersistenceProvider) -> None:
        self.store = store
        self.failures = 1

    async def list_changed_workflows(
        self, after: ChangePosition, limit: int = 100
    ) -> list[WorkflowChange]:
        if self.failures:
            self.failures -= 1
            raise PersistenceError("the database is restarting")
        return await self.store.list_changed_workflows(after, limit)


async def test_a_failed_first_poll_loses_no_commit(store: MemoryPersistenceProvider) -> None:
    feed = ChangeFeed(_DownAtFirst(store), interval=0.01)
    async with feed.subscribe() as subscription:
        await store.create_workflow(record("wf-1"))
        change = await subscription.next(2.0)
        assert change is not None and change.record.id == "wf-1"
