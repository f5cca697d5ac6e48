"""Flow control kept by the persistence provider: concurrency slots and rate-limit cells.

Both live where the workflows live, so every process sharing a store (workers of a cluster on
PostgreSQL, processes on one SQLite file) shares one view of them.

**Slots** (``concurrency: {key, limit}``): a slot is *derived from what holds it*, never a
counter, so nothing can leak one. A holder is live while its workflow is unfinished and, for a
step's slot, while what runs the step is alive: on a cluster the step run's lease
(``run_id``), embedded the process (``owner`` with a lease it renews). A dead holder's slot is
free the moment its lease lapses; the next acquire (or the beat) clears it. Waiters queue per
key in priority, then arrival order: an acquire succeeds only with a free slot and nobody
waiting ahead, so slots go in order as they free.

**Rate limits** (``rate_limit: {key, per_second, burst}``): a generic cell rate algorithm in
two cells per key. Arriving, a call *reserves* the next instant the limit allows and is told how
long to wait for it, so calls that arrive together each come back at their own instant (none
polls). At that instant it *takes* its turn in the second cell, which counts calls as they
actually start: over any window of ``t`` seconds at most ``burst + per_second * t`` start, even
when some come back late (a late call would otherwise bunch with the next); one that may not
start yet waits the few milliseconds until it may.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

__all__ = [
    "CALLS_CELL",
    "HOST",
    "FlowControl",
    "SlotGrant",
    "SlotRecord",
    "SlotRequest",
    "SlotState",
    "owner_here",
    "rate_cell",
    "rate_take",
]

#: This host's name, as embedded slot holders sign it.
HOST = socket.gethostname()


def owner_here() -> str:
    """How this process signs the slots it holds embedded (``host:pid``)."""
    return f"{HOST}:{os.getpid()}"


class SlotState(StrEnum):
    HOLDING = "HOLDING"
    WAITING = "WAITING"


@dataclass(frozen=True, slots=True)
class SlotRequest:
    """One holder asking for a slot of ``key`` (at most ``limit`` held at once).

    ``holder`` names what holds it, the same on every attempt: the workflow id for a workflow's
    slot, ``<workflow id>/<step>[/<branch>]`` for a step's. Its liveness is bound to
    ``run_id`` (a cluster step run's lease) or to ``owner`` and ``lease_seconds`` (an embedded
    process, which renews it), and always to the workflow being unfinished.
    """

    key: str
    limit: int
    holder: str
    workflow_id: str
    step_name: str | None = None
    priority: int = 0
    run_id: int | None = None
    owner: str | None = None
    lease_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class SlotGrant:
    """The answer to an acquire: held, or waiting with ``ahead`` waiters before this one."""

    granted: bool
    held: int
    ahead: int = 0


@dataclass(frozen=True, slots=True)
class SlotRecord:
    """A holder or waiter of a key, for people and tools (``ruvon concurrency``)."""

    key: str
    holder: str
    workflow_id: str
    step_name: str | None
    state: SlotState
    limit: int
    priority: int
    since: datetime
    run_id: int | None = None
    owner: str | None = None


@runtime_checkable
class FlowControl(Protocol):
    """What the engine asks of a store to gate steps and workflows (every provider has it)."""

    async def acquire_slot(self, request: SlotRequest) -> SlotGrant:
        """Take a slot of ``request.key`` if one is free and nobody waits ahead, else queue
        (or stay queued) as a waiter. Taking a slot the holder already holds succeeds (an
        acquire is idempotent per holder), as does renewing its embedded lease."""
        ...

    async def release_slot(self, key: str, holder: str) -> list[SlotRecord]:
        """Give back ``holder``'s slot (or its place in the queue) and clear dead holders;
        returns the waiters that are now first in line for a free slot, for the caller to wake
        (a cluster's parked runs; embedded waiters find out themselves)."""
        ...

    async def list_slots(
        self, key: str | None = None, *, workflow_id: str | None = None
    ) -> list[SlotRecord]:
        """Live holders and waiters (of ``key``, or of every key; with ``workflow_id``, of the
        keys that workflow holds or waits for, their whole lines): per key, sorted by key,
        holders first, then waiters in the order they will be served."""
        ...

    async def reserve_rate(self, key: str, per_second: float, burst: int) -> float:
        """Reserve the next instant the limit allows a call of ``key``: seconds to wait for it
        (0 when it may run now). This spreads the calls that arrive together over their own
        turns (each comes back at its own instant, none polls)."""
        ...

    async def take_rate(self, key: str, per_second: float, burst: int) -> float:
        """At the call itself: take its turn if the limit allows one now (0), else the seconds
        until it will (nothing taken). Kept apart from the reservations, over the calls as
        they actually start, so a call that starts late never bunches with the next."""
        ...


#: Seconds the call cell keeps in hand: a call's function starts a few milliseconds after the
#: store lets it (a round trip, a thread hop), more for one than the next at times; without a
#: margin two such calls could start closer than the limit allows. Only taken out of the
#: burst's tolerance (never out of the interval, which would slow the rate).
RATE_GUARD = 0.01


def rate_take(tat: float | None, now: float, per_second: float, burst: int) -> tuple[float, float]:
    """One conformance check of the generic cell rate algorithm: (new tat, wait). A call that
    conforms (``now >= tat - tolerance + guard``; the first call of a cell always does) moves
    the cell on and waits 0; one that does not leaves it as it is and learns how long until it
    would conform."""
    interval = 1.0 / per_second
    tolerance = (burst - 1) * interval
    if tat is None:
        return now + interval, 0.0
    opens = tat - tolerance + min(RATE_GUARD, tolerance)
    if now >= opens:
        return max(tat, now) + interval, 0.0
    return tat, opens - now


#: The suffix of the cell that counts a key's calls as they start (``take_rate``), beside the
#: key's reservation cell (``reserve_rate``).
CALLS_CELL = "\x00calls"


def rate_cell(tat: float | None, now: float, per_second: float, burst: int) -> tuple[float, float]:
    """One reservation of the generic cell rate algorithm: (new theoretical arrival time, wait).

    ``tat`` is the key's stored theoretical arrival time (None for a new key). Each call moves
    it one emission interval on from ``max(tat, now)`` and may run ``burst - 1`` intervals
    before it. The stores that cannot run this in their own SQL (memory, SQLite) call this;
    PostgreSQL and Redis run the same arithmetic in one statement / script.
    """
    interval = 1.0 / per_second
    tolerance = (burst - 1) * interval
    new_tat = max(tat if tat is not None else now, now) + interval
    return new_tat, max(new_tat - interval - tolerance - now, 0.0)
