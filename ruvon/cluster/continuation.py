"""Continue on the worker: run the next piece of a workflow in the same task, no broker hop.

When a worker's commit leaves the workflow at work this worker could take itself — the next
ASYNC step, or one branch of a fan-out, on a queue it consumes — the commit inserts that run
already claimed by the worker (:class:`~ruvon.providers.runs.TakeRun`, the same statement), and
the worker runs it next, in the same Celery task: no message, no task cycle, no second claim.

A :class:`ContinuationBudget` bounds one task's chain by steps and by time, so one long chain
cannot starve the other messages this process has reserved; once it is spent, the next run is
stored QUEUED and announced as usual. A continued run is a claimed run like any other (RUNNING,
leased, heartbeated, fenced), so a worker killed or frozen inside a chain is recovered by the
zombie sweep exactly as if it had received the run by message.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ruvon.providers.runs import Claim, RunKind, RunRequest, TakeRun
from ruvon.records import WorkflowRecord

__all__ = ["ContinuationBudget", "ContinuationLimits"]

#: The kinds of run a worker may take from its own commit.
_TAKEABLE = (RunKind.STEP, RunKind.BRANCH)


@dataclass(frozen=True, slots=True)
class ContinuationLimits:
    """How far one task may carry workflows on: ``steps`` runs after the first, ``seconds``."""

    steps: int = 100
    seconds: float = 1.0


class ContinuationBudget:
    """One task's chain of continued runs (implements ``engine.distribution.Continuing``)."""

    __slots__ = ("_deadline", "_left", "lease_seconds", "next", "owner", "queues")

    def __init__(
        self,
        owner: str,
        lease_seconds: float,
        queues: Collection[str],
        limits: ContinuationLimits,
    ) -> None:
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.queues = queues
        self._left = limits.steps
        self._deadline = time.monotonic() + limits.seconds
        self.next: tuple[Claim, WorkflowRecord] | None = None

    @property
    def spent(self) -> bool:
        return self._left <= 0 or time.monotonic() >= self._deadline

    def take(self, runs: Sequence[RunRequest], workflow_id: str) -> TakeRun | None:
        if self.next is not None or self.spent:
            return None
        for run in runs:
            if (
                run.workflow_id == workflow_id
                and run.kind in _TAKEABLE
                and run.queue in self.queues
                and run.delay <= 0
            ):
                return TakeRun(run, self.owner, self.lease_seconds)
        return None

    def taken(self, claim: Claim, record: WorkflowRecord) -> None:
        self.next = (claim, record)

    def pop(self) -> tuple[Claim, WorkflowRecord] | None:
        """The run this task's last commit claimed for it, to run now (counted)."""
        taken, self.next = self.next, None
        if taken is not None:
            self._left -= 1
        return taken
