"""The schedule claims (:class:`ruvon.cluster.schedules.ScheduleClaims`), run against every
provider: what makes two pollers (two beats, two embedded runners) start each tick once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol, cast

import pytest

from ruvon.cluster.schedules import ScheduleClaims
from ruvon.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon.providers.persistence import PersistenceProvider
from ruvon.records import ScheduleRecord
from ruvon.testing.postgres import new_test_postgres_provider
from ruvon.testing.redis import new_test_redis_provider

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


class Store(PersistenceProvider, ScheduleClaims, Protocol):
    """A provider with the claims (for the type checker)."""


@pytest.fixture(params=["memory", "sqlite", "postgres", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    provider: PersistenceProvider
    if request.param == "memory":
        provider = MemoryPersistenceProvider()
    elif request.param == "postgres":
        provider = new_test_postgres_provider()
    elif request.param == "redis":
        provider = new_test_redis_provider()
    else:
        provider = SQLitePersistenceProvider(tmp_path / "claims.db")
    await provider.initialize()
    assert isinstance(provider, ScheduleClaims)
    yield cast(Store, provider)
    await provider.close()


def schedule(name: str, next_run_at: datetime | None, **fields: Any) -> ScheduleRecord:
    return ScheduleRecord(name, "Report", "@every 60s", {"n": 1}, next_run_at=next_run_at,
                          created_at=T0, **fields)  # fmt: skip


async def test_due_schedules_are_the_enabled_due_ones_oldest_first(store: Store) -> None:
    now = T0 + timedelta(hours=1)
    for row in (
        schedule("late", now - timedelta(minutes=1)),
        schedule("exact", now),
        schedule("early", now - timedelta(minutes=5)),
        schedule("future", now + timedelta(microseconds=1)),
        schedule("paused", now - timedelta(minutes=9), enabled=False),
        schedule("never", None),
    ):
        await store.save_schedule(row)
    moment, due = await store.due_schedules(now, 10)
    assert moment == now
    assert [s.name for s in due] == ["early", "late", "exact"]
    assert due[0] == schedule("early", now - timedelta(minutes=5))
    assert [s.name for s in (await store.due_schedules(now, 1))[1]] == ["early"]


async def test_a_claim_holding_the_read_value_wins_once(store: Store) -> None:
    await store.save_schedule(schedule("s", T0))
    following, tick = T0 + timedelta(minutes=1), T0
    assert await store.claim_schedule_ticks("s", T0, following, tick)
    assert not await store.claim_schedule_ticks("s", T0, following, tick)  # read before: stale
    assert not await store.claim_schedule_ticks("missing", T0, following, tick)
    [row] = await store.list_schedules()
    assert (row.next_run_at, row.last_run_at) == (following, tick)


async def test_concurrent_claims_of_one_tick_let_exactly_one_win(store: Store) -> None:
    await store.save_schedule(schedule("s", T0))
    following = T0 + timedelta(minutes=1)
    results = await asyncio.gather(
        *(store.claim_schedule_ticks("s", T0, following, T0) for _ in range(8))
    )
    assert sorted(results) == [False] * 7 + [True]


async def test_a_paused_schedule_cannot_be_claimed(store: Store) -> None:
    await store.save_schedule(schedule("s", T0, enabled=False))
    assert not await store.claim_schedule_ticks("s", T0, T0 + timedelta(minutes=1), T0)


async def test_a_release_gives_ticks_back_unless_the_row_moved(store: Store) -> None:
    following = T0 + timedelta(minutes=2)
    await store.save_schedule(schedule("s", following, last_run_at=T0 + timedelta(minutes=1)))
    # The start of the tick at T0+1m failed: give it back (last run: the tick before it).
    assert await store.release_schedule_ticks("s", following, T0 + timedelta(minutes=1), T0)
    [row] = await store.list_schedules()
    assert (row.next_run_at, row.last_run_at) == (T0 + timedelta(minutes=1), T0)
    assert not await store.release_schedule_ticks("s", following, T0, None)  # moved meanwhile


async def test_pause_and_resume(store: Store) -> None:
    await store.save_schedule(schedule("s", T0))
    paused = await store.update_schedule_enabled("s", False, T0 + timedelta(hours=5))
    assert paused == schedule("s", T0, enabled=False)  # a pause keeps the next run
    resumed = await store.update_schedule_enabled("s", True, T0 + timedelta(hours=5))
    assert resumed == schedule("s", T0 + timedelta(hours=5))  # a resume moves it
    again = await store.update_schedule_enabled("s", True, T0 + timedelta(hours=9))
    assert again == resumed  # resuming an enabled schedule moves nothing
    assert await store.list_schedules() == [resumed]
    assert await store.update_schedule_enabled("missing", True, T0) is None


async def test_claims_compare_instants_not_offsets(store: Store) -> None:
    await store.save_schedule(schedule("s", T0))
    plus_two = T0.astimezone(timezone(timedelta(hours=2)))
    assert await store.claim_schedule_ticks("s", plus_two, T0 + timedelta(minutes=1), T0)
