"""The seams of a store that keeps step runs: the workers' verbs and the beat's.

* :class:`RunLedger` — what a worker does with runs: claim, heartbeat, close, retry, record a
  branch and fire the join.
* :class:`Maintenance` — the beat's sweeps over the same rows: expired leases, lost messages,
  parents and joins to reconcile, due timers. Every verb is one statement and returns the runs
  it queued for the caller to announce.

Only a store every worker shares can implement them (PostgreSQL). Times are the database's
(``now()``), never a worker's clock, so a skewed worker cannot shorten anyone's lease.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from ruvon.providers.flow_control import SlotRecord
from ruvon.providers.runs import BranchOutcome, Claim, Lane, QueuedRun, RunKind, RunStatus
from ruvon.records import AuditEntry, WorkflowRecord

__all__ = [
    "RECOVERY_EVENTS",
    "BranchRecorded",
    "ClusterActivity",
    "ExpiredLease",
    "LostRuns",
    "Maintenance",
    "QueueBacklog",
    "RunLedger",
    "RunSnapshot",
    "UnclaimedQueues",
]


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """A run as stored, for a worker whose claim found nothing to take."""

    run: QueuedRun
    status: RunStatus
    attempt: int
    due_in: float  # seconds until run_at (<= 0: due)


@dataclass(frozen=True, slots=True)
class BranchRecorded:
    """The outcome of recording one branch: whether it counted, the join if it fired, and the
    next branch it released (a fan-out with a batch size runs that many at a time)."""

    recorded: bool
    join: QueuedRun | None = None
    released: QueuedRun | None = None


@runtime_checkable
class RunLedger(Protocol):
    """Step runs in a shared store (see :mod:`ruvon.providers.runs`)."""

    async def claim_run(
        self, run_id: int, owner: str, lease_seconds: float
    ) -> tuple[Claim, WorkflowRecord] | None:
        """Take a due QUEUED run (or one whose lease expired): attempt + 1, lease from now().

        Returns the claim and the workflow as stored, or None when there is nothing to take
        (a duplicate message, a run not yet due, a run someone else holds, or a finished one).
        """
        ...

    async def describe_run(self, run_id: int) -> RunSnapshot | None:
        """The run as stored (None if there is no such run)."""
        ...

    async def extend_lease(self, claim: Claim, lease_seconds: float) -> bool:
        """Heartbeat: push the lease to now() + lease_seconds while the claim holds."""
        ...

    async def finish_run(self, claim: Claim, status: RunStatus, error: str | None = None) -> bool:
        """Close a claimed run without a workflow save (fenced by the claim)."""
        ...

    async def retry_run(
        self, claim: Claim, delay: float, error: str, audit: AuditEntry
    ) -> QueuedRun | None:
        """Give the run back as QUEUED, due in ``delay`` seconds, with an audit row (fenced)."""
        ...

    async def defer_run(
        self,
        claim: Claim,
        delay: float | None,
        *,
        reserved_step: str | None = None,
        slot: tuple[str, str] | None = None,
    ) -> QueuedRun | None:
        """Give the run back unspent (its attempt count as before the claim; fenced): due in
        ``delay`` seconds (a rate-limit turn, with ``reserved_step`` marked), or with ``delay``
        None parked until :meth:`wake_parked` (a concurrency slot ``slot = (key, holder)``).

        Returns the run to announce, or None when parked or the claim no longer holds. A run
        parked while its holder is already first in line for a free slot (the slot freed
        meanwhile) is made due at once instead, so no wake-up is ever missed.
        """
        ...

    async def defer_advance(
        self,
        claim: Claim,
        workflow: WorkflowRecord,
        step_name: str,
        delay: float | None,
        *,
        reserved_step: str | None = None,
        slot: tuple[str, str] | None = None,
    ) -> QueuedRun | None:
        """Close the claimed run and, in the same transaction, enqueue an advance run that
        carries ``workflow`` on from ``step_name`` at its stored version: due in ``delay``
        seconds, or parked like :meth:`defer_run` (for a step a run reaches inline, after
        saves of its own, which its run can no longer be given back from)."""
        ...

    async def wake_parked(self, waiters: Sequence[SlotRecord]) -> list[QueuedRun]:
        """Make the parked runs of ``waiters`` (first in line for a freed slot) due now."""
        ...

    async def record_branch(
        self,
        claim: Claim,
        outcome: BranchOutcome,
        *,
        expected: int,
        join_queue: str,
        batch: int = 0,
        waiting: Sequence[str] | None = None,
    ) -> BranchRecorded:
        """Store a branch's outcome and close its run; fire the join when the set is complete.

        Commits only while the claim holds. Of ``expected`` branches, exactly one commit counts
        the last outcome and inserts the join run (returned: the caller runs or announces it).
        With ``batch`` > 0 the fan-out enqueued only the first ``batch`` branches, and the
        r-th outcome recorded inserts branch ``batch + r - 1`` (returned as ``released``): its
        name is ``waiting[r - 1]`` (the static tasks after the first batch), or
        ``<step>[<index>]`` for a dynamic fan-out (``waiting`` None).
        """
        ...

    async def branch_results(
        self, workflow_id: str, step_name: str, run_number: int
    ) -> list[BranchOutcome]:
        """The recorded outcomes of one PARALLEL step run, in branch order."""
        ...


@dataclass(frozen=True, slots=True)
class ExpiredLease:
    """A RUNNING run whose worker stopped renewing its lease (``ruvon scan-zombies``)."""

    run_id: int
    workflow_id: str
    workflow_type: str
    kind: RunKind
    step_name: str
    branch: str
    attempt: int
    worker: str | None
    expired_for: float


@dataclass(frozen=True, slots=True)
class UnclaimedQueues:
    """Lanes (queue and priority) holding due runs that nobody claimed within the dispatch
    timeout.

    ``as_of`` is the store's clock when they were found (None when there are none): the broker's
    lane lengths are read after it, and compared with the runs sent up to it.
    """

    lanes: tuple[Lane, ...]
    as_of: datetime | None

    @property
    def queues(self) -> tuple[str, ...]:
        """The queues of :attr:`lanes`, each once, by name."""
        return tuple(sorted({lane.queue for lane in self.lanes}))


@dataclass(frozen=True, slots=True)
class LostRuns:
    """What one lost-message sweep found missing: the runs it marked sent again (to announce),
    and the ids of those it suspects for the first time (for the next sweep to confirm)."""

    resent: list[QueuedRun]
    suspected: tuple[int, ...]


@runtime_checkable
class Maintenance(Protocol):
    """The beat's queries (DESIGN.md, rule 6). Each is safe to run twice at once: rows are taken
    ``FOR UPDATE SKIP LOCKED`` or inserted ``ON CONFLICT DO NOTHING``."""

    async def requeue_crashed(self, max_attempts: int, limit: int) -> list[QueuedRun]:
        """Expired leases with attempts left back to QUEUED (audited); the runs to announce."""
        ...

    async def exhausted_crashes(self, max_attempts: int, limit: int) -> list[int]:
        """Ids of expired runs that used up their attempts (their workflows are to fail)."""
        ...

    async def expired_leases(self, older_than: float, limit: int) -> list[ExpiredLease]:
        """RUNNING runs whose lease expired more than ``older_than`` seconds ago."""
        ...

    async def unclaimed_queues(self, timeout: float) -> UnclaimedQueues:
        """The queues with due runs nobody claimed within ``timeout`` seconds of their last
        message (candidates for :meth:`redispatch_lost`), and the store's clock now."""
        ...

    async def redispatch_lost(
        self,
        timeout: float,
        limit: int,
        waiting: Mapping[Lane, int],
        as_of: datetime,
        suspected: Collection[int] = (),
    ) -> LostRuns:
        """Due runs not claimed within ``timeout`` seconds of their last message whose message
        is missing: the ``suspected`` ones are marked sent again, the others suspected now.

        ``waiting``: how many messages wait in each lane's broker list, counted after
        ``as_of``. Lanes are first in, first out: the waiting messages are taken to belong to
        the lane's newest sends up to ``as_of``, so only the runs beyond that count are missing.
        Only the lanes named in ``waiting`` are swept (a broker that cannot count says 0). A run is
        sent again once two sweeps in a row found it missing (``suspected``: the previous
        sweep's :attr:`LostRuns.suspected`), so a message a worker had just taken, its claim
        under way, is not sent twice.
        """
        ...

    async def fire_due_timers(self, default_queue: str, limit: int) -> list[QueuedRun]:
        """An advance run for each cluster workflow whose timer or approval deadline is due."""
        ...

    async def fail_past_deadline(self, default_queue: str, limit: int) -> list[QueuedRun]:
        """Advance runs (reason ``deadline``, one per workflow version) for the unfinished
        cluster workflows past their deadline; the claiming worker's engine fails them."""
        ...

    async def reconcile_parents(
        self, default_queue: str, grace: float, limit: int
    ) -> list[QueuedRun]:
        """Resumption runs for parents whose child ended ``grace`` seconds ago or more."""
        ...

    async def reconcile_joins(
        self, default_queue: str, grace: float, limit: int
    ) -> list[QueuedRun]:
        """Join runs for complete joins that have none."""
        ...

    async def wake_slot_waiters(self, limit: int) -> list[QueuedRun]:
        """Clear dead concurrency-slot holders (a lapsed lease, an ended workflow) and wake the
        parked runs of the waiters first in line for the slots that are free; and make due the
        parked runs of workflows that ended (a worker claims and closes each SKIPPED)."""
        ...


