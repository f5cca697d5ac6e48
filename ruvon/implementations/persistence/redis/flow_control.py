"""Flow control on Redis: concurrency slots and rate-limit cells.

Mixed into :class:`~ruvon.implementations.persistence.redis.RedisPersistenceProvider`. A key's
holders and waiters are one hash (``slots:{key}``, holder -> JSON), changed with an optimistic
transaction: ``WATCH`` the hash, read it and the workflows' statuses, decide
(:mod:`..slot_book`), then ``MULTI``/``EXEC`` the changes; a concurrent change of the hash
aborts the ``EXEC`` and the verb starts over, so processes sharing the server never exceed a
limit. A rate cell is one ``WATCH``-ed string the same way. Times are the server's (``TIME``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from ruvon.implementations.persistence.redis.keys import RedisKeys
from ruvon.implementations.persistence.redis.scripts import RedisScripts
from ruvon.implementations.persistence.slot_book import SlotBook, SlotEntry
from ruvon.models import WorkflowStatus
from ruvon.providers.flow_control import (
    CALLS_CELL,
    SlotGrant,
    SlotRecord,
    SlotRequest,
    SlotState,
    rate_cell,
    rate_take,
)

__all__ = ["RedisFlowControl"]

_T = TypeVar("_T")


def _encode(entry: SlotEntry) -> bytes:
    return orjson.dumps(
        [entry.workflow_id, entry.step_name, str(entry.state), entry.limit, entry.priority,
         entry.since, entry.seq, entry.owner, entry.lease_until, entry.run_id]
    )  # fmt: skip


def _decode(holder: bytes, value: bytes) -> SlotEntry:
    workflow_id, step, state, limit, priority, since, seq, owner, lease, run_id = orjson.loads(
        value
    )
    return SlotEntry(holder.decode(), workflow_id, step, SlotState(state), limit, priority,
                     since, seq, owner, lease, run_id)  # fmt: skip


async def _server_time(client: Redis | Pipeline) -> tuple[float, int]:
    seconds, micros = await client.time()
    return seconds + micros / 1e6, seconds * 1_000_000 + micros


async def _book(pipe: Pipeline, keys: RedisKeys, key: str, now: float) -> SlotBook:
    stored = cast(dict[bytes, bytes], await pipe.hgetall(keys.slots(key)))
    entries = [_decode(holder, value) for holder, value in stored.items()]
    statuses = [
        cast(bytes | None, await pipe.hget(keys.workflow(e.workflow_id), "status")) for e in entries
    ]
    unfinished = {
        e.holder
        for e, status in zip(entries, statuses, strict=True)
        if status is not None and not WorkflowStatus(status.decode()).is_terminal
    }
    return SlotBook(entries, now=now, workflow_unfinished=lambda e: e.holder in unfinished)


def _write_back(pipe: Pipeline, keys: RedisKeys, key: str, book: SlotBook) -> None:
    pipe.multi()  # type: ignore[no-untyped-call]
    if book.removed:
        pipe.hdel(keys.slots(key), *book.removed)
    if book.written:
        pipe.hset(keys.slots(key), mapping={h: _encode(e) for h, e in book.written.items()})
        pipe.sadd(keys.slot_keys, key)


class RedisFlowControl:
    """:class:`~ruvon.providers.flow_control.FlowControl` of the Redis provider."""

    # Provided by RedisPersistenceProvider (provider.py).
    keys: RedisKeys
    _connection: Callable[[], Awaitable[RedisScripts]]
    _guard: Callable[[Awaitable[Any]], Awaitable[Any]]

    async def _optimistic(self, watched: str, body: Callable[[Pipeline], Awaitable[_T]]) -> _T:
        """``body(pipe)`` after ``WATCH watched``, until its ``EXEC`` is not aborted."""
        client = (await self._connection()).client

        async def attempt() -> _T:
            async with client.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(watched)
                        result = await body(pipe)
                        await pipe.execute()
                        return result
                    except WatchError:
                        continue

        result: _T = await self._guard(attempt())
        return result

    async def acquire_slot(self, request: SlotRequest) -> SlotGrant:
        async def body(pipe: Pipeline) -> SlotGrant:
            now, micros = await _server_time(pipe)
            book = await _book(pipe, self.keys, request.key, now)
            grant = book.acquire(request, micros)
            _write_back(pipe, self.keys, request.key, book)
            return grant

        return await self._optimistic(self.keys.slots(request.key), body)

    async def release_slot(self, key: str, holder: str) -> list[SlotRecord]:
        async def body(pipe: Pipeline) -> list[SlotRecord]:
            now, _ = await _server_time(pipe)
            book = await _book(pipe, self.keys, key, now)
            first = book.release(holder)
            _write_back(pipe, self.keys, key, book)
            return [entry.record(key) for entry in first]

        return await self._optimistic(self.keys.slots(key), body)

    async def list_slots(
        self, key: str | None = None, *, workflow_id: str | None = None
    ) -> list[SlotRecord]:
        client = (await self._connection()).client
        if key is None:
            members = await self._guard(client.smembers(self.keys.slot_keys))
            keys = sorted(m.decode() for m in members)
        else:
            keys = [key]
        records: list[SlotRecord] = []
        for k in keys:
            async with client.pipeline(transaction=False) as pipe:
                await pipe.watch(self.keys.slots(k))  # immediate mode: reads run at once
                now, _ = await _server_time(pipe)
                book = await self._guard(_book(pipe, self.keys, k, now))
                await pipe.reset()  # type: ignore[no-untyped-call]
            if workflow_id is not None and all(e.workflow_id != workflow_id for e in book.entries):
                continue  # (no index by workflow here: each key's line is read)
            records += [entry.record(k) for entry in (*book.holders, *book.waiters)]
        return records

    async def reserve_rate(self, key: str, per_second: float, burst: int) -> float:
        return await self._rate(self.keys.rate(key), per_second, burst, rate_cell)

    async def take_rate(self, key: str, per_second: float, burst: int) -> float:
        return await self._rate(self.keys.rate(key + CALLS_CELL), per_second, burst, rate_take)

    async def _rate(
        self,
        cell: str,
        per_second: float,
        burst: int,
        step: Callable[[float | None, float, float, int], tuple[float, float]],
    ) -> float:
        async def body(pipe: Pipeline) -> float:
            now, _ = await _server_time(pipe)
            stored = await pipe.get(cell)
            tat, wait = step(float(stored) if stored else None, now, per_second, burst)
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(cell, repr(tat))
            return wait

        return await self._optimistic(cell, body)
