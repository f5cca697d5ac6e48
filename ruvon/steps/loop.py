"""LOOP: ITERATE over a state list, or WHILE a condition holds, with ``max_iterations``.

Progress is saved after every iteration, so a restarted workflow continues with the next item
instead of starting the loop over.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ruvon.definitions.imports import cached_step_function
from ruvon.definitions.rules import StepProblem, unless
from ruvon.definitions.schema import LoopMode
from ruvon.engine.invoke import call_step_function
from ruvon.engine.outcomes import Advance, StepKind, StepOutcome
from ruvon.errors import IterationLimitExceeded
from ruvon.models import StepType
from ruvon.steps.iteration import resolve_items

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.runtime import StepRuntime

#: What a LOOP body may hold: steps that run inline, one after the other.
BODY_KINDS = (StepType.STANDARD, StepType.COMPENSATABLE, StepType.ASYNC)


async def _run_body(rt: StepRuntime, step: StepDefinition, item: Any, index: int) -> None:
    body = step.loop_body or (step,)
    run = rt.run_number(step.name)
    for part in body:
        assert part.function is not None  # validated at load time
        fn = cached_step_function(part.function, step=part.name)
        context = rt.make_context(
            part,
            loop_item=item,
            loop_index=index,
            item=item,
            idempotency_key=f"{rt.id}:{step.name}:{run}:{index}:{part.name}",
        )
        kwargs = {step.item_var_name: item} if step.mode is LoopMode.ITERATE else {}
        result = await call_step_function(rt, part, fn, context=context, kwargs=kwargs)
        rt.apply_result(result, part)
        if part is not step and part.compensate_function:
            rt.record.completed_steps.append(part.name)


def _too_many(step: StepDefinition, count: int) -> IterationLimitExceeded:
    return IterationLimitExceeded(
        f"LOOP step '{step.name}' needs iteration {count}, over its max_iterations of "
        f"{step.max_iterations}"
    )


class LoopStep(StepKind):
    """Runs its body (``loop_body`` steps, or its own ``function``) once per iteration."""

    async def execute(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        loops = rt.record.runtime.setdefault("loops", {})
        index = int(loops.get(step.name, 0))
        limit = step.max_iterations
        if step.mode is LoopMode.ITERATE:
            items = resolve_items(rt, step)
            if limit is not None and len(items) > limit:
                raise _too_many(step, len(items))
            for position in range(index, len(items)):
                await _run_body(rt, step, items[position], position)
                loops[step.name] = position + 1
                await rt.checkpoint("LOOP_ITERATION", step, {"index": position})
        else:
            assert step.while_condition is not None and limit is not None
            while rt.evaluate(step.while_condition):
                if index >= limit:
                    raise _too_many(step, index + 1)
                await _run_body(rt, step, None, index)
                index += 1
                loops[step.name] = index
                await rt.checkpoint("LOOP_ITERATION", step, {"index": index - 1})
        loops.pop(step.name, None)
        return Advance({})

    def validate(self, step: StepDefinition) -> Iterator[StepProblem]:
        yield from unless(
            step.mode is not None, "mode", "a LOOP step needs 'mode' (ITERATE or WHILE)"
        )
        yield from unless(
            bool(step.loop_body) or step.function is not None,
            "loop_body",
            "a LOOP step needs 'loop_body' (or a 'function' run each iteration)",
        )
        if step.mode is LoopMode.ITERATE:
            yield from unless(
                step.iterate_over is not None,
                "iterate_over",
                "an ITERATE loop needs 'iterate_over'",
            )
        if step.mode is LoopMode.WHILE:
            yield from unless(
                step.while_condition is not None,
                "while_condition",
                "a WHILE loop needs 'while_condition'",
            )
            yield from unless(
                step.max_iterations is not None,
                "max_iterations",
                "a WHILE loop needs 'max_iterations' so it cannot run forever",
            )
        for body in step.loop_body:
            if body.type not in BODY_KINDS:
                yield StepProblem(
                    "type",
                    f"loop body steps must be STANDARD, COMPENSATABLE or ASYNC, not {body.type}",
                    at=("loop_body",),
                    step=body.name,
                )
