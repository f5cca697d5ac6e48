"""The engine's distributed side: asking for step runs instead of running work in-process.

Mixed into :class:`ruvon.engine.WorkflowEngine`. With a dispatching execution provider
(Celery) the engine keeps a :class:`~ruvon.distributed.outbox.RunOutbox`; step handlers call
:meth:`DistributedTransitions.enqueue_run`, the engine's next save commits the runs, and a
PENDING_ASYNC/PARALLEL step only runs under a worker's claim on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from ruvon.distributed.outbox import RunOutbox
from ruvon.models import StepType, WorkflowStatus
from ruvon.providers.runs import RunKind, RunRequest

if TYPE_CHECKING:
    from ruvon.definitions.definition import WorkflowDefinition
    from ruvon.definitions.schema import StepDefinition
    from ruvon.records import WorkflowRecord
    from ruvon.workflow import Workflow

__all__ = ["ON_WORKER", "DistributedTransitions"]

#: Statuses in which a step belongs to the workers.
ON_WORKER = (WorkflowStatus.PENDING_ASYNC, WorkflowStatus.PENDING_PARALLEL)


class DistributedTransitions:
    """Step-run requests of one workflow object (inert without an outbox)."""

    # Provided by WorkflowEngine.
    outbox: RunOutbox | None
    reports_to_parent: bool
    _record: WorkflowRecord
    definition: WorkflowDefinition

    run_number: Callable[[str], int]
    _set_status: Callable[..., None]

    @property
    def distributed(self) -> bool:
        """True when steps run on remote workers (the execution provider dispatches runs)."""
        return self.outbox is not None

    def enqueue_run(
        self,
        kind: RunKind,
        step_name: str,
        *,
        queue: str | None = None,
        branch: str = "",
        run_number: int | None = None,
        workflow_id: str | None = None,
    ) -> None:
        """Ask for a step run, inserted by the next save (distributed mode only).

        The queue defaults to the step's own ``queue``, else the workflow's data region, else
        the provider's default; the run number to the step's current visit (1 for advance).
        """
        assert self.outbox is not None, "enqueue_run needs a dispatching execution provider"
        record = self._record
        if queue is None:
            index = self.definition.step_index.get(step_name) if workflow_id is None else None
            own = self.definition.steps[index].queue if index is not None else None
            queue = self.outbox.dispatcher.queue_for(own, record.data_region)
        if run_number is None:
            run_number = 1 if kind is RunKind.ADVANCE else self.run_number(step_name)
        self.outbox.requests.append(
            RunRequest(workflow_id or record.id, kind, step_name, run_number, branch, queue)
        )

    def _hand_on(self) -> bool:
        """A step completed, distributed: fold what comes next into the same save.

        In a client (no claim: e.g. a resume) the workers take the workflow from here: an
        advance run is enqueued and True returned (this process stops). On a worker, when the
        next step goes to the workers anyway (ASYNC, PARALLEL), its dispatch joins this save,
        sparing a commit and a broker hop per step.
        """
        assert self.outbox is not None
        record = self._record
        if self.outbox.claim is None:
            self.enqueue_run(
                RunKind.ADVANCE, record.current_step_name or "", branch=f"v{record.version + 1}"
            )
            return True
        self._dispatch_current()
        return False

    def start_on_workers(self) -> None:
        """A new distributed workflow (not stored yet): what its creation enqueues.

        The first step's own dispatch when it is ASYNC or PARALLEL (no hop through an advance
        run), else an advance run that starts it on a worker.
        """
        if not self._dispatch_current():
            record = self._record
            self.enqueue_run(RunKind.ADVANCE, record.current_step_name or "", branch="start")

    def _dispatch_current(self) -> bool:
        """Suspend into the current step now if it is ASYNC or PARALLEL; True if it did.

        Exactly what its handler would do on the next transition, done ahead so it joins the
        pending save. Anything unusual (an iteration limit, fan-out items that do not resolve,
        nothing to fan out) is left to that transition, which reports it properly.
        """
        record = self._record
        following = self.definition.steps[record.current_step]
        kind = following.type
        if kind not in (StepType.ASYNC, StepType.PARALLEL) or following.max_iterations:
            return False
        runs = record.runtime.setdefault("runs", {})
        runs[following.name] = runs.get(following.name, 0) + 1
        if kind is StepType.ASYNC:
            self.enqueue_run(RunKind.STEP, following.name)
            status = WorkflowStatus.PENDING_ASYNC
        else:
            from ruvon.steps.parallel import fan_out

            try:
                suspended = fan_out(cast("Workflow", self), following)
            except Exception:
                suspended = None
            if suspended is None:
                runs[following.name] -= 1
                return False
            status = WorkflowStatus.PENDING_PARALLEL
        self._set_status(status, "STEP_SUSPENDED", step=following.name)
        return True

    def _enqueue_parent_report(self) -> None:
        """A child's terminal save also enqueues its parent's resumption (one transaction)."""
        record = self._record
        if not (
            record.status.is_terminal and record.parent_execution_id and self.reports_to_parent
        ):
            return
        self.reports_to_parent = False  # once: a terminal workflow is not saved again
        self.enqueue_run(
            RunKind.ADVANCE,
            "",
            branch=f"child:{record.id}",
            workflow_id=record.parent_execution_id,
        )

    def _owned_by_a_worker(self, step: StepDefinition) -> bool:
        """Distributed: a PENDING_ASYNC/PARALLEL step runs only under a worker's claim on it."""
        outbox = self.outbox
        return (
            outbox is not None
            and self._record.status in ON_WORKER
            and not outbox.holds(step.name, RunKind.STEP, RunKind.JOIN)
        )
