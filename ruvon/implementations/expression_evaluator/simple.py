"""``SimpleExpressionEvaluator``: the documented evaluator, backed by :mod:`ruvon.expressions`.

Code written from the Ruvon documentation imports it and hands it to ``WorkflowBuilder``;
the builder accepts it because it *is* the evaluator Ruvon uses for route conditions. Unlike
the first SDK's "basic Python eval", nothing reaches ``eval``: the expression is checked
against :mod:`ruvon.expressions`' whitelist, and an unsafe or broken one raises
:class:`~ruvon.errors.UnsafeExpressionError` / :class:`~ruvon.errors.ExpressionError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ruvon.expressions import evaluate_expression

__all__ = ["SimpleExpressionEvaluator"]


class SimpleExpressionEvaluator:
    """Evaluates conditions such as ``state.amount > 10000`` the way DECISION routes do."""

    def evaluate(self, expression: str, context: Mapping[str, Any] | None = None) -> bool:
        """Truth of ``expression``; ``context["state"]`` is ``state``, other keys are names."""
        names = dict(context or {})
        state = names.pop("state", {})
        return bool(evaluate_expression(expression, state, names))
