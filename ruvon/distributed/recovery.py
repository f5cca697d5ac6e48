"""Recovery of step runs whose worker stopped: the building block of the beat's zombie sweep.

A run stays RUNNING with its lease in the database when its worker dies (SIGKILL, OOM, a lost
node). Once the lease has expired, :func:`requeue_expired_runs` puts it back to QUEUED and
announces it again; the next claim is attempt + 1, and the dead worker's late write (if it was
only frozen) is refused by the claim fence.
"""

from __future__ import annotations

from ruvon.distributed.dispatch import RunDispatcher
from ruvon.distributed.ledger import RunLedger
from ruvon.distributed.work import QueuedRun

__all__ = ["requeue_expired_runs"]


async def requeue_expired_runs(
    ledger: RunLedger, dispatcher: RunDispatcher, limit: int = 100
) -> list[QueuedRun]:
    """Re-queue up to ``limit`` runs whose lease expired and announce them; return them."""
    runs = await ledger.requeue_expired(limit)
    dispatcher.dispatch(runs)
    return runs
