"""The seam of whatever announces stored runs to workers (Celery, in the cluster)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ruvon.providers.runs import QueuedRun

__all__ = ["RunDispatcher"]


@runtime_checkable
class RunDispatcher(Protocol):
    """An execution provider whose ASYNC/PARALLEL steps and children run on remote workers.

    The engine stores every run before it calls :meth:`dispatch`; a message is only a hint, so a
    failed send loses nothing (the run stays QUEUED for the beat's lost-message sweep).
    """

    def dispatch(self, runs: Sequence[QueuedRun]) -> None:
        """Announce stored runs (each to its queue; ``delay`` seconds from now at the earliest)."""
        ...

    def queue_for(self, step_queue: str | None, data_region: str | None) -> str:
        """The queue a run goes to: the step's own, else the workflow's data region, else the
        provider's default."""
        ...
