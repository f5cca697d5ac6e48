"""The transition machinery behind :class:`ruvon.workflow.Workflow`.

The engine only knows the provider protocols: where state lives is the persistence provider's
business, how a function runs is the execution provider's. Each call to ``next_step`` performs
one transition (plus the ones ``automate_next`` chains), and every transition is one fenced save:
state, status, position and its audit rows together.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from ruvon.clock import utc_now
from ruvon.definitions.definition import WorkflowDefinition
from ruvon.definitions.schema import StepDefinition
from ruvon.distributed.outbox import RunOutbox
from ruvon.distributed.transitions import DistributedTransitions
from ruvon.errors import (
    ChildWorkflowFailed,
    ConcurrencyConflict,
    InputValidationError,
    InvalidWorkflowOperation,
    IterationLimitExceeded,
    PersistenceError,
    RuvonError,
    StateValidationError,
    WorkerCrashed,
)
from ruvon.lifecycle import WorkflowEvents
from ruvon.models import (
    StartSubWorkflowDirective,
    WorkflowJumpDirective,
    WorkflowPauseDirective,
    WorkflowStatus,
)
from ruvon.records import AuditEntry, ExecutionLogEntry, WorkflowRecord
from ruvon.saga import compensate
from ruvon.state import StateKeeper
from ruvon.steps.base import Advance, Jump, StepOutcome, Suspend
from ruvon.steps.registry import handler_for
from ruvon.transition_snapshot import restore_snapshot, take_snapshot

if TYPE_CHECKING:
    from ruvon.builder import WorkflowBuilder
    from ruvon.providers.execution import ExecutionProvider
    from ruvon.providers.observer import WorkflowObserver
    from ruvon.providers.persistence import PersistenceProvider
    from ruvon.workflow import Workflow

logger = logging.getLogger("ruvon.workflow")

WAITING = (WorkflowStatus.WAITING_HUMAN, WorkflowStatus.WAITING_TIMER)
_NOT_THIS_WORKER = (ChildWorkflowFailed, WorkerCrashed)


class WorkflowEngine(DistributedTransitions):
    """Transitions of one workflow: run or resume the current step, commit the outcome.

    :class:`~ruvon.workflow.Workflow` is the public face; this base class holds the state
    machine it drives, so each file keeps to one concern.
    """

    def __init__(
        self,
        record: WorkflowRecord,
        definition: WorkflowDefinition,
        *,
        persistence: PersistenceProvider,
        execution: ExecutionProvider,
        observer: WorkflowObserver,
        builder: WorkflowBuilder,
    ) -> None:
        self._record = record
        self.definition = definition
        self.persistence = persistence
        self.execution = execution
        self.observer = observer
        self.builder = builder
        self._states = StateKeeper(definition.state_model, record.state, workflow_id=record.id)
        self.events = WorkflowEvents(observer, record.id, record.workflow_type)
        self._pending_audit: list[AuditEntry] = []
        self._last_result: dict[str, Any] | None = None
        self._lock = asyncio.Lock()
        self._step_started_at = time.perf_counter()
        # Set while a parent runs this child in-process, so the child does not report to a
        # second copy of the parent (the running one applies the result itself).
        self.reports_to_parent = True
        # Distributed mode (an execution provider that dispatches step runs, e.g. Celery):
        # work goes to workers as durable runs, committed with the transition that asks for it.
        self.outbox: RunOutbox | None = (
            RunOutbox(cast("Any", execution))
            if getattr(type(execution), "dispatches_runs", False)
            else None
        )

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def workflow_type(self) -> str:
        return self._record.workflow_type

    @property
    def status(self) -> WorkflowStatus:
        return self._record.status

    @property
    def state(self) -> Any:
        """The state: an instance of the workflow's pydantic model, or a dict."""
        return self._states.value

    @property
    def record(self) -> WorkflowRecord:
        """The stored form (read it, do not mutate it)."""
        return self._record

    @property
    def steps(self) -> tuple[StepDefinition, ...]:
        return self.definition.steps

    def take_pending_audit(self) -> list[AuditEntry]:
        """The audit rows the next save would write, handed to the caller who writes them."""
        audit, self._pending_audit = self._pending_audit, []
        return audit

    def state_dict(self) -> dict[str, Any]:
        """State as a JSON-ready dict (includes changes a step made to ``state`` in place)."""
        return self._states.as_dict()

    async def save(self) -> None:
        """Persist the current record with the pending audit rows (fenced by ``version``).

        Distributed, the save also carries the outbox's step-run writes (claim fence, runs to
        enqueue) in its transaction, and announces the stored runs once it committed.
        """
        record = self._record
        record.state = self._states.plain()
        record.updated_at = utc_now()
        audit, self._pending_audit = self._pending_audit, []
        outbox = self.outbox
        work = restore = None
        if outbox is not None:
            restore = outbox.snapshot()
            self._enqueue_parent_report()
            work = outbox.writes(settles=record.status is not WorkflowStatus.ACTIVE)
        try:
            if work is None:
                await self.persistence.save_workflow(
                    record, expected_version=record.version, audit=audit
                )
            else:
                await self.persistence.save_workflow(
                    record, expected_version=record.version, audit=audit, work=work
                )
        except BaseException:
            self._pending_audit = audit + self._pending_audit
            if outbox is not None and restore is not None:
                outbox.restore(restore)
            raise
        if outbox is not None:
            outbox.committed(work)

    async def log(self, message: str, *, level: str = "INFO", step: str | None = None) -> None:
        """Attach a log line to this workflow (shown by ``ruvon logs``)."""
        await self.persistence.append_execution_log(
            ExecutionLogEntry(self.id, level, message, step_name=step)
        )

    # ------------------------------------------------------------------ engine internals
    @property
    def _workflow(self) -> Workflow:
        """This object as the public Workflow (the only concrete engine) for step handlers."""
        return cast("Workflow", self)

    def _is_due(self) -> bool:
        run_at = self._record.run_at
        return self.status in WAITING and run_at is not None and run_at <= utc_now()

    def _index_of(self, name: str) -> int:
        try:
            return self.definition.step_index[name]
        except KeyError:
            raise InvalidWorkflowOperation(
                f"workflow '{self.workflow_type}' has no step '{name}' "
                f"(steps: {', '.join(self.definition.step_index)})"
            ) from None

    async def _transition(
        self, user_input: dict[str, Any] | None
    ) -> tuple[dict[str, Any], str | None, bool]:
        """One transition. Returns (result, jump target, whether automate_next continues)."""
        record = self._record
        if record.current_step >= len(self.steps):
            await self._finish(WorkflowStatus.COMPLETED, "WORKFLOW_COMPLETED", {})
            return {}, None, False
        step = self.steps[record.current_step]
        handler = handler_for(step.type)
        self._step_started_at = time.perf_counter()
        if self.status in WAITING or self.status is WorkflowStatus.PENDING_SUB_WORKFLOW:
            if record.runtime.get("resume_after") and self.status is WorkflowStatus.WAITING_HUMAN:
                if user_input is None:
                    return {}, None, False
                return await self._resume_after_pause(step, user_input)
            outcome = await self._guard(
                step, lambda: handler.resume(self._workflow, step, user_input)
            )
            if outcome is None:
                waiting = {"status": str(self.status), "step": step.name}
                if record.run_at is not None:
                    waiting["run_at"] = record.run_at.isoformat()
                return waiting, None, False
            self._audit("STEP_RESUMED", step.name, {"input": user_input or {}})
        else:
            if self.status is WorkflowStatus.ACTIVE:
                # PENDING_ASYNC/PENDING_PARALLEL here means a crash interrupted this very run:
                # re-running it is another attempt (same run number, same idempotency key).
                await self._count_visit(step)
            elif self._owned_by_a_worker(step):
                return {"status": str(self.status), "step": step.name}, None, False
            outcome = await self._guard(
                step, lambda: handler.execute(self._workflow, step, user_input)
            )
        return await self._commit(step, outcome)

    async def _resume_after_pause(
        self, step: StepDefinition, user_input: dict[str, Any]
    ) -> tuple[dict[str, Any], str | None, bool]:
        """A step raised WorkflowPauseDirective: continue with the next step, given the input."""
        self._record.runtime.pop("resume_after", None)
        self._record.run_at = None
        self._record.current_step += 1
        self._set_status(WorkflowStatus.ACTIVE, "WORKFLOW_RESUMED", step=step.name)
        if self._record.current_step >= len(self.steps):
            await self._finish(WorkflowStatus.COMPLETED, "WORKFLOW_COMPLETED", {})
            return {}, None, False
        following = self.steps[self._record.current_step]
        await self._count_visit(following)
        handler = handler_for(following.type)
        outcome = await self._guard(
            following, lambda: handler.execute(self._workflow, following, user_input)
        )
        return await self._commit(following, outcome)

    async def _count_visit(self, step: StepDefinition) -> None:
        runs = self._record.runtime.setdefault("runs", {})
        runs[step.name] = runs.get(step.name, 0) + 1
        if step.max_iterations is not None and runs[step.name] > step.max_iterations:
            limit = IterationLimitExceeded(
                f"step '{step.name}' was entered {runs[step.name]} times, over its "
                f"max_iterations of {step.max_iterations}; the loop through it did not end"
            )
            # Outside _guard, so persist the failure here (like any other step failure).
            await self.fail(step, limit)
            raise limit

    def run_number(self, step_name: str) -> int:
        """How many times the step has been entered (stable across retries of one run)."""
        return int(self._record.runtime.get("runs", {}).get(step_name, 1))

    async def _guard(
        self,
        step: StepDefinition,
        call: Callable[[], Awaitable[StepOutcome | None]],
    ) -> Any:
        """Run handler code: directives become outcomes, failures fail the workflow."""
        try:
            return await call()
        except WorkflowJumpDirective as jump:
            return Jump(jump.target_step_name, jump.result)
        except WorkflowPauseDirective as pause:
            return Suspend(
                WorkflowStatus.WAITING_HUMAN,
                pause.result,
                waiting_for=pause.waiting_for,
                resume_after=True,
            )
        except StartSubWorkflowDirective as directive:
            from ruvon.steps.sub_workflow import start_child

            return await start_child(
                self._workflow,
                step,
                workflow_type=directive.workflow_type,
                initial_data=directive.initial_data,
                result=directive.result,
                owner_id=directive.owner_id,
                data_region=directive.data_region,
            )
        except Exception as exc:
            waiting = self.status is WorkflowStatus.WAITING_HUMAN
            if waiting and isinstance(exc, InputValidationError):
                # The person's input was wrong, not the workflow: it keeps waiting, unchanged.
                raise
            if isinstance(exc, PersistenceError):
                raise  # the database's failure, not the step's (see _commit)
            await self.fail(step, exc)
            raise

    async def _commit(
        self, step: StepDefinition, outcome: StepOutcome
    ) -> tuple[dict[str, Any], str | None, bool]:
        """Apply an outcome and save it as one transition, then run its follow-up (if any).

        If applying or saving fails, the in-memory workflow is put back to what is stored before
        the failure is recorded, so memory and storage never disagree.
        """
        record = self._record
        jump: str | None = None
        handed_off = False
        before = take_snapshot(self)
        try:
            if isinstance(outcome, Suspend):
                self.apply_result(outcome.result, step)
                record.run_at = outcome.run_at
                record.blocked_on_child_id = outcome.blocked_on_child_id
                if outcome.resume_after:
                    record.runtime["resume_after"] = True
                details = {"waiting_for": outcome.waiting_for} if outcome.waiting_for else {}
                self._set_status(outcome.status, "STEP_SUSPENDED", step=step.name, details=details)
            else:
                soft = isinstance(outcome, Advance) and outcome.soft_keys
                self.apply_result(outcome.result, step, soft=soft)
                if isinstance(outcome, Jump):
                    jump = outcome.target
                    target = self._index_of(jump)
                else:
                    target = record.current_step + 1
                self._complete_step(step, outcome.result, target)
                if record.current_step >= len(self.steps):
                    self._set_status(WorkflowStatus.COMPLETED, "WORKFLOW_COMPLETED", step=step.name)
                    record.completed_at = utc_now()
                elif self.outbox is not None:
                    handed_off = self._hand_on()
            await self.save()
        except ConcurrencyConflict:
            restore_snapshot(self, before)
            raise
        except StateValidationError as exc:
            restore_snapshot(self, before)
            error = exc
            if f"step '{step.name}'" not in str(exc):
                error = StateValidationError(
                    f"step '{step.name}' produced state that cannot be kept: {exc}"
                )
                error.__cause__ = exc
            await self.fail(step, error)
            raise error from None
        except PersistenceError:
            # The database failed, not the step: nothing is recorded (it could not be anyway).
            # Embedded, the caller sees the error and the workflow is as last saved; on a
            # worker, the run's lease expires and the next attempt carries on.
            restore_snapshot(self, before)
            raise
        except Exception as exc:
            restore_snapshot(self, before)
            await self.fail(step, exc)
            raise
        if isinstance(outcome, Suspend):
            if outcome.follow_up is None:
                return outcome.result, None, False
            following = await self._guard(step, outcome.follow_up)
            if following is None:
                return outcome.result, None, False
            return await self._commit(step, following)
        self._last_result = outcome.result
        self.events.step_completed(
            step, time.perf_counter() - self._step_started_at, outcome.result
        )
        if self.status.is_terminal:
            await self._after_terminal()
        return outcome.result, jump, step.automate_next and not handed_off

    def _complete_step(self, step: StepDefinition, result: dict[str, Any], target: int) -> None:
        record = self._record
        if step.compensate_function:
            record.completed_steps.append(step.name)
        record.run_at = None
        record.blocked_on_child_id = None
        record.current_step = target
        if self.status is not WorkflowStatus.ACTIVE:
            self._set_status(WorkflowStatus.ACTIVE, "WORKFLOW_RESUMED", step=step.name)
        details: dict[str, Any] = {"result": result}
        if target < len(self.steps):
            details["next_step"] = self.steps[target].name
        self._audit("STEP_COMPLETED", step.name, details)

    def apply_result(
        self, result: dict[str, Any], step: StepDefinition | None, *, soft: bool = False
    ) -> None:
        """Merge a step result into state and re-validate it (see :meth:`StateKeeper.apply`)."""
        self._states.apply(result, step, soft=soft)

    def _set_status(
        self,
        status: WorkflowStatus,
        event: str,
        *,
        step: str | None = None,
        old: WorkflowStatus | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        old = old or self._record.status
        self._record.status = status
        self._audit(event, step, details or {}, old=old, new=status)
        if old is not status:
            self.events.status_changed(str(old), str(status), step)

    def _audit(
        self,
        event: str,
        step: str | None,
        details: dict[str, Any],
        *,
        old: WorkflowStatus | None = None,
        new: WorkflowStatus | None = None,
    ) -> None:
        self._pending_audit.append(
            AuditEntry(
                self.id,
                event,
                step_name=step,
                old_status=str(old) if old else None,
                new_status=str(new) if new else None,
                details=details,
            )
        )

    def record_retry(
        self, step: StepDefinition, attempt: int, exc: BaseException, delay: float
    ) -> None:
        """Audit a failed attempt that will be retried after ``delay`` seconds."""
        self._audit(
            "STEP_RETRY",
            step.name,
            {"attempt": attempt, "error": f"{type(exc).__name__}: {exc}", "delay": round(delay, 3)},
        )

    async def fail(
        self,
        step: StepDefinition | None,
        exc: BaseException,
        *,
        status: WorkflowStatus = WorkflowStatus.FAILED,
    ) -> None:
        """Persist a failure: compensate first when saga mode is on."""
        if self.status.is_terminal:
            return
        if isinstance(exc, ConcurrencyConflict):
            # This copy is stale: the workflow belongs to the writer that won. Recording a
            # failure (or compensating) from here would undo work that actually succeeded.
            return
        if isinstance(exc, ChildWorkflowFailed):
            status = WorkflowStatus.FAILED_CHILD_WORKFLOW
        self._record.error = f"{type(exc).__name__}: {exc}"
        if self.outbox and self.outbox.claim and not isinstance(exc, _NOT_THIS_WORKER):
            # Which worker failed it (a child's error names its own; a crash is not the
            # sweeping worker's).
            self._record.error += f" [worker {self.outbox.claim.owner}]"
        step_name = step.name if step else None
        self._audit("STEP_FAILED", step_name, {"error": self._record.error})
        if self._record.saga_mode and self._record.completed_steps:
            await compensate(self._workflow)
            status = WorkflowStatus.FAILED_ROLLED_BACK
        await self._finish(status, "WORKFLOW_FAILED", {"error": self._record.error}, step=step_name)
        await self.log(self._record.error, level="ERROR", step=step_name)

    async def _finish(
        self,
        status: WorkflowStatus,
        event: str,
        details: dict[str, Any],
        *,
        step: str | None = None,
    ) -> None:
        self._record.completed_at = utc_now()
        self._record.run_at = None
        self._set_status(status, event, step=step, details=details)
        await self.save()
        await self._after_terminal()

    async def _after_terminal(self) -> None:
        if self.events.observes("on_workflow_finished"):
            self.events.finished(str(self.status), self._record.error, self.state_dict())
        if self._record.parent_execution_id and self.reports_to_parent and self.outbox is None:
            from ruvon.steps.sub_workflow import report_to_parent

            await report_to_parent(self._workflow)


def describe_error(exc: BaseException) -> str:
    """One line for an exception, used in logs and CLI output."""
    if isinstance(exc, RuvonError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
