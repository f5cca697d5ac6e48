"""The distributed side of one workflow object: its claim, the runs its next save enqueues,
and announcing them once that save has committed.

A workflow object built with a dispatching execution provider (Celery) keeps one
:class:`RunOutbox`. Handlers add :class:`~ruvon.providers.runs.RunRequest` s instead of running
work in-process; the engine's next save carries them (and the claim fence, if a worker holds
one) as :class:`~ruvon.providers.runs.WorkWrites` in its transaction; only after the commit are
the stored runs announced, so a worker can never receive a message for work that does not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ruvon.providers.dispatch import RunDispatcher
from ruvon.providers.runs import Claim, QueuedRun, RunKind, RunRequest, WorkWrites

__all__ = ["RunOutbox"]

logger = logging.getLogger("ruvon.distributed")


class RunOutbox:
    """Claim, pending run requests and not-yet-announced runs of one workflow object."""

    __slots__ = ("_applied", "_open", "claim", "dispatcher", "requests", "unannounced")

    def __init__(self, dispatcher: RunDispatcher) -> None:
        self.dispatcher = dispatcher
        self.claim: Claim | None = None
        self._open = False  # the claimed run is RUNNING: saves are fenced by the claim
        self._applied = False  # the claimed work's own outcome is committed
        self.requests: list[RunRequest] = []
        self.unannounced: list[QueuedRun] = []

    def hold(self, claim: Claim) -> None:
        """A worker claimed ``claim``: every save commits only while it holds.

        The run stays open (RUNNING, leased) while the worker carries the workflow on through
        inline steps, and is closed by the save that leaves the workflow waiting, suspended or
        ended: a worker that dies anywhere in between leaves a run whose lease expires, and
        whose next attempt carries on from what was committed.
        """
        self.claim = claim
        self._open = True
        self._applied = False

    @property
    def fence_pending(self) -> bool:
        """True while the claimed run is open (no save closed it yet)."""
        return self._open

    def holds(self, step_name: str, *kinds: RunKind) -> bool:
        """Whether this object runs the claimed work itself: a claim of one of ``kinds`` for
        ``step_name`` whose outcome is not committed yet (after that, the same step is new work:
        a loop that comes back to it enqueues another run)."""
        claim = self.claim
        return (
            claim is not None
            and self._open
            and not self._applied
            and claim.step_name == step_name
            and claim.kind in kinds
        )

    def writes(self, *, settles: bool) -> WorkWrites | None:
        """What the next save must carry (None: nothing, a plain save).

        ``settles``: the save leaves the workflow not ACTIVE (waiting, suspended, ended), so it
        also closes the claimed run.
        """
        fence = self.claim if self._open else None
        if fence is None and not self.requests:
            return None
        return WorkWrites(fence=fence, close=settles, enqueue=list(self.requests))

    def committed(self, work: WorkWrites | None) -> None:
        """The save carrying ``work`` committed: forget it, announce what it stored."""
        runs = list(self.unannounced)
        self.unannounced.clear()
        if work is not None:
            if work.fence is not None:
                self._applied = True
                self._open = not work.close
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
