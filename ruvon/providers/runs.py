"""Step runs: the durable units of work of the distributed mode.

Every piece of work a worker can do is a row in ``step_runs``, created in the same transaction
as the transition that asks for it, and announced afterwards with an ids-only message (a hint:
lost or doubled messages change nothing, see DESIGN.md). The kinds:

* ``step``    — run an ASYNC step's function, then continue with the inline steps after it;
* ``branch``  — run one PARALLEL branch and record its result;
* ``join``    — merge a PARALLEL step's branch results (created by the branch completing the set);
* ``advance`` — move a workflow on from where it is (its start, a finished child, a resume).

A row's identity is (workflow, kind, step, branch, run number): enqueueing the same work twice
inserts it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ruvon.errors import ConfigurationError

__all__ = [
    "BranchOutcome",
    "Claim",
    "Deferred",
    "Lane",
    "QueuedRun",
    "RetryLater",
    "RunKind",
    "RunRequest",
    "RunStatus",
    "StepRunRecord",
    "TakeRun",
    "WorkWrites",
    "reject_work",
]

DEFAULT_QUEUE = "default"


class RunKind(StrEnum):
    STEP = "step"
    BRANCH = "branch"
    JOIN = "join"
    ADVANCE = "advance"


class RunStatus(StrEnum):
    QUEUED = "QUEUED"  # waiting for a worker (from run_at on)
    RUNNING = "RUNNING"  # claimed: lease_owner holds it until lease_expires_at
    DONE = "DONE"  # its outcome is committed (the workflow moved on, or failed)
    SKIPPED = "SKIPPED"  # stale when claimed: the workflow was no longer waiting for it


class RetryLater(BaseException):
    """A claimed attempt failed and its retry policy allows another: give the run back.

    A BaseException, like the workflow directives, so it passes the engine's failure handling
    (the workflow has not failed) up to the worker's runner, which re-queues the run with
    ``run_at = now() + delay`` in the database.
    """

    def __init__(self, delay: float, error: BaseException, attempt: int) -> None:
        super().__init__(f"attempt {attempt} failed; retry in {delay:.3f}s: {error!r}")
        self.delay = delay
        self.error = error
        self.attempt = attempt


class Deferred(BaseException):
    """A claimed run may not run its step yet: give it back without spending an attempt.

    Raised by the engine's admission (ruvon.engine.admission) on a worker: ``delay`` seconds
    until the step's rate-limit turn (``reserved_step`` names the step whose reservation is
    made), or ``delay=None`` to wait, parked, for a concurrency slot of ``slot_key``, which
    whoever frees one wakes. A BaseException like :class:`RetryLater`: it passes the engine's
    failure handling up to the worker's runner.
    """

    def __init__(
        self,
        step_name: str,
        *,
        delay: float | None = None,
        reserved_step: str | None = None,
        slot_key: str | None = None,
        holder: str | None = None,
    ) -> None:
        why = f"slot of '{slot_key}'" if delay is None else f"rate-limit turn in {delay:.3f}s"
        super().__init__(f"step '{step_name}' waits for its {why}")
        self.step_name = step_name
        self.delay = delay
        self.reserved_step = reserved_step
        self.slot_key = slot_key
        self.holder = holder


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Work to enqueue with a transition (inserted in the transition's transaction)."""

    workflow_id: str
    kind: RunKind
    step_name: str
    run_number: int = 1
    branch: str = ""
    queue: str = DEFAULT_QUEUE
    # Seconds from the database's now() until the run is due (a retry's backoff).
    delay: float = 0.0
    # The W3C trace context the run continues (ruvon.trace_context), stored in its row.
    trace_context: dict[str, str] | None = None
    # The workflow's priority (ruvon.priority): the run's broker lane and sweep order.
    priority: int = 0
    # The step whose rate-limit reservation was made for this run (see Deferred).
    reserved_step: str | None = None


