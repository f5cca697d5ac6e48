"""Shared by PARALLEL fan-out and LOOP: resolving the list a step iterates over."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ruvon.errors import StepFunctionError

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.runtime import StepRuntime


def resolve_items(rt: StepRuntime, step: StepDefinition) -> list[Any]:
    """The list at ``iterate_over`` (``state.items`` and plain ``items`` both work)."""
    path = str(step.iterate_over)
    expression = path if path.startswith(("state.", "state[")) else f"state.{path}"
    value = rt.evaluate(expression)
    if not isinstance(value, list | tuple):
        raise StepFunctionError(
            f"step '{step.name}': iterate_over '{path}' is {type(value).__name__}, not a list",
            step=step.name,
            non_retryable=True,
        )
    return list(value)


def branch_state(rt: StepRuntime) -> Any:
    """A private copy of the state for one concurrent branch (in-place edits are discarded)."""
    state = rt.state
    if isinstance(state, BaseModel):
        return state.model_copy(deep=True)
    return copy.deepcopy(state)
