"""``dynamic_injection``: steps a rule inserts after the current step, laid out at load time.

Every step a rule may insert is placed in the definition right after the step that carries the
rule, marked with ``injected_by`` (that step and the rule's index). So the workflow's snapshot
holds each step that may be inserted, before it runs: a resumed, recovered or cluster-run
workflow rebuilds exactly the same step list from its snapshot, and stored step indexes keep
their meaning. When the step completes, the engine tries its rules against the state it left
behind and records which matched in the workflow's ``runtime["injected"]`` (saved with that
transition); an inserted step whose rule did not match is passed over.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ruvon.definitions.schema import InjectionOrigin, StepDefinition

#: ``runtime`` key: the ``InjectionOrigin.key`` of every rule that matched, in match order.
INJECTED_KEY = "injected"


def lay_out_injections(steps: tuple[StepDefinition, ...]) -> tuple[StepDefinition, ...]:
    """``steps`` with each rule's ``steps_to_insert`` placed after its step, rule by rule."""
    laid_out: list[StepDefinition] = []
    for step in steps:
        laid_out.append(step)
        if step.dynamic_injection is None:
            continue
        for r, rule in enumerate(step.dynamic_injection.rules):
            origin = InjectionOrigin(step=step.name, rule=r)
            laid_out += [s.model_copy(update={"injected_by": origin}) for s in rule.steps_to_insert]
    return tuple(laid_out)


def value_at(state: Mapping[str, Any], condition_key: str) -> Any:
    """The value at a dotted ``condition_key`` in ``state`` (None when any part is absent)."""
    node: Any = state
    for part in condition_key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def matched_rules(step: StepDefinition, state: Mapping[str, Any]) -> list[tuple[int, Any]]:
    """``(rule index, value found)`` of each of ``step``'s rules that ``state`` triggers."""
    if step.dynamic_injection is None:
        return []
    found = []
    for r, rule in enumerate(step.dynamic_injection.rules):
        value = value_at(state, rule.condition_key)
        if rule.matches(value):
            found.append((r, value))
    return found
