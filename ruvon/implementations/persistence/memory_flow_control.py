"""Concurrency slots and rate-limit cells of the in-memory provider (``FlowControl``).

Mixed into :class:`~ruvon.implementations.persistence.memory.MemoryPersistenceProvider`, as
each durable backend keeps its own ``flow_control`` module. The rules are the shared
:class:`~ruvon.implementations.persistence.slot_book.SlotBook` and the rate cells of
:mod:`ruvon.providers.flow_control`; this keeps their state in dicts under the provider's lock.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from ruvon.implementations.persistence.slot_book import SlotBook, SlotEntry
from ruvon.models import WorkflowStatus
from ruvon.providers.flow_control import (
    CALLS_CELL,
    SlotGrant,
    SlotRecord,
    SlotRequest,
    rate_cell,
    rate_take,
)

__all__ = ["MemoryFlowControl"]


class MemoryFlowControl:
    """:class:`~ruvon.providers.flow_control.FlowControl` over the provider's tables."""

    # Provided by MemoryPersistenceProvider.
    _lock: threading.Lock
    _workflows: dict[str, dict[str, Any]]
    _counter: itertools.count[int]
    _slots: dict[str, list[SlotEntry]]
    _rate_cells: dict[str, float]

    def _unfinished(self, entry: SlotEntry) -> bool:
        stored = self._workflows.get(entry.workflow_id)
        return stored is not None and not WorkflowStatus(stored["status"]).is_terminal

    def _slot_book(self, key: str) -> SlotBook:
        return SlotBook(
            self._slots.get(key, ()), now=time.time(), workflow_unfinished=self._unfinished
        )

    async def acquire_slot(self, request: SlotRequest) -> SlotGrant:
        with self._lock:
            book = self._slot_book(request.key)
            grant = book.acquire(request, next(self._counter))
            self._slots[request.key] = book.entries
        return grant

    async def release_slot(self, key: str, holder: str) -> list[SlotRecord]:
        with self._lock:
            book = self._slot_book(key)
            first = book.release(holder)
            self._slots[key] = book.entries
        return [entry.record(key) for entry in first]

    async def list_slots(
        self, key: str | None = None, *, workflow_id: str | None = None
    ) -> list[SlotRecord]:
        with self._lock:
            keys = sorted(self._slots) if key is None else [key]
            if workflow_id is not None:
                keys = [
                    k
                    for k in keys
                    if any(e.workflow_id == workflow_id for e in self._slots.get(k, ()))
                ]
            books = [(k, self._slot_book(k)) for k in keys]
        return [entry.record(k) for k, book in books for entry in (*book.holders, *book.waiters)]

    async def reserve_rate(self, key: str, per_second: float, burst: int) -> float:
        with self._lock:
            self._rate_cells[key], wait = rate_cell(
                self._rate_cells.get(key), time.time(), per_second, burst
            )
        return wait

    async def take_rate(self, key: str, per_second: float, burst: int) -> float:
        cell = key + CALLS_CELL
        with self._lock:
            self._rate_cells[cell], wait = rate_take(
                self._rate_cells.get(cell), time.time(), per_second, burst
            )
        return wait
