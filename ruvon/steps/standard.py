"""STANDARD, COMPENSATABLE and ASYNC steps: call the function, merge what it returns."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ruvon.definitions.imports import cached_step_function
from ruvon.definitions.rules import StepProblem, unless
from ruvon.engine.invoke import call_step_function
from ruvon.engine.outcomes import Advance, StepKind, StepOutcome, Suspend
from ruvon.models import StepType, WorkflowStatus
from ruvon.providers.runs import RunKind
from ruvon.steps.human import validate_input
from ruvon.steps.pending import drop_input, keep_input, stored_input

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.runtime import StepRuntime


async def run_function_step(
    rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
) -> dict[str, Any]:
    """Validate input (if the step has an input model) and call the step's function."""
    assert step.function is not None  # guaranteed by definition validation
    fn = cached_step_function(step.function, step=step.name)
    validated = validate_input(step, user_input) if step.input_model and user_input else None
    context = rt.make_context(step, validated_input=validated)
    return await call_step_function(rt, step, fn, context=context, kwargs=user_input)


def _needs_function(step: StepDefinition) -> Iterator[StepProblem]:
    yield from unless(step.function is not None, "function", f"a {step.type} step needs 'function'")


class StandardStep(StepKind):
    """Runs inline in ``next_step``; COMPENSATABLE also names its compensation."""

    async def execute(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        return Advance(await run_function_step(rt, step, user_input))

    def validate(self, step: StepDefinition) -> Iterator[StepProblem]:
        yield from _needs_function(step)
        yield from unless(
            step.type is not StepType.COMPENSATABLE or step.compensate_function is not None,
            "compensate_function",
            "a COMPENSATABLE step needs 'compensate_function'",
        )


class AsyncStep(StepKind):
    """Runs on the execution provider after PENDING_ASYNC is durable.

    In embedded mode the provider is local (a thread pool), so ``next_step`` awaits it; if the
    process dies meanwhile, the workflow is found PENDING_ASYNC and the step runs again. On a
    cluster, arriving at the step enqueues its run (:meth:`dispatch_ahead`) and a worker that
    claims it calls :meth:`execute` with the workflow PENDING_ASYNC.
    Input given to ``next_step`` is saved with PENDING_ASYNC (``runtime["pending_input"]``), so
    that run, a worker's (whose message carries ids only) and a retry after a failure call the
    function with it too; the save recording the step's success drops it.
    """

    async def execute(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        keep_input(rt, step, user_input)
        if rt.status is WorkflowStatus.PENDING_ASYNC:
            return await _run_with_pending_input(rt, step)
        return Suspend(
            WorkflowStatus.PENDING_ASYNC, follow_up=lambda: _run_with_pending_input(rt, step)
        )

    def dispatch_ahead(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> Suspend | None:
        remote = rt.remote
        if remote is None:
            return None
        keep_input(rt, step, user_input)
        remote.enqueue(RunKind.STEP, step.name)
        return Suspend(WorkflowStatus.PENDING_ASYNC)

    def validate(self, step: StepDefinition) -> Iterator[StepProblem]:
        return _needs_function(step)


async def _run_with_pending_input(rt: StepRuntime, step: StepDefinition) -> StepOutcome:
    result = await run_function_step(rt, step, stored_input(rt, step))
    drop_input(rt, step)
    return Advance(result)
