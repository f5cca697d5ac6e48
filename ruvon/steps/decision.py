"""DECISION steps: optional function, then the first route whose condition holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ruvon.definitions.rules import StepProblem, unless
from ruvon.engine.outcomes import Advance, Jump, StepKind, StepOutcome
from ruvon.errors import RoutingError
from ruvon.steps.standard import run_function_step

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.runtime import StepRuntime


class DecisionStep(StepKind):
    """Routes are evaluated on the state *after* the step's own result is merged."""

    async def execute(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        result: dict[str, Any] = {}
        if step.function is not None:
            result = await run_function_step(rt, step, user_input)
            rt.apply_result(result, step)
        if not step.routes:
            return Advance({})
        for route in step.routes:
            if route.default is not None:
                return Jump(route.default, {})
            if route.condition is not None and rt.evaluate(route.condition):
                return Jump(route.destination, {})
        conditions = "; ".join(r.condition or "" for r in step.routes)
        raise RoutingError(
            f"DECISION step '{step.name}' of workflow '{rt.id}': no route matched and there is "
            f"no default (conditions: {conditions}); add `- default: STEP_NAME`"
        )

    def validate(self, step: StepDefinition) -> Iterator[StepProblem]:
        yield from unless(
            bool(step.routes) or step.function is not None,
            "routes",
            "a DECISION step needs 'routes' (or a function that raises WorkflowJumpDirective)",
        )
