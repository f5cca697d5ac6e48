"""The engine's distributed part: the claim a worker runs a workflow under, and its runs.

A workflow object built with a dispatching execution provider (Celery) is composed with one
:class:`Distribution` (embedded, it has none). Handlers ask it for step runs
(:meth:`Distribution.enqueue`) instead of running work in-process; the engine's saves carry
those runs, and the claim fence, in their transaction (:meth:`Distribution.writes`), and
announce them once committed. It also decides what a transition hands to the workers: the next
step's runs folded into the save that completes a step (:meth:`Distribution.hand_on`), a new
workflow's first runs (:meth:`Distribution.start`), a child's report to its parent.

The claim is given when the object is built (a worker's :class:`~ruvon.cluster.runner.StepRunner`
builds it for the run it claimed) and never changes: every save is then fenced by it until the
save that settles the workflow (waiting, suspended, ended) closes the run. A worker may also
hand in a :class:`Continuing` policy: the settling save then inserts one of its new runs
already claimed by that worker (its next ASYNC step, one branch), which the worker runs next in
the same task instead of announcing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from ruvon.engine.outbox import OutboxSnapshot, RunOutbox
from ruvon.engine.runtime import StepRuntime
from ruvon.models import StepType, WorkflowStatus
from ruvon.providers.conformance import dispatches_runs, keeps_runs
from ruvon.providers.dispatch import RunDispatcher
from ruvon.providers.execution import ExecutionProvider
from ruvon.providers.ledger import RunLedger
from ruvon.providers.persistence import PersistenceProvider
from ruvon.providers.runs import Claim, QueuedRun, RunKind, RunRequest, TakeRun, WorkWrites
from ruvon.records import WorkflowRecord
from ruvon.trace_context import current_trace_context

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.outcomes import StepHandler

__all__ = ["ON_WORKER", "Continuing", "DistributedHost", "Distribution"]

#: Statuses in which a step belongs to the workers.
ON_WORKER = (WorkflowStatus.PENDING_ASYNC, WorkflowStatus.PENDING_PARALLEL)


class DistributedHost(StepRuntime, Protocol):
    """What the distributed part needs of the engine it is composed into."""

    reports_to_parent: bool

    @property
    def handlers(self) -> Mapping[StepType, StepHandler]: ...

    def suspend(self, status: WorkflowStatus, step: StepDefinition) -> None:
        """Move into ``status`` at ``step`` with the pending save."""
        ...


class Continuing(Protocol):
    """A worker that continues in the same task with work it can take itself."""

    def take(self, runs: Sequence[RunRequest], workflow_id: str) -> TakeRun | None:
        """Which of ``runs`` (enqueued by a save of ``workflow_id``) to insert claimed by this
        worker, or None (not one it consumes, or its budget is spent)."""
        ...

    def taken(self, claim: Claim, record: WorkflowRecord) -> None:
        """The save committed: ``claim`` is this worker's, on the workflow as ``record``."""
        ...


