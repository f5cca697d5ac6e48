"""The runs a workflow's next save inserts, and the stored runs it announces after that save.

Handlers ask for :class:`~ruvon.providers.runs.RunRequest` s instead of running work
in-process; the engine's next save carries them as :class:`~ruvon.providers.runs.WorkWrites`
in its transaction; only after the commit are the stored runs announced, so a worker can never
receive a message for work that does not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ruvon.providers.dispatch import RunDispatcher
from ruvon.providers.runs import Claim, QueuedRun, RunRequest, WorkWrites

__all__ = ["OutboxSnapshot", "RunOutbox", "announce_stored"]

logger = logging.getLogger("ruvon.cluster")

OutboxSnapshot = tuple[tuple[RunRequest, ...], tuple[QueuedRun, ...]]


class RunOutbox:
    """Pending run requests and stored-but-unannounced runs of one workflow object."""

    __slots__ = ("_deferred", "_requests", "dispatcher")

    def __init__(self, dispatcher: RunDispatcher) -> None:
        self.dispatcher = dispatcher
        self._requests: list[RunRequest] = []
        self._deferred: list[QueuedRun] = []

    def request(self, run: RunRequest) -> None:
        """Insert ``run`` with the next save."""
        self._requests.append(run)

    def defer(self, runs: Sequence[QueuedRun]) -> None:
        """Announce already stored ``runs`` after the next save commits."""
        self._deferred += runs

    def take_deferred(self) -> list[QueuedRun]:
        runs, self._deferred = self._deferred, []
        return runs

    def writes(self, fence: Claim | None, *, close: bool) -> WorkWrites | None:
        """What the next save carries (None: nothing, a plain save)."""
        if fence is None and not self._requests:
            return None
        return WorkWrites(fence=fence, close=close, enqueue=list(self._requests))

    def committed(self, work: WorkWrites | None, *, announce: bool = True) -> None:
        """The save carrying ``work`` committed: forget its requests, announce what it stored
        (or, with ``announce=False``, keep it deferred for whoever announces it)."""
        runs = self.take_deferred()
        if work is not None:
            self._requests.clear()
            runs += work.queued
        if announce:
            self.announce(runs)
        else:
            self._deferred = runs

    def announce(self, runs: Sequence[QueuedRun]) -> None:
        """Send the hints for ``runs`` (see :func:`announce_stored`)."""
        announce_stored(self.dispatcher, runs)

    def snapshot(self) -> OutboxSnapshot:
        return tuple(self._requests), tuple(self._deferred)

    def restore(self, snapshot: OutboxSnapshot) -> None:
        self._requests, self._deferred = list(snapshot[0]), list(snapshot[1])


def announce_stored(dispatcher: RunDispatcher, runs: Sequence[QueuedRun]) -> None:
    """Send the hints for runs already committed as QUEUED.

    A failed send loses nothing: the runs stay QUEUED in the database until the beat's
    lost-message sweep sends them again, so it is logged, not raised, and whoever committed
    them carries on (its own work is done).
    """
    if not runs:
        return
    try:
        dispatcher.dispatch(runs)
    except Exception:
        logger.exception(
            "announcing %d stored step run(s) failed; they stay QUEUED until the "
            "beat's lost-message sweep sends them again",
            len(runs),
        )
