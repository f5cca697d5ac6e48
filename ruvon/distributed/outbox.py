"""The distributed side of one workflow object: its claim, the runs its next save enqueues,
and announcing them once that save has committed.

A workflow object built with a dispatching execution provider (Celery) keeps one
:class:`RunOutbox`. Handlers add :class:`~ruvon.distributed.work.RunRequest` s instead of running
work in-process; the engine's next save carries them (and the claim fence, if a worker holds
one) as :class:`~ruvon.distributed.work.WorkWrites` in its transaction; only after the commit are
the stored runs announced, so a worker can never receive a message for work that does not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ruvon.distributed.dispatch import RunDispatcher
from ruvon.distributed.work import Claim, QueuedRun, RunKind, RunRequest, WorkWrites

__all__ = ["RunOutbox"]

logger = logging.getLogger("ruvon.distributed")


class RunOutbox:
    """Claim, pending run requests and not-yet-announced runs of one workflow object."""

    __slots__ = ("_fence", "claim", "dispatcher", "requests", "unannounced")

    def __init__(self, dispatcher: RunDispatcher) -> None:
        self.dispatcher = dispatcher
        self.claim: Claim | None = None
        self._fence: Claim | None = None
        self.requests: list[RunRequest] = []
        self.unannounced: list[QueuedRun] = []

    def hold(self, claim: Claim) -> None:
        """A worker claimed ``claim``: the next save commits only while it holds, and closes it."""
        self.claim = claim
        self._fence = claim

    @property
    def fence_pending(self) -> bool:
        """True until a save carried the claim fence (the run is still open)."""
        return self._fence is not None

    def holds(self, step_name: str, *kinds: RunKind) -> bool:
        """Whether this object runs the claimed work itself: a claim of one of ``kinds`` for
        ``step_name`` whose outcome is not committed yet (after that, the same step is new work:
        a loop that comes back to it enqueues another run)."""
        claim = self.claim
        return (
            claim is not None
            and self._fence is not None
            and claim.step_name == step_name
            and claim.kind in kinds
        )

    def writes(self) -> WorkWrites | None:
        """What the next save must carry (None: nothing, a plain save)."""
        if self._fence is None and not self.requests:
            return None
        return WorkWrites(fence=self._fence, enqueue=list(self.requests))

    def committed(self, work: WorkWrites | None) -> None:
        """The save carrying ``work`` committed: forget it, announce what it stored."""
        runs = list(self.unannounced)
        self.unannounced.clear()
        if work is not None:
            self._fence = None
            self.requests.clear()
            runs += work.queued
        self.announce(runs)

    def announce(self, runs: Sequence[QueuedRun]) -> None:
        """Send the hints; a failed send loses nothing (the runs stay QUEUED in the database)."""
        if not runs:
            return
        try:
            self.dispatcher.dispatch(runs)
        except Exception:
            logger.exception(
                "announcing %d stored step run(s) failed; they stay QUEUED until the "
                "beat's lost-message sweep sends them again",
                len(runs),
            )

    def snapshot(self) -> tuple[list[RunRequest], list[QueuedRun]]:
        return list(self.requests), list(self.unannounced)

    def restore(self, snapshot: tuple[list[RunRequest], list[QueuedRun]]) -> None:
        self.requests, self.unannounced = list(snapshot[0]), list(snapshot[1])