#: Audit events the beat writes when it recovers work: a run whose worker died, re-queued
#: (``WORKER_CRASH_DETECTED``), and a run whose broker message was lost, sent again
#: (``MESSAGE_RESENT``). A workflow failed for too many crashes has ``new_status``
#: FAILED_WORKER_CRASH.
RECOVERY_EVENTS = ("WORKER_CRASH_DETECTED", "MESSAGE_RESENT")


@dataclass(frozen=True, slots=True)
class QueueBacklog:
    """The step runs of one queue not finished yet, as the database sees them at ``as_of``."""

    queue: str
    queued: int  # QUEUED runs (due or not)
    due: int  # QUEUED runs whose run_at has come: waiting for a worker
    running: int  # claimed, lease held
    oldest_due_at: datetime | None  # run_at of the oldest due QUEUED run: the queue's lag
    as_of: datetime


@runtime_checkable
class ClusterActivity(Protocol):
    """What the control plane reads about the cluster's work (PostgreSQL)."""

    async def queue_backlog(self) -> list[QueueBacklog]:
        """Every queue with unfinished runs, by name."""
        ...

    async def recent_recoveries(self, limit: int) -> list[AuditEntry]:
        """The newest audit entries of :data:`RECOVERY_EVENTS` and of workflows failed for
        worker crashes, newest first."""
        ...
