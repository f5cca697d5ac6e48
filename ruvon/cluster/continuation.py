"""Continue on the worker: run the next piece of a workflow in the same task, no broker hop.

When a worker's commit leaves the workflow at work this worker could take itself — the next
ASYNC step, or one branch of a fan-out, on a queue it consumes — the commit inserts that run
already claimed by the worker (:class:`~ruvon.providers.runs.TakeRun`, the same statement), and
the worker runs it next, in the same Celery task: no message, no task cycle, no second claim.

A :class:`ContinuationBudget` bounds one task's chain by steps and by time, so one long chain
cannot starve the other messages this process has reserved; once it is spent, the next run is
stored QUEUED and announced as usual. It also stops as soon as a message of a higher priority
than the chain's next run waits in one of the worker's queues (:class:`UrgencyProbe`): that
run is then announced in its own priority's lane, behind the more urgent one.

A continued run is a claimed run like any other (RUNNING, leased, heartbeated, fenced), so a
worker killed or frozen inside a chain is recovered by the zombie sweep exactly as if it had
received the run by message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from ruvon.priority import MAX_PRIORITY
from ruvon.providers.runs import Claim, RunKind, RunRequest, TakeRun
from ruvon.records import WorkflowRecord

__all__ = ["ContinuationBudget", "ContinuationLimits", "UrgencyProbe"]

logger = logging.getLogger("ruvon.worker")

#: Seconds a probe's answer is reused: a chain of quick steps asks the broker at most this often.
URGENCY_TTL = 0.01

#: The kinds of run a worker may take from its own commit.
_TAKEABLE = (RunKind.STEP, RunKind.BRANCH)


@dataclass(frozen=True, slots=True)
class ContinuationLimits:
    """How far one task may carry workflows on: ``steps`` runs after the first, ``seconds``."""

    steps: int = 100
    seconds: float = 1.0


class UrgencyProbe:
    """Whether a message more urgent than a given priority waits in the worker's queues.

    ``waiting_above(queues, priority)`` asks the broker (Redis: the lengths of the queues'
    higher-priority lists); an answer is reused for :data:`URGENCY_TTL` seconds, and a broker
    that cannot answer counts as "nothing waits" (the chain goes on, as it would without
    priorities).
    """

    __slots__ = ("_answers", "_ask", "_queues", "_ttl")

    def __init__(
        self,
        ask: Callable[[Collection[str], int], bool],
        queues: Collection[str],
        ttl: float = URGENCY_TTL,
    ) -> None:
        self._ask = ask
        self._queues = tuple(sorted(queues))
        self._ttl = ttl
        self._answers: dict[int, tuple[float, bool]] = {}

    def __call__(self, priority: int) -> bool:
        if priority >= MAX_PRIORITY or not self._queues:
            return False  # nothing is more urgent
        now = time.monotonic()
        cached = self._answers.get(priority)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        try:
            answer = self._ask(self._queues, priority)
        except Exception as exc:  # the broker is down: its messages wait anyway
            logger.debug("cannot tell whether more urgent messages wait: %r", exc)
            answer = False
        self._answers[priority] = (now, answer)
        return answer


class ContinuationBudget:
    """One task's chain of continued runs (implements ``engine.distribution.Continuing``)."""

    __slots__ = ("_deadline", "_left", "_urgent", "lease_seconds", "next", "owner", "queues")

    def __init__(
        self,
        owner: str,
        lease_seconds: float,
        queues: Collection[str],
        limits: ContinuationLimits,
        urgent: Callable[[int], bool] | None = None,
    ) -> None:
        """``urgent(priority)``: whether a more urgent message waits (an :class:`UrgencyProbe`);
        None: priorities do not stop the chain."""
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.queues = queues
        self._left = limits.steps
        self._deadline = time.monotonic() + limits.seconds
        self._urgent = urgent
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
                if self._urgent is not None and self._urgent(run.priority):
                    return None  # announced in its lane, behind the more urgent message
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
