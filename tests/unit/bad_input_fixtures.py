"""Step functions and models that bad-input tests point at by dotted path.

Everything here is referenced as ``tests.unit.bad_input_fixtures.NAME`` from YAML written into a
temporary directory, so it must live at module level.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PREFIX = "tests.unit.bad_input_fixtures"


class OrderState(BaseModel):
    """A strict state model: unknown keys are refused, ``amount`` must be a non-negative int."""

    model_config = ConfigDict(extra="forbid")

    order_id: str
    amount: int = Field(default=0, ge=0)
    score: float = 0.0
    note: str | None = None


class Approval(BaseModel):
    """Input model of a human step."""

    approved: bool
    reviewer: str


class NotAModel:
    """A class that is not a pydantic model (so not a valid input or state model)."""


NOT_CALLABLE = 42


def ok_step(state: Any, context: Any) -> dict[str, Any]:
    """A well-behaved step."""
    return {}


def compensate_ok(state: Any, context: Any) -> dict[str, Any]:
    """A well-behaved compensation."""
    return {}


def one_arg(state: Any) -> dict[str, Any]:
    """Wrong: the engine passes (state, context)."""
    return {}


def three_args(state: Any, context: Any, extra: Any, /) -> dict[str, Any]:
    """Wrong: a third required argument that, being positional-only, is never passed.

    (A third required argument that may be given by keyword is fine: the engine fills such
    parameters from the loop item or a human step's input.)
    """
    return {}


def returns_list(state: Any, context: Any) -> list[int]:
    """Wrong: a step must return a dict or None."""
    return [1, 2, 3]


def returns_str(state: Any, context: Any) -> str:
    """Wrong: a step must return a dict or None."""
    return "done"


def returns_negative_amount(state: Any, context: Any) -> dict[str, Any]:
    """Merges into state a value that OrderState rejects."""
    return {"amount": -5}


def returns_undeclared_key(state: Any, context: Any) -> dict[str, Any]:
    """Returns a key that OrderState does not declare."""
    return {"surprise": 1}


def returns_nan(state: Any, context: Any) -> dict[str, Any]:
    """NaN is not JSON."""
    return {"score": float("nan")}


def returns_nan_free_form(state: Any, context: Any) -> dict[str, Any]:
    """NaN in free-form (dict) state."""
    return {"ratio": float("nan")}


def returns_object(state: Any, context: Any) -> dict[str, Any]:
    """An arbitrary object cannot be stored as JSON."""
    return {"handle": object()}
