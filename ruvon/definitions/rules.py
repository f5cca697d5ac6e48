"""The rules one step kind sets for its definitions, as the loader asks for them.

Each kind states its own rules next to its behaviour (``validate`` of its handler in
``ruvon/steps/``); the loader runs the rules every step shares (names, routes, expressions,
imports) and hands each step to the rules of its kind, which it is given
(:data:`ruvon.steps.registry.DEFAULT_HANDLERS`). A problem names its field, so the
``DefinitionError`` can point at the line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ruvon.models import StepType

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition

__all__ = ["StepProblem", "StepRulebook", "StepRules", "unless"]


@dataclass(frozen=True, slots=True)
class StepProblem:
    """One thing wrong with a step definition.

    ``field`` is named in the error; ``at`` is where it sits under the step (default: the field
    itself), used to find its line; ``step`` names another step than the one checked (a body
    step of a LOOP).
    """

    field: str
    message: str
    at: tuple[Any, ...] | None = None
    step: str | None = None


def unless(condition: bool, field: str, message: str) -> Iterator[StepProblem]:
    """A problem with ``field`` unless ``condition`` holds (reads like the rule it states)."""
    if not condition:
        yield StepProblem(field, message)


class StepRules(Protocol):
    """What a step kind requires of its definitions."""

    def validate(self, step: StepDefinition) -> Iterator[StepProblem]:
        """Every problem with ``step``, most important first (the loader reports the first)."""
        ...


#: The rules of every kind the loader accepts.
StepRulebook = Mapping[StepType, StepRules]
