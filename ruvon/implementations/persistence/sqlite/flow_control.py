"""Flow control on SQLite: concurrency slots and rate-limit cells (``sql/flow_control.sql``).

Mixed into :class:`~ruvon.implementations.persistence.sqlite.SQLitePersistenceProvider`. Each
verb is one ``BEGIN IMMEDIATE`` transaction: it holds the file's write lock while it reads a
key's rows, decides (:mod:`..slot_book`) and writes the changes back, so processes sharing the
file see one line of waiters and never exceed a limit.
"""

from __future__ import annotations

import sqlite3
import time as clock
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ruvon.implementations.persistence.queries import load_queries
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

__all__ = ["SQLiteFlowControl", "slot_entry_params"]

_Q = load_queries(Path(__file__).with_name("sql") / "flow_control.sql")
#: rate_cell or rate_take: (stored tat, now, per_second, burst) -> (tat to store, wait).
RateStep = Callable[[float | None, float, float, int], tuple[float, float]]


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _seconds(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value is not None else None


def _entry(row: Sequence[Any]) -> tuple[SlotEntry, str | None]:
    holder, workflow_id, step, state, limit, priority, since, seq, owner, lease, run_id, status = (
        row
    )
    entry = SlotEntry(
        holder=holder,
        workflow_id=workflow_id,
        step_name=step,
        state=SlotState(state),
        limit=limit,
        priority=priority,
        since=_seconds(since) or 0.0,
        seq=seq,
        owner=owner,
        lease_until=_seconds(lease),
        run_id=run_id,
    )
    return entry, status


def slot_entry_params(key: str, entry: SlotEntry) -> tuple[Any, ...]:
    """``upsert_slot``'s parameters for one entry."""
    return (key, entry.holder, entry.workflow_id, entry.step_name, str(entry.state),
            entry.limit, entry.priority, _iso(entry.since), entry.seq, entry.owner,
            _iso(entry.lease_until), entry.run_id)  # fmt: skip


def _book(conn: sqlite3.Connection, key: str, now: float) -> SlotBook:
    statuses: dict[str, str | None] = {}
    entries = []
    for row in conn.execute(_Q["slot_rows"], (key,)).fetchall():
        entry, status = _entry(row)
        statuses[entry.holder] = status
        entries.append(entry)

    def unfinished(entry: SlotEntry) -> bool:
        status = statuses.get(entry.holder)
        return status is not None and not WorkflowStatus(status).is_terminal

    return SlotBook(entries, now=now, workflow_unfinished=unfinished)


def _store(conn: sqlite3.Connection, key: str, book: SlotBook) -> None:
    for holder in book.removed:
        conn.execute(_Q["delete_slot"], (key, holder))
    for entry in book.written.values():
        conn.execute(_Q["upsert_slot"], slot_entry_params(key, entry))


def _locked(conn: sqlite3.Connection, body: Callable[[], Any]) -> Any:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body()
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return result


def _acquire(conn: sqlite3.Connection, request: SlotRequest) -> SlotGrant:
    def body() -> SlotGrant:
        now = clock.time()
        book = _book(conn, request.key, now)
        grant = book.acquire(request, clock.time_ns() // 1000)
        _store(conn, request.key, book)
        return grant

    grant: SlotGrant = _locked(conn, body)
    return grant


def _release(conn: sqlite3.Connection, key: str, holder: str) -> list[SlotRecord]:
    def body() -> list[SlotRecord]:
        book = _book(conn, key, clock.time())
        first = book.release(holder)
        _store(conn, key, book)
        return [entry.record(key) for entry in first]

    records: list[SlotRecord] = _locked(conn, body)
    return records


def _list(conn: sqlite3.Connection, key: str | None, workflow_id: str | None) -> list[SlotRecord]:
    if workflow_id is not None:
        found = [row[0] for row in conn.execute(_Q["workflow_keys"], (workflow_id,)).fetchall()]
        keys = [k for k in found if key is None or k == key]
    else:
        keys = [r[0] for r in conn.execute(_Q["slot_keys"]).fetchall()] if key is None else [key]
    now = clock.time()
    records = []
    for k in keys:
        book = _book(conn, k, now)
        records += [entry.record(k) for entry in (*book.holders, *book.waiters)]
    return records


def _rate(
    conn: sqlite3.Connection, key: str, per_second: float, burst: int, step: RateStep
) -> float:
    def body() -> float:
        row = conn.execute(_Q["rate_cell"], (key,)).fetchone()
        tat, wait = step(row[0] if row else None, clock.time(), per_second, burst)
        conn.execute(_Q["store_rate_cell"], (key, tat))
        return wait

    wait: float = _locked(conn, body)
    return wait


class SQLiteFlowControl:
    """:class:`~ruvon.providers.flow_control.FlowControl` of the SQLite provider."""

    # Provided by SQLitePersistenceProvider (provider.py).
    _run: Callable[..., Awaitable[Any]]

    async def acquire_slot(self, request: SlotRequest) -> SlotGrant:
        grant: SlotGrant = await self._run(_acquire, request)
        return grant

    async def release_slot(self, key: str, holder: str) -> list[SlotRecord]:
        records: list[SlotRecord] = await self._run(_release, key, holder)
        return records

    async def list_slots(
        self, key: str | None = None, *, workflow_id: str | None = None
    ) -> list[SlotRecord]:
        records: list[SlotRecord] = await self._run(_list, key, workflow_id)
        return records

    async def reserve_rate(self, key: str, per_second: float, burst: int) -> float:
        wait: float = await self._run(_rate, key, per_second, burst, rate_cell)
        return wait

    async def take_rate(self, key: str, per_second: float, burst: int) -> float:
        wait: float = await self._run(_rate, key + CALLS_CELL, per_second, burst, rate_take)
        return wait
