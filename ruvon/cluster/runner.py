"""What a worker does with one step-run message: claim, run, commit, continue, announce.

1. **Claim** the run (one statement that also returns the workflow row). Nothing to claim means
   the message was a duplicate, early, or late: a run not yet due is announced again for when
   it is; anything else is dropped (acknowledged) — the database already says what happened.
2. **Check** the workflow still waits for this run (a cancelled workflow, or one a duplicate
   already moved on, makes it stale: the run is closed SKIPPED).
3. **Run** it under a lease kept alive by a heartbeat: a step run resumes the workflow's ASYNC
   step through the engine, whose first save is fenced by the claim and closes the run; the
   following inline steps run in the same task; the next ASYNC/PARALLEL/child work is enqueued by
   those saves and announced after each commit. A branch run records its outcome (and, if it
   completes the set, fires the join, which this task then runs too).
4. **Continue**: when the settling commit could hand the workflow's next run (its next ASYNC
   step, a branch) to a queue this worker consumes, the commit claims it for this worker
   instead (:mod:`~ruvon.cluster.continuation`) and it runs next, in this task, within a step
   and time budget.
5. A retryable failure gives the run back with ``run_at = now() + backoff``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from dataclasses import replace
from typing import TYPE_CHECKING, cast

from ruvon.builder import WorkflowBuilder
from ruvon.clock import align_clock
from ruvon.cluster.continuation import ContinuationBudget, ContinuationLimits, UrgencyProbe
from ruvon.config import Settings
from ruvon.engine.outbox import announce_stored
from ruvon.engine.tracebacks import format_traceback
from ruvon.errors import (
    ClaimLost,
    ConcurrencyConflict,
    PersistenceError,
    WorkerCrashed,
    describe_error,
)
from ruvon.models import WorkflowStatus
from ruvon.providers.ledger import RunLedger
from ruvon.providers.runs import (
    BranchOutcome,
    Claim,
    Deferred,
    RetryLater,
    RunKind,
    RunStatus,
)
from ruvon.records import AuditEntry, WorkflowRecord
from ruvon.steps.parallel import batch_release, branch_error_text, plan_branch, run_branch
from ruvon.trace_context import reset_trace_context, set_trace_context

if TYPE_CHECKING:
    from ruvon.implementations.execution.celery import CeleryExecutionProvider
    from ruvon.providers.observer import WorkflowObserver
    from ruvon.providers.persistence import PersistenceProvider
    from ruvon.workflow import Workflow

__all__ = ["StepRunner"]

logger = logging.getLogger("ruvon.worker")

_WAITING_AT = {
    RunKind.STEP: WorkflowStatus.PENDING_ASYNC,
    RunKind.BRANCH: WorkflowStatus.PENDING_PARALLEL,
    RunKind.JOIN: WorkflowStatus.PENDING_PARALLEL,
}


class StepRunner:
    """Executes step runs for one worker process (use it from the process's bridge loop)."""

    def __init__(
        self,
        persistence: PersistenceProvider,
        builder: WorkflowBuilder,
        execution: CeleryExecutionProvider,
        *,
        owner: str,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float = 10.0,
        observer: WorkflowObserver | None = None,
        queues: Collection[str] = (),
        continuation: ContinuationLimits | None = None,
    ) -> None:
        """``queues``: the queues this worker consumes, whose runs it may continue with
        (none: every run goes through the broker); ``continuation``: the budget of one chain."""
        if not isinstance(persistence, RunLedger):
            raise TypeError(f"{persistence!r} cannot keep step runs (use PostgreSQL)")
        self.persistence = persistence
        self.ledger: RunLedger = persistence
        self.builder = builder
        self.execution = execution
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = min(heartbeat_seconds, lease_seconds / 2)
        self.observer = observer
        self.queues = frozenset(queues)
        self.continuation = continuation or ContinuationLimits()
        # One probe per worker process: its cached answers serve every chain.
        self.urgency = UrgencyProbe(execution.waiting_above, self.queues)

    @classmethod
    def for_settings(
        cls,
        settings: Settings,
        persistence: PersistenceProvider,
        execution: CeleryExecutionProvider,
        *,
        owner: str,
        observer: WorkflowObserver | None = None,
        queues: Collection[str] = (),
    ) -> StepRunner:
        """A runner (and its builder) configured from ``settings``: lease, heartbeat, registry,
        and, when it consumes ``queues``, the continuation budget."""
        builder = WorkflowBuilder(
            settings=settings,
            persistence_provider=persistence,
            execution_provider=execution,
            observer=observer,
        )
        return cls(
            persistence,
            builder,
            execution,
            owner=owner,
            lease_seconds=settings.step_lease_seconds,
            heartbeat_seconds=settings.heartbeat_seconds,
            observer=observer,
            queues=queues,
            continuation=ContinuationLimits(settings.continue_steps, settings.continue_seconds),
        )

    async def run(self, run_id: int) -> str:
        """Handle one message for ``run_id``, and the runs its commits claim for this worker;
        returns what happened to the last (for logs and results)."""
        claimed = await self.ledger.claim_run(run_id, self.owner, self.lease_seconds)
        if claimed is None:
            return await self._not_claimed(run_id)
        chain = ContinuationBudget(
            self.owner, self.lease_seconds, self.queues, self.continuation, self._urgent
        )
        claim, record = claimed
        try:
            outcome = await self._run_claimed(claim, record, chain)
        finally:
            # A committed continuation is this worker's to run, whatever happened after it.
            while (taken := chain.pop()) is not None:
                outcome = await self._run_claimed(*taken, chain)
        return outcome

    def _urgent(self, priority: int) -> bool:
        """Whether a chain should stop for a more urgent message. A chain a carrier thread
        carries holds no place such a message waits for (the task thread takes the next
        message meanwhile), so it neither asks the broker nor yields."""
        if self.execution.carried():
            return False
        return self.urgency(priority)

    async def _not_claimed(self, run_id: int) -> str:
        snapshot = await self.ledger.describe_run(run_id)
        if snapshot is None:
            return "unknown"
        if snapshot.status is RunStatus.QUEUED and snapshot.due_in > 0:
            # Early (a countdown hint measured by another clock): ask again when it is due.
            announce_stored(self.execution, [replace(snapshot.run, delay=snapshot.due_in)])
            return "not-due"
        return "duplicate"

    async def _run_claimed(
        self, claim: Claim, record: WorkflowRecord, chain: ContinuationBudget | None = None
    ) -> str:
        if claim.claimed_at is not None:
            # Deadlines this worker computes are compared with the database's clock.
            align_clock(claim.claimed_at)
        # Most runs end within milliseconds: the heartbeat starts only once a run has lasted
        # one interval (a timer costs far less than a task started and cancelled per run).
        beats: list[asyncio.Task[None]] = []

        def start_heartbeat() -> None:
            beats.append(asyncio.ensure_future(self._heartbeat(claim)))

        start = asyncio.get_running_loop().call_later(self.heartbeat_seconds, start_heartbeat)
        # The run's stored trace context (RUVON_OTEL): this worker's spans continue that trace.
        traced = set_trace_context(claim.workflow_id, claim.trace_context)
        try:
            return await self._execute(claim, record, chain)
        finally:
            reset_trace_context(traced)
            start.cancel()
            for heartbeat in beats:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat

    async def _heartbeat(self, claim: Claim) -> None:
        """Extend the lease now and every interval until the run is closed or taken over."""
        while True:
            try:
                held = await self.ledger.extend_lease(claim, self.lease_seconds)
            except Exception:
                logger.exception("heartbeat of step run %d failed; retrying", claim.run_id)
                held = True  # try again at the next interval
            if not held:
                return  # closed (committed), or taken over: its commit will be refused
            await asyncio.sleep(self.heartbeat_seconds)

    async def _claimed_workflow(
        self, claim: Claim, record: WorkflowRecord, chain: ContinuationBudget | None = None
    ) -> Workflow | None:
        """The workflow under ``claim``; None (the run closed SKIPPED) if it no longer waits
        for this run: cancelled, or moved on by a duplicate or an earlier attempt."""
        wf = self.builder.workflow_from_record(
            record,
            persistence_provider=self.persistence,
            execution_provider=self.execution,
            workflow_observer=self.observer,
            claim=claim,
            continuing=chain,
        )
        if _still_waits_for(wf, claim):
            return wf
        await self.ledger.finish_run(claim, RunStatus.SKIPPED)
        return None

    async def _execute(
        self, claim: Claim, record: WorkflowRecord, chain: ContinuationBudget | None
    ) -> str:
        claimed_version = record.version
        wf = await self._claimed_workflow(claim, record, chain)
        if wf is None:
            return "stale"
        if record.deadline_at is None and not wf.definition.has_step_timeouts:
            # No call of this workflow can need the task thread's time-limit signal: the task
            # may take its next message while a carrier thread serves this run.
            self.execution.hand_over()
        distribution = wf.distribution
        assert distribution is not None  # built with this worker's dispatching executor
        try:
            if claim.kind is RunKind.BRANCH:
                return await self._run_branch(wf, claim, chain)
            await wf.run()
        except RetryLater as retry:
            return await self._retry(wf, claim, retry)
        except Deferred as deferred:
            return await self._defer(wf, claim, deferred, claimed_version)
        except ClaimLost:
            return "claim-lost"
        except ConcurrencyConflict:
            # Another writer moved the workflow on (a cancel, a duplicate): this run is moot.
            if distribution.fence_pending:
                await self.ledger.finish_run(claim, RunStatus.SKIPPED)
            return "conflict"
        except PersistenceError:
            # The database failed mid-run: the run stays open, its lease expires, and the
            # next attempt carries on from what was committed.
            raise
        except Exception as exc:
            # The engine persisted the failure (FAILED / rolled back) unless it could not save.
            if distribution.fence_pending:
                await self.ledger.finish_run(claim, RunStatus.DONE, describe_error(exc))
            raise
        if distribution.fence_pending:
            # Nothing to save (e.g. a parent whose child is still running): close the run.
            await self.ledger.finish_run(claim, RunStatus.DONE)
        return "done"

    async def _run_branch(
        self, wf: Workflow, claim: Claim, chain: ContinuationBudget | None
    ) -> str:
        step = wf.steps[wf.current_step_index]
        planned = plan_branch(wf, step, claim.branch)
        branch = planned.branch
        if branch is None:
            outcome = BranchOutcome(
                claim.branch, planned.count, False, error=f"no branch '{claim.branch}' to run"
            )
        else:
            try:
                # This workflow object was loaded for this branch and is dropped after it.
                result = await run_branch(wf, step, branch, claim.run_number, private_state=False)
                outcome = BranchOutcome(branch.name, planned.index, True, result)
            except RetryLater:
                raise
            except Exception as exc:
                outcome = BranchOutcome(
                    branch.name, planned.index, False, error=branch_error_text(exc)
                )
        queue = self.execution.queue_for(step.queue, wf.record.data_region)
        batch, waiting = batch_release(step, planned.count)
        recorded = await self.ledger.record_branch(
            claim,
            outcome,
            expected=planned.count,
            join_queue=queue,
            batch=batch,
            waiting=waiting,
        )
        if not recorded.recorded:
            return "stale"
        if recorded.released is not None:
            announce_stored(self.execution, [recorded.released])
        if recorded.join is None:
            return "branch-recorded"
        # This branch completed the set: run the join here rather than another broker hop.
        joined = await self.ledger.claim_run(recorded.join.run_id, self.owner, self.lease_seconds)
        if joined is None:
            return "branch-recorded"
        return await self._run_claimed(*joined, chain)

    async def fail_crashed(self, run_id: int, *, max_attempts: int) -> str:
        """A run that lost ``max_attempts`` workers: fail its workflow (saga rollback first).

        Taken with a claim like any run (so a concurrent sweep, or a worker that claimed it
        meanwhile, makes this a no-op); the failure commits fenced by that claim.
        """
        claimed = await self.ledger.claim_run(run_id, self.owner, self.lease_seconds)
        if claimed is None:
            return "taken"
        claim, record = claimed
        wf = await self._claimed_workflow(claim, record)
        if wf is None:
            return "stale"
        lost = claim.attempt - 1
        wf.audit(
            "WORKER_CRASH_DETECTED",
            claim.step_name or None,
            {"run": claim.run_id, "kind": str(claim.kind), "attempt": lost, "action": "failed"},
        )
        step = wf.steps[wf.current_step_index] if wf.current_step else None
        error = WorkerCrashed(
            f"step '{claim.step_name or wf.current_step}' lost its worker {lost} times "
            f"(RUVON_CRASH_ATTEMPTS={max_attempts}): every worker that ran it died or hung"
        )
        try:
            await wf.fail(step, error, status=WorkflowStatus.FAILED_WORKER_CRASH)
        except ConcurrencyConflict:
            return "conflict"
        return "failed"

    async def _defer(
        self, wf: Workflow, claim: Claim, deferred: Deferred, claimed_version: int
    ) -> str:
        """A gated step may not run yet: give the work back, due at its rate-limit turn or
        parked until a slot frees, without spending an attempt.

        Nothing saved under this claim yet: the run itself goes back. Otherwise (the claim
        carried the workflow through saves to an inline step that is gated) the run closes and
        an advance run at the stored version takes over, in one transaction.
        """
        slot = (deferred.slot_key, deferred.holder or "") if deferred.slot_key else None
        reserved = deferred.reserved_step
        if wf.record.version == claimed_version:
            queued = await self.ledger.defer_run(
                claim, deferred.delay, reserved_step=reserved, slot=slot
            )
        else:
            queued = await self.ledger.defer_advance(
                claim, wf.record, deferred.step_name, deferred.delay,
                reserved_step=reserved, slot=slot,
            )  # fmt: skip
        if queued is not None:
            announce_stored(self.execution, [queued])
        return "deferred"

    async def _retry(self, wf: Workflow, claim: Claim, retry: RetryLater) -> str:
        error = describe_error(retry.error)
        details: dict[str, object] = {
            "attempt": retry.attempt,
            "error": error,
            "delay": round(retry.delay, 3),
            "worker": claim.owner,
            "queue": claim.queue,
        }
        if retry.error.__traceback__ is not None:
            details["traceback"] = format_traceback(retry.error)
        details["run"] = claim.run_id
        if claim.branch:
            details["branch"] = claim.branch
        audit = AuditEntry(wf.id, "STEP_RETRY", step_name=claim.step_name, details=details)
        queued = await self.ledger.retry_run(claim, retry.delay, error, audit)
        if queued is None:
            return "claim-lost"
        announce_stored(self.execution, [queued])
        return "retry"


def _still_waits_for(wf: Workflow, claim: Claim) -> bool:
    """Whether the workflow, as claimed, is still waiting for this run.

    An ACTIVE workflow under a re-claimed run (attempt > 1) is one an earlier attempt of this
    very run was carrying on through inline steps when its worker died: the run stayed open
    (nothing else moves an ACTIVE workflow while it is), so this attempt carries on from there.
    """
    if (
        claim.attempt > 1
        and wf.status is WorkflowStatus.ACTIVE
        and claim.kind is not RunKind.BRANCH
    ):
        return True
    if claim.kind is RunKind.ADVANCE:
        return _advance_applies(wf, claim)
    if wf.status is not _WAITING_AT[claim.kind] or wf.current_step != claim.step_name:
        return False
    if claim.kind is RunKind.STEP:
        return wf.run_number(claim.step_name) == claim.run_number
    parallel = cast("dict[str, dict[str, int]]", wf.record.runtime.get("parallel", {}))
    return parallel.get(claim.step_name, {}).get("run") == claim.run_number


def _advance_applies(wf: Workflow, claim: Claim) -> bool:
    """An advance run moves the workflow on only from the state it was enqueued for.

    ``start``: a new workflow; ``child:<id>``: a parent still waiting for that child;
    ``v<n>`` (a client's hand-off) and ``timer`` (run number = version): the workflow still at
    that version. A late or duplicate advance therefore never runs a step that has moved on.
    ``deadline`` (the deadline sweep's): any unfinished workflow, whose engine fails it at its
    deadline check (a later version is past the deadline as much as the one it was sent for).
    """
    record = wf.record
    reason = claim.branch
    if wf.status.is_terminal:
        return False
    if reason.startswith("child:"):
        return (
            wf.status is WorkflowStatus.PENDING_SUB_WORKFLOW
            and record.blocked_on_child_id == reason.removeprefix("child:")
        )
    if reason.startswith("v") and reason[1:].isdigit():
        return record.version == int(reason[1:])
    if reason == "timer":
        return record.version == claim.run_number
    if reason == "deadline":
        return True
    return reason != "start" or wf.status is WorkflowStatus.ACTIVE
