"""The state machine of one workflow: run or resume the current step, commit the outcome.

The engine only knows the provider protocols: where state lives is the persistence provider's
business, how a function runs is the execution provider's. It is *handed* what varies: the
handler of each step kind, the factory of child workflows, and (on a cluster) its distributed
part. Each transition is one fenced save: state, status, position and its audit rows together;
on a cluster the same save carries the claim fence and the runs the transition asks for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from ruvon.clock import utc_now
from ruvon.definitions.definition import WorkflowDefinition
from ruvon.definitions.injection import matched_rules
from ruvon.definitions.schema import QueueLimits, StepDefinition
from ruvon.engine.admission import admit_workflow, release_workflow
from ruvon.engine.children import report_to_parent, start_child
from ruvon.engine.deadline import past_deadline
from ruvon.engine.deadline import timeout_error as deadline_error
from ruvon.engine.distribution import Distribution
from ruvon.engine.outcomes import Advance, Jump, StepHandler, StepOutcome, Suspend
from ruvon.engine.runtime import ChildFactory
from ruvon.engine.saga import compensate
from ruvon.engine.scope import WorkflowScope
from ruvon.engine.snapshot import TransitionSnapshot
from ruvon.engine.tracebacks import format_traceback
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
    WorkflowTimeoutError,
)
from ruvon.models import (
    StartSubWorkflowDirective,
    StepType,
    WorkflowJumpDirective,
    WorkflowPauseDirective,
    WorkflowStatus,
)
from ruvon.providers.execution import ExecutionProvider
from ruvon.providers.observer import WorkflowObserver
from ruvon.providers.persistence import PersistenceProvider
from ruvon.records import WorkflowRecord
from ruvon.serialization import check_storable

__all__ = ["WAITING", "WorkflowEngine"]

logger = logging.getLogger("ruvon.workflow")

WAITING = (WorkflowStatus.WAITING_HUMAN, WorkflowStatus.WAITING_TIMER)
_NOT_THIS_WORKER = (ChildWorkflowFailed, WorkerCrashed)


class WorkflowEngine(WorkflowScope):
    """Transitions of one workflow; implements :class:`~ruvon.engine.runtime.StepRuntime`.

    :class:`~ruvon.workflow.Workflow` is the public face that wires the default handlers in.
    """

    #: The handler of each step kind, unless the constructor is handed others (the engine
    #: knows none itself: a subclass or the caller supplies them).
    default_handlers: ClassVar[Mapping[StepType, StepHandler]] = MappingProxyType({})

    def __init__(
        self,
        record: WorkflowRecord,
        definition: WorkflowDefinition,
        *,
        persistence: PersistenceProvider,
        execution: ExecutionProvider,
        observer: WorkflowObserver,
        children: ChildFactory,
        distribution: Distribution | None = None,
        handlers: Mapping[StepType, StepHandler] | None = None,
        queue_limits: Mapping[str, QueueLimits] | None = None,
    ) -> None:
        super().__init__(
            record,
            definition,
            persistence=persistence,
            execution=execution,
            observer=observer,
            children=children,
            distribution=distribution,
        )
        self.handlers = self.default_handlers if handlers is None else handlers
        # The registry's limits per queue (ruvon.engine.admission gates the steps on them).
        self.queue_limits: Mapping[str, QueueLimits] = queue_limits or {}
        self._lock = asyncio.Lock()
        self._step_started_at = time.perf_counter()
        # Set while a parent runs this child in-process, so the child does not report to a
        # second copy of the parent (the running one applies the result itself).
        self.reports_to_parent = True
        if distribution is not None:
            distribution.bind(self)

    async def checkpoint(self, event: str, step: StepDefinition, details: dict[str, Any]) -> None:
        """Save progress inside a long step (e.g. after each LOOP iteration)."""
        self._audit(event, step.name, details)
        await self.save()

    def suspend(self, status: WorkflowStatus, step: StepDefinition) -> None:
        """Move into ``status`` at ``step`` for the pending save (a step handed to workers)."""
        self._set_status(status, "STEP_SUSPENDED", step=step.name)

    # ------------------------------------------------------------------ persistence
    async def save(self) -> None:
        """Persist the current record with the pending audit rows (fenced by ``version``).

        Distributed, the save also carries the step-run writes (claim fence, runs to enqueue)
        in its transaction, and announces the stored runs once it committed.
        """
        record = self._record
        record.state = self._states.plain()
        record.updated_at = utc_now()
        audit, self._pending_audit = self._pending_audit, []
        compensations, self._pending_compensations = self._pending_compensations, []
        distribution = self.distribution
        work = restore = None
        if distribution is not None:
            restore = distribution.snapshot()
            distribution.report_to_parent()
            work = distribution.writes(settles=record.status is not WorkflowStatus.ACTIVE)
        try:
            if work is None and not compensations:
                await self.persistence.save_workflow(
                    record, expected_version=record.version, audit=audit
                )
            else:
                await self.persistence.save_workflow(
                    record,
                    expected_version=record.version,
                    audit=audit,
                    work=work,
                    compensations=compensations,
                )
        except BaseException:
            self._pending_audit = audit + self._pending_audit
            self._pending_compensations = compensations + self._pending_compensations
            if distribution is not None and restore is not None:
                distribution.restore(restore)
            raise
        if distribution is not None:
            distribution.committed(work)

    # ------------------------------------------------------------------ transitions
    def _is_due(self) -> bool:
        if self.status not in WAITING:
            return False
        run_at = self._record.run_at
        return (run_at is not None and run_at <= utc_now()) or past_deadline(self._record)

    async def _fail_past_deadline(self) -> None:
        """Fail the workflow (compensating under saga mode) if its deadline has passed."""
        record = self._record
        if not past_deadline(record) or self.status.is_terminal:
            return
        step = self.steps[record.current_step] if record.current_step < len(self.steps) else None
        error = deadline_error(record, step.name if step else None)
        await self.fail(step, error)
        raise error

    async def _admit(self) -> None:
        """Take the workflow's concurrency slot before its first step (waiting for one)."""
        try:
            await admit_workflow(self)
        except RuvonError as exc:  # its key cannot be rendered: nothing can ever admit it
            await self.fail(None, exc)
            raise

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
        # Every transition starts at a step boundary: the deadline is checked there first.
        await self._fail_past_deadline()
        if self.definition.spec.concurrency is not None and "admitted" not in record.runtime:
            await self._admit()
        if record.current_step >= len(self.steps):
            await self._finish(WorkflowStatus.COMPLETED, "WORKFLOW_COMPLETED", {})
            return {}, None, False
        step = self.steps[record.current_step]
        handler = self.handlers[step.type]
        self._step_started_at = time.perf_counter()
        if self.status in WAITING or self.status is WorkflowStatus.PENDING_SUB_WORKFLOW:
            if record.runtime.get("resume_after") and self.status is WorkflowStatus.WAITING_HUMAN:
                if user_input is None:
                    return {}, None, False
                return await self._resume_after_pause(step, user_input)
            outcome = await self._guard(step, lambda: handler.resume(self, step, user_input))
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
            elif self.distribution is not None and self.distribution.left_to_workers(step):
                return {"status": str(self.status), "step": step.name}, None, False
            outcome = await self._guard(step, lambda: self._enter(handler, step, user_input))
        return await self._commit(step, outcome)

    async def _enter(
        self, handler: StepHandler, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        """Run a step: on a cluster, arriving at a step the workers run hands it to them."""
        if self.distribution is not None and self.status is WorkflowStatus.ACTIVE:
            ahead = handler.dispatch_ahead(self, step, user_input)
            if ahead is not None:
                return ahead
        return await handler.execute(self, step, user_input)

    async def _resume_after_pause(
        self, step: StepDefinition, user_input: dict[str, Any]
    ) -> tuple[dict[str, Any], str | None, bool]:
        """A step raised WorkflowPauseDirective: continue with the next step, given the input."""
        self._record.runtime.pop("resume_after", None)
        self._record.run_at = None
        self._record.current_step = self._following_index(step)
        self._set_status(WorkflowStatus.ACTIVE, "WORKFLOW_RESUMED", step=step.name)
        if self._record.current_step >= len(self.steps):
            await self._finish(WorkflowStatus.COMPLETED, "WORKFLOW_COMPLETED", {})
            return {}, None, False
        following = self.steps[self._record.current_step]
        await self._count_visit(following)
        handler = self.handlers[following.type]
        outcome = await self._guard(following, lambda: self._enter(handler, following, user_input))
        return await self._commit(following, outcome)

    def _following_index(self, step: StepDefinition) -> int:
        """Where the workflow goes after ``step`` completes: the next step in order.

        ``step``'s dynamic_injection rules are tried on the state it left (each match audited
        as ``DYNAMIC_INJECTION`` and recorded in ``runtime``, saved with this transition);
        inserted steps whose rule did not match are passed over.
        """
        runtime = self._record.runtime
        active = list(runtime.get("injected", ()))
        if step.dynamic_injection is not None:
            active = [key for key in active if key.rpartition("#")[0] != step.name]
            for r, value in matched_rules(step, self._states.as_dict()):
                rule = step.dynamic_injection.rules[r]
                active.append(f"{step.name}#{r}")
                self._audit(
                    "DYNAMIC_INJECTION",
                    step.name,
                    {
                        "rule": r,
                        "condition_key": rule.condition_key,
                        "value": value,
                        "inserted": [s.name for s in rule.steps_to_insert],
                    },
                )
            if active:
                runtime["injected"] = active  # a new list: the transition snapshot copied the old
            else:
                runtime.pop("injected", None)
        target = self._record.current_step + 1
        while target < len(self.steps):
            origin = self.steps[target].injected_by
            if origin is None or origin.key in active:
                break
            target += 1
        return target

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
            return await start_child(
                self,
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
        before = TransitionSnapshot.capture(
            record, self._states, self._pending_audit, self.distribution
        )
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
                    target = self._following_index(step)
                self._complete_step(step, outcome.result, target)
                if record.current_step >= len(self.steps):
                    self._set_status(WorkflowStatus.COMPLETED, "WORKFLOW_COMPLETED", step=step.name)
                    record.completed_at = utc_now()
                elif self.distribution is not None:
                    handed_off = self.distribution.hand_on()
            await self.save()
        except ConcurrencyConflict:
            self._pending_audit = before.restore(record, self._states, self.distribution)
            raise
        except StateValidationError as exc:
            self._pending_audit = before.restore(record, self._states, self.distribution)
            await self._drop_unstorable_state()
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
            self._pending_audit = before.restore(record, self._states, self.distribution)
            raise
        except Exception as exc:
            self._pending_audit = before.restore(record, self._states, self.distribution)
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
        # Where and how long it ran, for `ruvon start --wait` and `ruvon show` on a cluster: the
        # row commits with the step, so a reader of the audit log sees each step exactly once.
        details["duration_ms"] = round((time.perf_counter() - self._step_started_at) * 1000, 1)
        claim = self.distribution.claim if self.distribution is not None else None
        if claim is not None:
            details["worker"], details["queue"] = claim.owner, claim.queue
        self._audit("STEP_COMPLETED", step.name, details)

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
        worker = self.distribution.worker if self.distribution is not None else None
        if worker is not None and not isinstance(exc, _NOT_THIS_WORKER):
            # Which worker failed it (a child's error names its own; a crash is not the
            # sweeping worker's).
            self._record.error += f" [worker {worker}]"
        step_name = step.name if step else None
        if isinstance(exc, WorkflowTimeoutError) and self._record.deadline_at is not None:
            deadline = self._record.deadline_at.isoformat()
            self._audit(
                "WORKFLOW_TIMED_OUT", step_name, {"timeout": exc.timeout, "deadline": deadline}
            )
        self._audit("STEP_FAILED", step_name, self._failure_details(exc))
        if self._record.saga_mode and self._record.completed_steps:
            await compensate(self)
            status = WorkflowStatus.FAILED_ROLLED_BACK
        await self._finish(status, "WORKFLOW_FAILED", {"error": self._record.error}, step=step_name)
        await self.log(self._record.error, level="ERROR", step=step_name)

    def _failure_details(self, exc: BaseException) -> dict[str, Any]:
        """STEP_FAILED's details: the error, the traceback of a raised one, and on a cluster
        the run and attempt that failed (so the history can pair it with its step run)."""
        details: dict[str, Any] = {"error": self._record.error}
        # A child's failure or a lost worker was never raised here: no frames to show.
        if exc.__traceback__ is not None and not isinstance(exc, _NOT_THIS_WORKER):
            details["traceback"] = format_traceback(exc)
        claim = self.distribution.claim if self.distribution is not None else None
        if claim is not None:
            details["run"], details["attempt"] = claim.run_id, claim.attempt
            details["worker"], details["queue"] = claim.owner, claim.queue
        return details

    async def _drop_unstorable_state(self) -> None:
        """Go back to the state as stored if what the snapshot restored still cannot be stored.

        Dict state a step changed in place (``state["tags"] = {"a"}``) is the very dict the
        snapshot holds, so restoring it restores nothing; saving the failure would then fail on
        the same value. Only on this failure path, so the extra encoding costs nothing otherwise.
        """
        try:
            check_storable(self._states.plain(), what="state")
        except StateValidationError:
            stored = await self.persistence.load_workflow(self.id)
            self._states.value = self._states.validate(stored.state, step=None, fresh=True)

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
        if "admitted" in self._record.runtime:
            await release_workflow(self)
        if self.events.observes("on_workflow_finished"):
            self.events.finished(str(self.status), self._record.error, self.state_dict())
        # Distributed, the terminal save itself enqueued the parent's resumption.
        if self._record.parent_execution_id and self.reports_to_parent and not self.distribution:
            await report_to_parent(self)
