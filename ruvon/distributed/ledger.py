"""The seam of a store that keeps step runs: claims, leases, branch results, the join.

Only a store every worker shares can implement it (PostgreSQL). Times are the database's
(``now()``), never a worker's clock, so a skewed worker cannot shorten anyone's lease.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ruvon.distributed.work import BranchOutcome, Claim, QueuedRun, RunStatus
from ruvon.records import AuditEntry, WorkflowRecord

__all__ = ["BranchRecorded", "RunLedger", "RunSnapshot"]


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """A run as stored, for a worker whose claim found nothing to take."""

    run: QueuedRun
    status: RunStatus
    attempt: int
    due_in: float  # seconds until run_at (<= 0: due)


@dataclass(frozen=True, slots=True)
class BranchRecorded:
    """The outcome of recording one branch: whether it counted, and the join if it fired."""

    recorded: bool
    join: QueuedRun | None = None


@runtime_checkable
class RunLedger(Protocol):
    """Step runs in a shared store (see :mod:`ruvon.distributed.work`)."""

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

    async def record_branch(
        self,
        claim: Claim,
        outcome: BranchOutcome,
        *,
        expected: int,
        join_queue: str,
    ) -> BranchRecorded:
        """Store a branch's outcome and close its run; fire the join when the set is complete.

        Commits only while the claim holds. Of ``expected`` branches, exactly one commit counts
        the last outcome and inserts the join run (returned: the caller runs or announces it).
        """
        ...

    async def branch_results(
        self, workflow_id: str, step_name: str, run_number: int
    ) -> list[BranchOutcome]:
        """The recorded outcomes of one PARALLEL step run, in branch order."""
        ...

    async def requeue_expired(self, limit: int = 100) -> list[QueuedRun]:
        """RUNNING runs whose lease expired go back to QUEUED; returns them to announce."""
        ...
