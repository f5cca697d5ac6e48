"""HUMAN_IN_LOOP and HUMAN_APPROVAL: pause in WAITING_HUMAN, resume with validated input.

Embedded, the resume applies the input at once (calling the step's function if it has one). On
a cluster, a resume whose step has a function only validates and keeps the input, and hands
the step to the workers (PENDING_ASYNC, with a step run): the function then runs on a worker
under a claim, once, however many resumes race — the first resume's save moves the workflow on,
the others conflict with it or find it no longer waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ruvon.clock import utc_now
from ruvon.definitions.imports import cached_step_function, import_object
from ruvon.definitions.rules import StepProblem, unless
from ruvon.definitions.schema import TimeoutAction
from ruvon.engine.invoke import call_step_function
from ruvon.engine.outcomes import Advance, StepKind, StepOutcome, Suspend
from ruvon.errors import InputValidationError, StepTimeoutError
from ruvon.models import WorkflowStatus
from ruvon.providers.runs import RunKind
from ruvon.steps.pending import drop_input, keep_input, stored_input

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.runtime import StepRuntime

_APPROVAL_TIMEOUT_ACTIONS = (
    TimeoutAction.AUTO_APPROVE,
    TimeoutAction.AUTO_REJECT,
    TimeoutAction.FAIL,
)


class ApprovalDecision(BaseModel):
    """Default input of a HUMAN_APPROVAL step."""

    approved: bool
    reason: str | None = None
    approver: str | None = None


def _format_errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<input>'}: {err['msg']}" for err in exc.errors()
    )


def validate_input(
    step: StepDefinition, user_input: dict[str, Any] | None, default: type[BaseModel] | None = None
) -> BaseModel | None:
    """Validate ``user_input`` against the step's ``input_model``; InputValidationError if bad."""
    model: Any = import_object(step.input_model) if step.input_model else default
    if model is None:
        return None
    try:
        return model.model_validate(user_input or {})  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise InputValidationError(
            f"input for step '{step.name}' does not match {model.__name__}: {_format_errors(exc)}"
        ) from None


async def _apply_human_input(
    rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any], validated: BaseModel | None
) -> StepOutcome:
    if step.function is None:
        data = validated.model_dump(mode="json") if validated is not None else dict(user_input)
        return Advance(data)
    fn = cached_step_function(step.function, step=step.name)
    context = rt.make_context(step, validated_input=validated)
    return Advance(await call_step_function(rt, step, fn, context=context, kwargs=user_input))


async def _resume_with(
    rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any], validated: BaseModel | None
) -> StepOutcome:
    """Apply a person's (validated) input here, or, on a cluster, hand it to the workers."""
    remote = rt.remote
    if remote is None or step.function is None:
        return await _apply_human_input(rt, step, user_input, validated)
    keep_input(rt, step, user_input)
    remote.enqueue(RunKind.STEP, step.name)
    return Suspend(WorkflowStatus.PENDING_ASYNC)


async def _apply_kept_input(
    rt: StepRuntime, step: StepDefinition, default: type[BaseModel] | None = None
) -> StepOutcome:
    """A worker runs the step a resume handed it, with the input the resume kept."""
    kept = stored_input(rt, step) or {}
    outcome = await _apply_human_input(rt, step, kept, validate_input(step, kept, default))
    drop_input(rt, step)
    return outcome


class HumanInLoopStep(StepKind):
    """Waits for a person; on resume calls the function with the input (or merges the input)."""

    async def execute(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        if rt.status is WorkflowStatus.PENDING_ASYNC:
            return await _apply_kept_input(rt, step)
        return Suspend(WorkflowStatus.WAITING_HUMAN, waiting_for=step.name)

    async def resume(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome | None:
        if user_input is None:
            return None
        return await _resume_with(rt, step, user_input, validate_input(step, user_input))


class HumanApprovalStep(StepKind):
    """An approval with an optional deadline; ``on_timeout`` decides what a missed one means."""

    async def execute(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        if rt.status is WorkflowStatus.PENDING_ASYNC:
            return await _apply_kept_input(rt, step, ApprovalDecision)
        deadline = None
        if step.approval_timeout is not None:
            deadline = utc_now() + timedelta(seconds=step.approval_timeout)
        return Suspend(WorkflowStatus.WAITING_HUMAN, waiting_for=step.name, run_at=deadline)

    async def resume(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome | None:
        deadline = rt.record.run_at
        if user_input is None:
            if deadline is None or deadline > utc_now():
                return None
            return await self._time_out(rt, step)
        validated = validate_input(step, user_input, default=ApprovalDecision)
        return await _resume_with(rt, step, user_input, validated)

    def validate(self, step: StepDefinition) -> Iterator[StepProblem]:
        yield from unless(
            step.on_timeout in _APPROVAL_TIMEOUT_ACTIONS,
            "on_timeout",
            f"a HUMAN_APPROVAL step's on_timeout is one of "
            f"{', '.join(a.value for a in _APPROVAL_TIMEOUT_ACTIONS)}, not '{step.on_timeout}'",
        )

    async def _time_out(self, rt: StepRuntime, step: StepDefinition) -> StepOutcome:
        if step.on_timeout is TimeoutAction.FAIL:
            raise StepTimeoutError(
                f"approval step '{step.name}' got no decision within {step.approval_timeout:g}s",
                step=step.name,
                non_retryable=True,
            )
        approved = step.on_timeout is TimeoutAction.AUTO_APPROVE
        decision = {"approved": approved, "reason": f"{step.on_timeout.value} after timeout"}
        rt.audit("APPROVAL_TIMED_OUT", step.name, decision)
        validated = validate_input(step, decision, default=ApprovalDecision)
        return await _apply_human_input(rt, step, decision, validated)
