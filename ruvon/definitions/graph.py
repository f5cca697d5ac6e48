"""Control-flow graph checks over top-level steps: loops must be bounded."""

from __future__ import annotations

from collections.abc import Sequence

from ruvon.definitions.schema import StepDefinition
from ruvon.models import StepType


def _successors(steps: Sequence[StepDefinition]) -> dict[str, list[str]]:
    names = [s.name for s in steps]
    graph: dict[str, list[str]] = {}
    for i, step in enumerate(steps):
        following = [names[i + 1]] if i + 1 < len(names) else []
        if step.type is StepType.DECISION and step.routes:
            # A DECISION with routes never falls through: no match is a RoutingError.
            graph[step.name] = [route.destination for route in step.routes]
        else:
            graph[step.name] = following
    return graph


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components that contain a cycle (Tarjan, iterative-safe sizes)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, []):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, []):
                found.append(component[::-1])

    for node in graph:
        if node not in index:
            visit(node)
    return found


def find_unbounded_cycle(steps: Sequence[StepDefinition]) -> list[str] | None:
    """The first loop between steps with no ``max_iterations`` on any member, if any."""
    by_name = {s.name: s for s in steps}
    order = {s.name: i for i, s in enumerate(steps)}
    for component in _cycles(_successors(steps)):
        if not any(by_name[name].max_iterations for name in component):
            return sorted(component, key=order.__getitem__)
    return None
