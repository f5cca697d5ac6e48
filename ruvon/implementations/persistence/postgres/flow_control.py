"""Flow control on PostgreSQL: concurrency slots, rate-limit cells, and the deferral of the
cluster runs they gate (``sql/flow_control.sql``, ``sql/runs.sql``).

Mixed into :class:`~ruvon.implementations.persistence.postgres.PostgresPersistenceProvider`.
Every verb on a key is one transaction that first takes ``pg_advisory_xact_lock`` on the key:
it reads the key's rows (with what only the database knows: whether each holder's workflow
ended and whether its cluster run's lease still runs), decides with the same rules as every
store (:mod:`..slot_book`), and writes the changes back. A worker parking a run takes the same
lock, so a slot freed while it parks is seen by one of the two: never a waiter left asleep.
A rate reservation is one ``INSERT ... ON CONFLICT DO UPDATE`` on the key's cell.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from ruvon.implementations.persistence.postgres.runs import close_claimed_run, queued_run
from ruvon.implementations.persistence.queries import load_queries
from ruvon.implementations.persistence.slot_book import SlotBook, SlotEntry
from ruvon.providers.flow_control import (
    CALLS_CELL,
    SlotGrant,
    SlotRecord,
    SlotRequest,
    SlotState,
    rate_take,
)
from ruvon.providers.runs import Claim, QueuedRun, RunStatus
from ruvon.records import WorkflowRecord

__all__ = ["PostgresFlowControl"]

_Q = load_queries(Path(__file__).with_name("sql") / "flow_control.sql")
_RUNS = load_queries(Path(__file__).with_name("sql") / "runs.sql")
_T = TypeVar("_T")


async def _book(conn: asyncpg.Connection, key: str) -> SlotBook:
    """Lock ``key`` for this transaction and read its rows."""
    await conn.execute(_Q["lock_key"], key)
    rows = await conn.fetch(_Q["slot_rows"], key)
    now = rows[0][12] if rows else await conn.fetchval(_Q["now_seconds"])
    entries: list[SlotEntry] = []
    live: set[str] = set()
    for row in rows:
        entries.append(SlotEntry(row[0], row[1], row[2], SlotState(row[3]), *row[4:11]))
        if row[11]:
            live.add(row[0])
    return SlotBook(entries, now=now, workflow_unfinished=lambda e: e.holder in live)


async def _store(conn: asyncpg.Connection, key: str, book: SlotBook) -> None:
    if book.removed:
        await conn.execute(_Q["delete_slots"], key, list(book.removed))
    for e in book.written.values():
        await conn.execute(
            _Q["upsert_slot"], key, e.holder, e.workflow_id, e.step_name, str(e.state), e.limit,
            e.priority, e.since, e.seq, e.owner, e.lease_until, e.run_id,
        )  # fmt: skip


def _waiter_arrays(waiters: Sequence[SlotRecord]) -> tuple[list[Any], ...]:
    branches = []
    for waiter in waiters:
        parts = waiter.holder.split("/", 2)
        branches.append(parts[2] if len(parts) == 3 else None)
    return ([w.workflow_id for w in waiters], [w.step_name for w in waiters], branches)


async def _wake(conn: asyncpg.Connection, waiters: Sequence[SlotRecord]) -> list[QueuedRun]:
    if not waiters:
        return []
    rows = await conn.fetch(_RUNS["wake_parked"], *_waiter_arrays(waiters))
    return [queued_run(row) for row in rows]


async def _wake_if_first(
    conn: asyncpg.Connection, slot: tuple[str, str] | None, queued: QueuedRun | None
) -> QueuedRun | None:
    """A run parked for ``slot``: if its holder is first in line for a free slot already (the
    slot freed before the park took the key's lock), make it due now."""
    if slot is None or queued is None:
        return queued
    key, holder = slot
    book = await _book(conn, key)
    await _store(conn, key, book)
    if not book.can_go(holder):
        return None
    mine = next(e for e in book.waiters if e.holder == holder)
    woken = await _wake(conn, [mine.record(key)])
    return woken[0] if woken else None


class PostgresFlowControl:
    """:class:`~ruvon.providers.flow_control.FlowControl`, the deferrals of
    :class:`~ruvon.providers.ledger.RunLedger` and the beat's wake-up sweep on PostgreSQL."""

    # Provided by PostgresPool (pool.py), the provider's other base.
    _query: Callable[[str, str, str, tuple[Any, ...]], Awaitable[Any]]
    _transaction: Callable[[str, Callable[[asyncpg.Connection], Awaitable[Any]]], Awaitable[Any]]

    async def _in_transaction(
        self, operation: str, body: Callable[[asyncpg.Connection], Awaitable[_T]]
    ) -> _T:
        result: _T = await self._transaction(operation, body)
        return result

    async def acquire_slot(self, request: SlotRequest) -> SlotGrant:
        async def body(conn: asyncpg.Connection) -> SlotGrant:
            book = await _book(conn, request.key)
            grant = book.acquire(request, int(book.now * 1_000_000))
            await _store(conn, request.key, book)
            return grant

        return await self._in_transaction("take a concurrency slot", body)

    async def release_slot(self, key: str, holder: str) -> list[SlotRecord]:
        async def body(conn: asyncpg.Connection) -> list[SlotRecord]:
            book = await _book(conn, key)
            first = [entry.record(key) for entry in book.release(holder)]
            await _store(conn, key, book)
            return first

        return await self._in_transaction("release a concurrency slot", body)

    async def list_slots(
        self, key: str | None = None, *, workflow_id: str | None = None
    ) -> list[SlotRecord]:
        async def body(conn: asyncpg.Connection) -> list[SlotRecord]:
            if workflow_id is not None:
                found = [r[0] for r in await conn.fetch(_Q["workflow_keys"], workflow_id)]
                keys = [k for k in found if key is None or k == key]
            elif key is None:
                keys = [r[0] for r in await conn.fetch(_Q["slot_keys"])]
            else:
                keys = [key]
            records: list[SlotRecord] = []
            for k in keys:
                book = await _book(conn, k)
                records += [entry.record(k) for entry in (*book.holders, *book.waiters)]
            return records

        return await self._in_transaction("list concurrency slots", body)

    async def reserve_rate(self, key: str, per_second: float, burst: int) -> float:
        interval = 1.0 / per_second
        args = (key, interval, (burst - 1) * interval)
        wait: float = await self._query("reserve a rate-limit turn", "fetchval",
                                        _Q["reserve_rate"], args)  # fmt: skip
        return wait

    async def take_rate(self, key: str, per_second: float, burst: int) -> float:
        cell = key + CALLS_CELL

        async def body(conn: asyncpg.Connection) -> float:
            await conn.execute(_Q["lock_key"], cell)
            stored, now = await conn.fetchrow(_Q["read_rate_cell"], cell)
            tat, wait = rate_take(stored, now, per_second, burst)
            if wait == 0:
                await conn.execute(_Q["store_rate_cell"], cell, tat)
            return wait

        return await self._in_transaction("take a rate-limit turn", body)

    # -- the runs gates defer (RunLedger) ------------------------------------------------------

    async def defer_run(
        self,
        claim: Claim,
        delay: float | None,
        *,
        reserved_step: str | None = None,
        slot: tuple[str, str] | None = None,
    ) -> QueuedRun | None:
        async def write(conn: asyncpg.Connection) -> asyncpg.Record | None:
            return await conn.fetchrow(
                _RUNS["defer_run"], claim.run_id, claim.attempt, delay, reserved_step
            )

        return await self._deferred("defer a step run", write, delay, slot)

    async def defer_advance(
        self,
        claim: Claim,
        workflow: WorkflowRecord,
        step_name: str,
        delay: float | None,
        *,
        reserved_step: str | None = None,
        slot: tuple[str, str] | None = None,
    ) -> QueuedRun | None:
        async def write(conn: asyncpg.Connection) -> asyncpg.Record | None:
            await close_claimed_run(conn, claim, RunStatus.DONE)
            return await conn.fetchrow(
                _RUNS["insert_deferred_advance"], workflow.id, claim.queue, step_name,
                f"v{workflow.version}", delay, workflow.priority, reserved_step,
            )  # fmt: skip

        return await self._deferred("defer a workflow's advance", write, delay, slot)

    async def _deferred(
        self,
        operation: str,
        write: Callable[[asyncpg.Connection], Awaitable[asyncpg.Record | None]],
        delay: float | None,
        slot: tuple[str, str] | None,
    ) -> QueuedRun | None:
        """One transaction: the key's lock (parking for a slot), ``write`` (the deferred run's
        row), and, parked, an immediate wake-up if the slot freed before the lock was taken."""

        async def body(conn: asyncpg.Connection) -> QueuedRun | None:
            if slot is not None:
                await conn.execute(_Q["lock_key"], slot[0])
            row = await write(conn)
            if row is None:
                return None
            queued = queued_run(row)
            return queued if delay is not None else await _wake_if_first(conn, slot, queued)

        return await self._in_transaction(operation, body)

    async def wake_parked(self, waiters: Sequence[SlotRecord]) -> list[QueuedRun]:
        async def body(conn: asyncpg.Connection) -> list[QueuedRun]:
            return await _wake(conn, waiters)

        return await self._in_transaction("wake parked runs", body)

    # -- the beat (Maintenance) ----------------------------------------------------------------

    async def wake_slot_waiters(self, limit: int) -> list[QueuedRun]:
        ended = await self._query(
            "wake parked runs of ended workflows", "fetch", _RUNS["wake_parked_of_ended"], (limit,)
        )
        woken = [queued_run(row) for row in ended]
        rows = await self._query("find keys with waiters", "fetch", _Q["waiting_keys"], (limit,))
        for (key,) in rows:

            async def body(conn: asyncpg.Connection, key: str = key) -> list[QueuedRun]:
                book = await _book(conn, key)
                first = [entry.record(key) for entry in book.first_in_line()]
                await _store(conn, key, book)
                return await _wake(conn, first)

            woken += await self._in_transaction("wake slot waiters", body)
        return woken
