"""STANDARD, COMPENSATABLE and ASYNC steps: call the function, merge what it returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ruvon.definitions.imports import cached_step_function
from ruvon.models import WorkflowStatus
from ruvon.providers.runs import RunKind
from ruvon.steps.base import Advance, NotResumable, StepOutcome, Suspend
from ruvon.steps.human import validate_input
from ruvon.steps.invoke import call_step_function

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.workflow import Workflow


async def run_function_step(
    wf: Workflow, step: StepDefinition, user_input: dict[str, Any] | None
) -> dict[str, Any]:
    """Validate input (if the step has an input model) and call the step's function."""
    assert step.function is not None  # guaranteed by definition validation
    fn = cached_step_function(step.function, step=step.name)
    validated = validate_input(step, user_input) if step.input_model and user_input else None
    context = wf.make_context(step, validated_input=validated)
    return await call_step_function(wf, step, fn, context=context, kwargs=user_input)


class StandardStep(NotResumable):
    """Runs inline in ``next_step``."""

    async def execute(
        self, wf: Workflow, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        return Advance(await run_function_step(wf, step, user_input))


class AsyncStep(NotResumable):
    """Runs on the execution provider after PENDING_ASYNC is durable.

    In embedded mode the provider is local (a thread pool), so ``next_step`` awaits it; if the
    process dies meanwhile, the workflow is found PENDING_ASYNC and the step runs again.
    Input given to ``next_step`` is saved with PENDING_ASYNC (``runtime["pending_input"]``), so
    that run, a worker's (whose message carries ids only) and a retry after a failure call the
    function with it too; the save recording the step's success drops it.
    """

    async def execute(
        self, wf: Workflow, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        if user_input is not None:
            wf.record.runtime.setdefault(PENDING_INPUT, {})[step.name] = user_input
        if wf.status is WorkflowStatus.PENDING_ASYNC:
            return await _run_with_pending_input(wf, step)
        if wf.distributed:
            # A worker claims the run and calls this again, with the workflow PENDING_ASYNC.
            wf.enqueue_run(RunKind.STEP, step.name)
            return Suspend(WorkflowStatus.PENDING_ASYNC)
        return Suspend(
            WorkflowStatus.PENDING_ASYNC, follow_up=lambda: _run_with_pending_input(wf, step)
        )


PENDING_INPUT = "pending_input"


async def _run_with_pending_input(wf: Workflow, step: StepDefinition) -> StepOutcome:
    pending = wf.record.runtime.get(PENDING_INPUT)
    stored = pending.get(step.name) if isinstance(pending, dict) else None
    result = await run_function_step(wf, step, stored)
    if isinstance(pending, dict) and pending.pop(step.name, None) is not None and not pending:
        del wf.record.runtime[PENDING_INPUT]
    return Advance(result)