class Distribution:
    """Claim, pending run requests and unannounced runs of one workflow object."""

    __slots__ = ("_applied", "_host", "_open", "claim", "continuing", "ledger", "outbox")

    def __init__(
        self,
        dispatcher: RunDispatcher,
        ledger: RunLedger | None,
        claim: Claim | None = None,
        continuing: Continuing | None = None,
    ) -> None:
        self.outbox = RunOutbox(dispatcher)
        self.ledger = ledger
        self.claim = claim
        self.continuing = continuing
        self._open = claim is not None  # the claimed run is RUNNING: saves are fenced by it
        self._applied = False  # the claimed work's own outcome is committed
        self._host: DistributedHost | None = None

    @classmethod
    def for_providers(
        cls,
        execution: ExecutionProvider,
        persistence: PersistenceProvider,
        claim: Claim | None = None,
        continuing: Continuing | None = None,
    ) -> Distribution | None:
        """The distributed part for these providers; None when steps run in this process."""
        if not dispatches_runs(execution):
            return None
        ledger = persistence if keeps_runs(persistence) else None
        return cls(execution, ledger, claim, continuing)

    def bind(self, host: DistributedHost) -> None:
        """Attach to the workflow whose runs these are (its engine calls this once)."""
        self._host = host

    @property
    def host(self) -> DistributedHost:
        host = self._host
        assert host is not None, "Distribution.bind() was not called"
        return host

    @property
    def dispatcher(self) -> RunDispatcher:
        return self.outbox.dispatcher

    # -- the claim --------------------------------------------------------------------------

    @property
    def worker(self) -> str | None:
        """The worker holding the claim (None in a client: a resume, a cancel)."""
        return self.claim.owner if self.claim is not None else None

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

    def claimed_attempt(self, step_name: str, *kinds: RunKind) -> int | None:
        if self.claim is not None and self.holds(step_name, *kinds):
            return self.claim.attempt
        return None

    # -- runs -------------------------------------------------------------------------------

    def enqueue(
        self,
        kind: RunKind,
        step_name: str,
        *,
        branch: str = "",
        queue: str | None = None,
        run_number: int | None = None,
        workflow_id: str | None = None,
    ) -> None:
        host = self.host
        record = host.record
        if queue is None:
            definition = host.definition
            index = definition.step_index.get(step_name) if workflow_id is None else None
            own = definition.steps[index].queue if index is not None else None
            queue = self.dispatcher.queue_for(own, record.data_region)
        if run_number is None:
            run_number = 1 if kind is RunKind.ADVANCE else host.run_number(step_name)
        target = workflow_id or record.id
        self.outbox.request(
            RunRequest(
                target,
                kind,
                step_name,
                run_number,
                branch,
                queue,
                trace_context=current_trace_context(target),
                priority=record.priority,
            )
        )

    def defer(self, runs: Sequence[QueuedRun]) -> None:
        self.outbox.defer(runs)

    def take_deferred(self) -> list[QueuedRun]:
        return self.outbox.take_deferred()

    # -- saves ------------------------------------------------------------------------------

    def writes(self, *, settles: bool) -> WorkWrites | None:
        """What the next save must carry (None: nothing, a plain save).

        ``settles``: the save leaves the workflow not ACTIVE (waiting, suspended, ended), so it
        also closes the claimed run; then it may also claim the next run for this worker
        (:class:`Continuing`), which never holds two open runs of one workflow.
        """
        fence = self.claim if self._open else None
        work = self.outbox.writes(fence, close=settles)
        continuing = self.continuing
        if work is not None and fence is not None and settles and continuing is not None:
            take = continuing.take(work.enqueue, self.host.record.id)
            if take is not None:
                work.enqueue.remove(take.run)
                work.take = take
        return work

    def committed(self, work: WorkWrites | None, *, announce: bool = True) -> None:
        """The save carrying ``work`` committed: the fence's run moved on; announce the runs
        (``announce=False``: keep them deferred, see :meth:`take_deferred`)."""
        if work is not None and work.fence is not None:
            self._applied = True
            self._open = not work.close
        self.outbox.committed(work, announce=announce)
        if work is not None and work.taken is not None and self.continuing is not None:
            self.continuing.taken(work.taken, self.host.record)

    def snapshot(self) -> OutboxSnapshot:
        return self.outbox.snapshot()

    def restore(self, snapshot: OutboxSnapshot) -> None:
        self.outbox.restore(snapshot)

    # -- what a transition hands to the workers ---------------------------------------------

    def left_to_workers(self, step: StepDefinition) -> bool:
        """A PENDING_ASYNC/PARALLEL step runs only under a worker's claim on it: True when this
        object holds none (a client resuming, a duplicate), so it must not run the step."""
        return self.host.status in ON_WORKER and not self.holds(
            step.name, RunKind.STEP, RunKind.JOIN
        )

    def hand_on(self) -> bool:
        """A step completed: fold what comes next into the same save.

        In a client (no claim: e.g. a resume) the workers take the workflow from here: an
        advance run is enqueued and True returned (this process stops). On a worker, when the
        next step goes to the workers anyway (ASYNC, PARALLEL), its dispatch joins this save,
        sparing a commit and a broker hop per step.
        """
        record = self.host.record
        if self.claim is None:
            self.enqueue(
                RunKind.ADVANCE, record.current_step_name or "", branch=f"v{record.version + 1}"
            )
            return True
        self.dispatch_ahead()
        return False

    def start(self) -> None:
        """A new workflow (not stored yet): what its creation enqueues.

        The first step's own dispatch when the workers run it (ASYNC, PARALLEL: no hop through
        an advance run), else an advance run that starts it on a worker.
        """
        if not self.dispatch_ahead():
            record = self.host.record
            self.enqueue(RunKind.ADVANCE, record.current_step_name or "", branch="start")

    def dispatch_ahead(self) -> bool:
        """Suspend into the current step now if the workers run it; True if it did.

        Exactly what the step's transition would do, done ahead so it joins the pending save.
        Anything unusual (an iteration limit, fan-out items that do not resolve, nothing to
        fan out) is left to that transition, which reports it properly.
        """
        host = self.host
        following = host.definition.steps[host.record.current_step]
        if following.max_iterations:
            return False
        runtime = host.record.runtime
        runs = runtime.setdefault("runs", {})
        before = runs.get(following.name)
        runs[following.name] = (before or 0) + 1
        try:
            suspended = host.handlers[following.type].dispatch_ahead(host, following, None)
        except Exception:
            suspended = None
        if suspended is None:
            if before is None:
                del runs[following.name]
                if not runs:
                    del runtime["runs"]
            else:
                runs[following.name] = before
            return False
        host.suspend(suspended.status, following)
        return True

    def report_to_parent(self) -> None:
        """A child's terminal save also enqueues its parent's resumption (one transaction)."""
        host = self.host
        record = host.record
        if not (
            record.status.is_terminal and record.parent_execution_id and host.reports_to_parent
        ):
            return
        host.reports_to_parent = False  # once: a terminal workflow is not saved again
        self.enqueue(
            RunKind.ADVANCE,
            "",
            branch=f"child:{record.id}",
            workflow_id=record.parent_execution_id,
        )