@dataclass(frozen=True, slots=True)
class QueuedRun:
    """A stored run to announce: ids only (the message carries nothing else); ``priority``
    picks the broker lane it is sent on."""

    run_id: int
    workflow_id: str
    kind: RunKind
    step_name: str
    branch: str
    queue: str
    delay: float = 0.0
    priority: int = 0


@dataclass(frozen=True, slots=True, order=True)
class Lane:
    """Where a queue's runs of one priority wait on the broker: first in, first out within a
    lane; a worker serves a queue's most urgent non-empty lane first."""

    queue: str
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Claim:
    """A worker's hold on one run: valid while ``attempt`` is the run's attempt and it runs."""

    run_id: int
    workflow_id: str
    kind: RunKind
    step_name: str
    branch: str
    run_number: int
    attempt: int
    owner: str
    queue: str
    # The database's clock when the claim was taken (None if the store has no clock to share).
    claimed_at: datetime | None = None
    # The trace context stored with the run (None without tracing), see ruvon.trace_context.
    trace_context: dict[str, str] | None = None
    priority: int = 0
    # The step whose rate-limit reservation this run made before a deferral (see Deferred).
    reserved_step: str | None = None

    def queued(self, delay: float = 0.0) -> QueuedRun:
        """This run as a message to send again."""
        return QueuedRun(
            self.run_id,
            self.workflow_id,
            self.kind,
            self.step_name,
            self.branch,
            self.queue,
            delay,
            self.priority,
        )


@dataclass(frozen=True, slots=True)
class StepRunRecord:
    """A step run as stored, for people and tools (``ruvon steps``): where and how it ran.

    ``attempt`` counts the claims so far, ``worker`` is the last claimant, ``started_at`` its
    claim and ``finished_at`` the commit that closed the run (None while it is open). Times
    are the database's clock.
    """

    run_id: int
    workflow_id: str
    kind: RunKind
    step_name: str
    branch: str
    run_number: int
    status: RunStatus
    attempt: int
    queue: str
    worker: str | None
    created_at: datetime
    run_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from the last claim to the close (None unless both happened)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class BranchOutcome:
    """What one PARALLEL branch produced (a result, or the error of its last attempt)."""

    branch: str
    index: int
    succeeded: bool
    result: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TakeRun:
    """One run a save inserts already claimed by the committing worker, which runs it next in
    the same task (no broker message): RUNNING, attempt 1, leased to ``owner`` from now().

    Its lease is like any claim's, so a worker that dies before or while running it is
    recovered by the zombie sweep like any other.
    """

    run: RunRequest
    owner: str
    lease_seconds: float


@dataclass(slots=True)
class WorkWrites:
    """Step-run writes that commit in the same transaction as a workflow save.

    ``fence``: the save only commits if this claim is still held (same attempt, still
    RUNNING); with ``close`` the run is then marked DONE (else it stays RUNNING for the saves
    to come). ``enqueue``: runs to insert (duplicates of stored runs are ignored). After the
    commit, ``queued`` holds the inserted runs, which the caller announces. ``take``: a run to
    insert claimed by the committing worker; after the commit, ``taken`` is its claim (None if
    the run already existed: whoever stored it announces it).
    """

    fence: Claim | None = None
    # With a fence: also close the claimed run (DONE) when the workflow is written.
    close: bool = True
    enqueue: list[RunRequest] = field(default_factory=list)
    queued: list[QueuedRun] = field(default_factory=list)
    take: TakeRun | None = None
    taken: Claim | None = None

    def __bool__(self) -> bool:
        return self.fence is not None or bool(self.enqueue) or self.take is not None


def reject_work(work: WorkWrites | None, provider: object) -> None:
    """For providers without step runs: refuse distributed work with the reason."""
    if work:
        raise ConfigurationError(
            f"{type(provider).__name__} cannot keep step runs: distributed execution (the "
            "Celery executor) needs the cluster's shared PostgreSQL database "
            "(RUVON_DATABASE_URL=postgresql://...)"
        )
