"""The slot rules of :mod:`ruvon.providers.flow_control`, for stores that run them in Python.

Memory, SQLite and Redis read one key's holders and waiters under that store's own lock (a
mutex, ``BEGIN IMMEDIATE``, a Redis lock), decide here, and write the result back. PostgreSQL
runs the same rules in SQL (its step runs' leases are rows it can join).

A holder bound to an embedded process (``owner``: ``host:pid``) is live while that process
exists when it is on this host, else until its lease (``lease_until``) passes; one bound to a
cluster step run (``run_id``) while the run's lease runs (the store checks it); a workflow's
own slot while the workflow is unfinished; and every holder and waiter is dead once its
workflow has finished.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ruvon.providers.flow_control import (
    HOST,
    SlotGrant,
    SlotRecord,
    SlotRequest,
    SlotState,
)

__all__ = ["SlotBook", "SlotEntry", "process_owner_alive"]


def process_owner_alive(owner: str) -> bool | None:
    """True/False for an owner on this host (its process exists or not); None for another
    host's, whose lease decides."""
    host, _, pid = owner.rpartition(":")
    if host != HOST or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class SlotEntry:
    """One stored holder or waiter (``since``/``lease_until`` as UNIX seconds)."""

    holder: str
    workflow_id: str
    step_name: str | None
    state: SlotState
    limit: int
    priority: int
    since: float
    seq: int
    owner: str | None = None
    lease_until: float | None = None
    run_id: int | None = None

    def record(self, key: str) -> SlotRecord:
        return SlotRecord(
            key=key,
            holder=self.holder,
            workflow_id=self.workflow_id,
            step_name=self.step_name,
            state=self.state,
            limit=self.limit,
            priority=self.priority,
            since=datetime.fromtimestamp(self.since, UTC),
            run_id=self.run_id,
            owner=self.owner,
        )


def _entry_for(
    request: SlotRequest, state: SlotState, now: float, seq: int, lease_until: float | None
) -> SlotEntry:
    """The entry ``request`` stores: a holder bound to its run or lease, or a new waiter."""
    holding = state is SlotState.HOLDING
    return SlotEntry(
        holder=request.holder,
        workflow_id=request.workflow_id,
        step_name=request.step_name,
        state=state,
        limit=request.limit,
        priority=request.priority,
        since=now,
        seq=seq,
        owner=request.owner,
        lease_until=lease_until,
        run_id=request.run_id if holding else None,
    )


def _serve_order(entry: SlotEntry) -> tuple[int, float, int]:
    return (-entry.priority, entry.since, entry.seq)


class SlotBook:
    """One key's entries with the rules applied. ``entries`` is the key's state after the
    calls; ``removed`` (holders to delete) and ``written`` (entries to upsert) are the changes
    to store back."""

    def __init__(
        self,
        entries: Iterable[SlotEntry],
        *,
        now: float,
        workflow_unfinished: Callable[[SlotEntry], bool],
    ) -> None:
        self.now = now
        self._unfinished = workflow_unfinished
        self.entries: list[SlotEntry] = []
        self.removed: set[str] = set()
        self.written: dict[str, SlotEntry] = {}
        for entry in entries:
            if self._live(entry):
                self.entries.append(entry)
            else:
                self.removed.add(entry.holder)

    def _live(self, entry: SlotEntry) -> bool:
        """Dead: its workflow finished (or the store knows its run's lease lapsed); a
        workflow's own slot, once held, lives as long as the workflow; one bound to a process
        (``owner``), holding or waiting, as long as that process (its lease, elsewhere)."""
        if not self._unfinished(entry):
            return False
        if entry.state is SlotState.HOLDING and entry.step_name is None:
            return True
        if entry.owner is not None:
            alive = process_owner_alive(entry.owner)
            if alive is not None:
                return alive
            return entry.lease_until is None or entry.lease_until > self.now
        return True

    @property
    def holders(self) -> list[SlotEntry]:
        held = (e for e in self.entries if e.state is SlotState.HOLDING)
        return sorted(held, key=lambda e: (e.since, e.seq))

    @property
    def waiters(self) -> list[SlotEntry]:
        return sorted((e for e in self.entries if e.state is SlotState.WAITING), key=_serve_order)

    def acquire(self, request: SlotRequest, seq: int) -> SlotGrant:
        lease_until = (
            self.now + request.lease_seconds if request.lease_seconds is not None else None
        )
        mine = next((e for e in self.entries if e.holder == request.holder), None)
        holders = self.holders
        if mine is not None:  # asking again renews the lease of one's slot or place
            mine = replace(mine, owner=request.owner, lease_until=lease_until)
            self._put(mine)
        if mine is not None and mine.state is SlotState.HOLDING:
            return SlotGrant(True, len(holders))
        waiters = self.waiters
        ahead = waiters.index(mine) if mine is not None else len(waiters)
        if ahead == 0 and len(holders) < request.limit:
            self._put(_entry_for(request, SlotState.HOLDING, self.now, seq, lease_until))
            return SlotGrant(True, len(holders) + 1)
        if mine is None:  # a new waiter joins the line (its lease comes with its next ask)
            self._put(_entry_for(request, SlotState.WAITING, self.now, seq, None))
        return SlotGrant(False, len(holders), ahead)

    def release(self, holder: str) -> list[SlotEntry]:
        """Drop ``holder``; the waiters first in line for the free slots."""
        self.entries = [e for e in self.entries if e.holder != holder]
        self.removed.add(holder)
        self.written.pop(holder, None)
        return self.first_in_line()

    def first_in_line(self) -> list[SlotEntry]:
        """The waiters the free slots go to next (the limit of the newest request holds)."""
        waiters = self.waiters
        if not waiters:
            return []
        limit = max(self.entries, key=lambda e: (e.since, e.seq)).limit
        return waiters[: max(limit - len(self.holders), 0)]

    def can_go(self, holder: str) -> bool:
        """Whether waiter ``holder`` would be granted now: first in line, and a slot free by
        its own limit (the one its acquire is judged by)."""
        waiters = self.waiters
        if not waiters or waiters[0].holder != holder:
            return False
        return len(self.holders) < waiters[0].limit

    def _put(self, entry: SlotEntry) -> None:
        self.entries = [e for e in self.entries if e.holder != entry.holder] + [entry]
        self.written[entry.holder] = entry
        self.removed.discard(entry.holder)
