"""The workflow state machine, driven by :meth:`Workflow.next_step`.

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
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ruvon.definitions.definition import WorkflowDefinition
from ruvon.definitions.schema import StepDefinition
from ruvon.errors import (
    ChildWorkflowFailed,
    ConcurrencyConflict,
    InputValidationError,
    InvalidWorkflowOperation,
    IterationLimitExceeded,
    RuvonError,
    StateValidationError,
)
from ruvon.expressions import evaluate_expression
from ruvon.merge import MergeConflictBehavior, MergeStrategy, merge_results
from ruvon.models import (
    StartSubWorkflowDirective,
    StepContext,
    WorkflowJumpDirective,
    WorkflowPauseDirective,
    WorkflowStatus,
    make_step_context,
)
from ruvon.providers import observer as events
from ruvon.providers.observer import BaseObserver
from ruvon.records import AuditEntry, ExecutionLogEntry, WorkflowRecord, utc_now
from ruvon.saga import compensate
from ruvon.steps.base import Advance, Jump, StepOutcome, Suspend
from ruvon.steps.registry import handler_for
from ruvon.templating import render_value

if TYPE_CHECKING:
    from ruvon.builder import WorkflowBuilder
    from ruvon.providers.execution import ExecutionProvider
    from ruvon.providers.observer import WorkflowObserver
    from ruvon.providers.persistence import PersistenceProvider

logger = logging.getLogger("ruvon.workflow")

_WAITING = (WorkflowStatus.WAITING_HUMAN, WorkflowStatus.WAITING_TIMER)


class _Done:
    """An already-finished awaitable, so ``enable_saga_mode()`` works with or without await."""

    def __await__(self) -> Any:
        return iter(())


class Workflow:
    """One running workflow instance.

    Build it with :class:`ruvon.builder.WorkflowBuilder` (``create_workflow`` / ``load_workflow``);
    then call ``await workflow.next_step(user_input=...)`` until the status is terminal, or
    ``await workflow.run()`` to go as far as possible.
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
        self._state: Any = self._validate_state(record.state, step=None)
        self._pending_audit: list[AuditEntry] = []
        self._last_result: dict[str, Any] | None = None
        self._lock = asyncio.Lock()
        self._step_started_at = time.perf_counter()
        # Set while a parent runs this child in-process, so the child does not report to a
        # second copy of the parent (the running one applies the result itself).
        self.reports_to_parent = True

    # ------------------------------------------------------------------ read-only view
    @property
    def id(self) -> str:
        return self._record.id

    @property
    def workflow_type(self) -> str:
        return self._record.workflow_type

    @property
    def workflow_version(self) -> str | None:
        return self._record.workflow_version

    @property
    def status(self) -> WorkflowStatus:
        return self._record.status

    @property
    def state(self) -> Any:
        """The state: an instance of the workflow's pydantic model, or a dict."""
        return self._state

    @property
    def record(self) -> WorkflowRecord:
        """The stored form (read it, do not mutate it)."""
        return self._record

    @property
    def steps(self) -> tuple[StepDefinition, ...]:
        return self.definition.steps

    @property
    def current_step_index(self) -> int:
        return self._record.current_step

    @property
    def current_step(self) -> str | None:
        """Name of the step the workflow is at (None once it ran past the last step)."""
        return self._record.current_step_name

    @property
    def definition_snapshot(self) -> dict[str, Any]:
        return self._record.definition_snapshot

    @property
    def saga_mode_enabled(self) -> bool:
        return self._record.saga_mode

    @property
    def parent_execution_id(self) -> str | None:
        return self._record.parent_execution_id

    @property
    def error(self) -> str | None:
        return self._record.error

    @property
    def sub_workflow_results(self) -> dict[str, Any]:
        """Results of finished children, keyed by child workflow id."""
        return dict(self._record.runtime.get("sub_workflow_results", {}))

    def state_dict(self) -> dict[str, Any]:
        """State as a JSON-ready dict (includes changes a step made to ``state`` in place)."""
        if isinstance(self._state, BaseModel):
            return self._state.model_dump(mode="json")
        return dict(self._state)

    def __repr__(self) -> str:
        return f"<Workflow {self.workflow_type} {self.id} {self.status} at {self.current_step}>"

    # ------------------------------------------------------------------ public operations
    def enable_saga_mode(self) -> Awaitable[None]:
        """Turn on compensation for this instance (persisted with the next save)."""
        self._record.saga_mode = True
        return _Done()

    async def next_step(
        self, user_input: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], str | None]:
        """Perform the next transition; returns (step result, jump target or None).

        A step failure is persisted (FAILED, or FAILED_ROLLED_BACK after compensation) and then
        re-raised to the caller. Calling it on a terminal workflow raises
        ``InvalidWorkflowOperation``.
        """
        async with self._lock:
            if self.status.is_terminal:
                raise InvalidWorkflowOperation(
                    f"workflow '{self.id}' is {self.status}; it has nothing left to run "
                    "(use `ruvon retry` to re-run a FAILED workflow)"
                )
            result, jump, chain = await self._transition(user_input)
            while chain and self.status is WorkflowStatus.ACTIVE:
                result, jump, chain = await self._transition(None)
            return result, jump

    async def run(self, *, max_transitions: int = 100_000) -> WorkflowStatus:
        """Advance as far as possible; stop at a wait that is not due, or a terminal status.

        A workflow found PENDING_ASYNC / PENDING_PARALLEL (its process died mid-step) runs that
        step again; one PENDING_SUB_WORKFLOW checks on its child. Step failures do not raise
        here: they are persisted and visible in ``status`` / ``error``.
        """
        for _ in range(max_transitions):
            status = self.status
            if status.is_terminal or (status in _WAITING and not self._is_due()):
                break
            version = self._record.version
            try:
                await self.next_step()
            except Exception:
                if not self.status.is_terminal:
                    raise
                break
            if self.status is status and self._record.version == version:
                break  # nothing moved: the workflow waits on something outside it
        return self.status

    async def resume(
        self, user_input: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], str | None]:
        """Resume a waiting workflow with ``user_input`` (alias of ``next_step``)."""
        return await self.next_step(user_input=user_input if user_input is not None else {})

    async def cancel(self, reason: str | None = None) -> None:
        """Move to CANCELLED (no compensation); a terminal workflow cannot be cancelled."""
        async with self._lock:
            if self.status.is_terminal:
                raise InvalidWorkflowOperation(f"workflow '{self.id}' is already {self.status}")
            self._record.error = reason
            await self._finish(WorkflowStatus.CANCELLED, "WORKFLOW_CANCELLED", {"reason": reason})

    async def retry(self) -> None:
        """Re-activate a FAILED workflow at the step that failed (an operator's decision)."""
        async with self._lock:
            retryable = (
                WorkflowStatus.FAILED,
                WorkflowStatus.FAILED_WORKER_CRASH,
                WorkflowStatus.FAILED_CHILD_WORKFLOW,
            )
            if self.status not in retryable:
                raise InvalidWorkflowOperation(
                    f"workflow '{self.id}' is {self.status}; only "
                    f"{', '.join(retryable)} workflows can be retried"
                )
            old = self.status
            self._record.error = None
            self._record.completed_at = None
            self._record.blocked_on_child_id = None
            self._set_status(WorkflowStatus.ACTIVE, "WORKFLOW_RETRIED", old=old)
            await self.save()

    async def jump_to_step(self, target_step_name: str) -> None:
        """Move the workflow to ``target_step_name`` without running anything."""
        async with self._lock:
            self._record.current_step = self._index_of(target_step_name)
            self._audit("JUMPED", target_step_name, {"manual": True})
            await self.save()

    async def save(self) -> None:
        """Persist the current record with the pending audit rows (fenced by ``version``)."""
        record = self._record
        record.state = self._plain_state()
        record.updated_at = utc_now()
        audit, self._pending_audit = self._pending_audit, []
        try:
            await self.persistence.save_workflow(
                record, expected_version=record.version, audit=audit
            )
        except BaseException:
            self._pending_audit = audit + self._pending_audit
            raise

    async def log(self, message: str, *, level: str = "INFO", step: str | None = None) -> None:
        """Attach a log line to this workflow (shown by ``ruvon logs``)."""
        await self.persistence.append_execution_log(
            ExecutionLogEntry(self.id, level, message, step_name=step)
        )

    # ------------------------------------------------------------------ engine internals
    def _is_due(self) -> bool:
        run_at = self._record.run_at
        return self.status in _WAITING and run_at is not None and run_at <= utc_now()

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
        if self.status in _WAITING or self.status is WorkflowStatus.PENDING_SUB_WORKFLOW:
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
            outcome = await self._guard(step, lambda: handler.execute(self, step, user_input))
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
        outcome = await self._guard(following, lambda: handler.execute(self, following, user_input))
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
        before = self._snapshot()
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
            await self.save()
        except ConcurrencyConflict:
            self._restore(before)
            raise
        except StateValidationError as exc:
            self._restore(before)
            error = exc
            if f"step '{step.name}'" not in str(exc):
                error = StateValidationError(
                    f"step '{step.name}' produced state that cannot be kept: {exc}"
                )
                error.__cause__ = exc
            await self.fail(step, error)
            raise error from None
        except Exception as exc:
            self._restore(before)
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
        if self.observes("on_step_completed"):
            self.notify(
                "on_step_completed",
                events.StepCompleted(
                    self.id,
                    self.workflow_type,
                    step.name,
                    str(step.type),
                    time.perf_counter() - self._step_started_at,
                    outcome.result,
                ),
            )
        if self.status.is_terminal:
            await self._after_terminal()
        return outcome.result, jump, step.automate_next

    def _snapshot(self) -> tuple[Any, ...]:
        record = self._record
        return (
            self._state,
            record.current_step,
            record.status,
            list(record.completed_steps),
            record.run_at,
            record.blocked_on_child_id,
            _copy_two_levels(record.runtime),
            record.completed_at,
            record.error,
            list(self._pending_audit),
        )

    def _restore(self, snapshot: tuple[Any, ...]) -> None:
        record = self._record
        (
            self._state,
            record.current_step,
            record.status,
            record.completed_steps,
            record.run_at,
            record.blocked_on_child_id,
            record.runtime,
            record.completed_at,
            record.error,
            self._pending_audit,
        ) = snapshot

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
        """Merge a step result into state and re-validate it against the state model.

        ``soft`` drops keys the state model does not declare (engine-written keys such as
        ``sub_workflow_results``) instead of rejecting them.
        """
        if not result:
            # Still re-validate: a step may have changed ``state`` in place.
            if isinstance(self._state, BaseModel):
                self._state = self._validate_state(self.state_dict(), step=step)
            return
        model = self.definition.state_model
        if issubclass(model, BaseModel) and model.model_config.get("extra") != "allow":
            unknown = [key for key in result if key not in model.model_fields]
            if unknown and soft:
                result = {k: v for k, v in result.items() if k in model.model_fields}
            elif unknown:
                raise StateValidationError(
                    f"step '{step.name if step else '?'}' returned key(s) {', '.join(unknown)} "
                    f"that state model {model.__name__} does not declare; add the field(s) to "
                    "the model (or set model_config extra='allow')"
                )
        strategy = step.merge_strategy if step else MergeStrategy.SHALLOW
        conflict = step.merge_conflict_behavior if step else MergeConflictBehavior.PREFER_NEW
        current = self._plain_state()
        if strategy is MergeStrategy.SHALLOW and conflict is MergeConflictBehavior.PREFER_NEW:
            # The default, on the hot path: the merged dict is new, and persistence serializes
            # it on save, so nothing can alias stored state.
            merged = {**current, **result}
        else:
            context = f"step '{step.name}'" if step else ""
            merged = merge_results(current, result, strategy, conflict, context=context)
        self._state = self._validate_state(merged, step=step, fresh=True)

    def _plain_state(self) -> dict[str, Any]:
        """State as a dict for merging and saving; for dict state, the live dict (no copy)."""
        state = self._state
        if isinstance(state, BaseModel):
            return state.model_dump(mode="json")
        return state  # type: ignore[no-any-return]

    def _validate_state(
        self, data: dict[str, Any], *, step: StepDefinition | None, fresh: bool = False
    ) -> Any:
        model = self.definition.state_model
        if not issubclass(model, BaseModel):
            return data if fresh else dict(data)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            where = f"after step '{step.name}'" if step else "as stored"
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
                for err in exc.errors()[:5]
            )
            raise StateValidationError(
                f"state of workflow '{self.id}' fails {model.__name__} {where}: {problems}"
            ) from exc

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
            self.notify(
                "on_status_changed",
                events.StatusChanged(self.id, self.workflow_type, str(old), str(status), step),
            )

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
        step_name = step.name if step else None
        self._audit("STEP_FAILED", step_name, {"error": self._record.error})
        if self._record.saga_mode and self._record.completed_steps:
            await compensate(self)
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
        self.notify(
            "on_workflow_finished",
            events.WorkflowFinished(
                self.id, self.workflow_type, str(self.status), self._record.error, self.state_dict()
            ),
        )
        if self._record.parent_execution_id and self.reports_to_parent:
            from ruvon.steps.sub_workflow import report_to_parent

            await report_to_parent(self)

    # ------------------------------------------------------------------ helpers for steps
    def make_context(self, step: StepDefinition, **extra: Any) -> StepContext:
        """The StepContext handed to a step function."""
        run = self.run_number(step.name)
        base: dict[str, Any] = {
            "workflow_id": self.id,
            "step_name": step.name,
            "previous_step_result": self._last_result,
            "workflow_type": self.workflow_type,
            "idempotency_key": f"{self.id}:{step.name}:{run}",
            "parent_execution_id": self._record.parent_execution_id,
        }
        base.update(extra)
        return make_step_context(base)

    def template_variables(self) -> dict[str, Any]:
        """Names available to templates: state, parameters, workflow id and type."""
        return {
            "state": self.state_dict(),
            "parameters": self.definition.spec.parameters,
            "workflow_id": self.id,
            "workflow_type": self.workflow_type,
        }

    def render(self, value: Any) -> Any:
        """Render Jinja templates inside ``value`` against this workflow (sandboxed)."""
        return render_value(value, self.template_variables())

    def evaluate(self, expression: str, extra: dict[str, Any] | None = None) -> Any:
        """Evaluate a safe expression over the state."""
        return evaluate_expression(expression, self._state, extra)

    def notify(self, hook: str, event: Any) -> None:
        """Call an observer hook; an observer's failure is logged, never propagated."""
        try:
            getattr(self.observer, hook)(event)
        except Exception:
            logger.exception("observer %r failed in %s", self.observer, hook)

    def observes(self, hook: str) -> bool:
        """False when the observer keeps the no-op hook (so building the event can be skipped)."""
        return getattr(type(self.observer), hook, None) is not getattr(BaseObserver, hook)

    def notify_step_started(self, step: StepDefinition, attempt: int) -> None:
        if not self.observes("on_step_started"):
            return
        self.notify(
            "on_step_started",
            events.StepStarted(self.id, self.workflow_type, step.name, str(step.type), attempt),
        )

    def notify_step_failed(
        self, step: StepDefinition, exc: BaseException, attempt: int, will_retry: bool
    ) -> None:
        self.notify(
            "on_step_failed",
            events.StepFailed(
                self.id,
                self.workflow_type,
                step.name,
                str(step.type),
                f"{type(exc).__name__}: {exc}",
                attempt,
                will_retry,
            ),
        )

    def checkpoint_audit(self, event: str, step: str | None, details: dict[str, Any]) -> None:
        """Queue an audit row for the next save."""
        self._audit(event, step, details)

    async def checkpoint(self, event: str, step: StepDefinition, details: dict[str, Any]) -> None:
        """Save progress inside a long step (e.g. after each LOOP iteration)."""
        self._audit(event, step.name, details)
        await self.save()


def _copy_two_levels(data: dict[str, Any]) -> dict[str, Any]:
    """Copy of the runtime bookkeeping deep enough for every engine write (a cheap deepcopy)."""
    return {
        key: dict(value)
        if isinstance(value, dict)
        else list(value)
        if isinstance(value, list)
        else value
        for key, value in data.items()
    }


def describe_error(exc: BaseException) -> str:
    """One line for an exception, used in logs and CLI output."""
    if isinstance(exc, RuvonError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
