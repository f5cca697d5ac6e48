"""LOOP: ITERATE over a state list, or WHILE a condition holds, with ``max_iterations``.

Progress is saved after every iteration, so a restarted workflow continues with the next item
instead of starting the loop over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ruvon.definitions.imports import cached_step_function
from ruvon.definitions.schema import LoopMode
from ruvon.errors import IterationLimitExceeded
from ruvon.steps.base import Advance, NotResumable, StepOutcome
from ruvon.steps.invoke import call_step_function
from ruvon.steps.iteration import resolve_items

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.workflow import Workflow


async def _run_body(wf: Workflow, step: StepDefinition, item: Any, index: int) -> None:
    body = step.loop_body or (step,)
    run = wf.run_number(step.name)
    for part in body:
        assert part.function is not None  # validated at load time
        fn = cached_step_function(part.function, step=part.name)
        context = wf.make_context(
            part,
            loop_item=item,
            loop_index=index,
            item=item,
            idempotency_key=f"{wf.id}:{step.name}:{run}:{index}:{part.name}",
        )
        kwargs = {step.item_var_name: item} if step.mode is LoopMode.ITERATE else {}
        result = await call_step_function(wf, part, fn, context=context, kwargs=kwargs)
        wf.apply_result(result, part)
        if part is not step and part.compensate_function:
            wf.record.completed_steps.append(part.name)


def _too_many(step: StepDefinition, count: int) -> IterationLimitExceeded:
    return IterationLimitExceeded(
        f"LOOP step '{step.name}' needs iteration {count}, over its max_iterations of "
        f"{step.max_iterations}"
    )


class LoopStep(NotResumable):
    """Runs its body (``loop_body`` steps, or its own ``function``) once per iteration."""

    async def execute(
        self, wf: Workflow, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        loops = wf.record.runtime.setdefault("loops", {})
        index = int(loops.get(step.name, 0))
        limit = step.max_iterations
        if step.mode is LoopMode.ITERATE:
            items = resolve_items(wf, step)
            if limit is not None and len(items) > limit:
                raise _too_many(step, len(items))
            for position in range(index, len(items)):
                await _run_body(wf, step, items[position], position)
                loops[step.name] = position + 1
                await wf.checkpoint("LOOP_ITERATION", step, {"index": position})
        else:
            assert step.while_condition is not None and limit is not None
            while wf.evaluate(step.while_condition):
                if index >= limit:
                    raise _too_many(step, index + 1)
                await _run_body(wf, step, None, index)
                index += 1
                loops[step.name] = index
                await wf.checkpoint("LOOP_ITERATION", step, {"index": index - 1})
        loops.pop(step.name, None)
        return Advance({})
