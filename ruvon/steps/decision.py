"""DECISION steps: optional function, then the first route whose condition holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ruvon.errors import RoutingError
from ruvon.steps.base import Advance, Jump, NotResumable, StepOutcome
from ruvon.steps.standard import run_function_step

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.workflow import Workflow


class DecisionStep(NotResumable):
    """Routes are evaluated on the state *after* the step's own result is merged."""

    async def execute(
        self, wf: Workflow, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        result: dict[str, Any] = {}
        if step.function is not None:
            result = await run_function_step(wf, step, user_input)
            wf.apply_result(result, step)
        if not step.routes:
            return Advance({})
        for route in step.routes:
            if route.default is not None:
                return Jump(route.default, {})
            if route.condition is not None and wf.evaluate(route.condition):
                return Jump(route.destination, {})
        conditions = "; ".join(r.condition or "" for r in step.routes)
        raise RoutingError(
            f"DECISION step '{step.name}' of workflow '{wf.id}': no route matched and there is "
            f"no default (conditions: {conditions}); add `- default: STEP_NAME`"
        )
