"""SUB_WORKFLOW and FIRE_AND_FORGET: start another workflow from a step.

A SUB_WORKFLOW parent waits in PENDING_SUB_WORKFLOW until its child ends; a FIRE_AND_FORGET
step records the new workflow's id and moves on. How children are started, run and report back
is :mod:`ruvon.engine.children`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ruvon.definitions.rules import StepProblem, unless
from ruvon.engine.children import child_outcome, run_child, spawn, start_child
from ruvon.engine.outcomes import Advance, StepKind, StepOutcome
from ruvon.models import WorkflowStatus

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.runtime import StepRuntime


def needs_target(step: StepDefinition) -> Iterator[StepProblem]:
    """Steps that start a workflow must say which type."""
    yield from unless(
        step.target_workflow_type is not None,
        "target_workflow_type",
        f"a {step.type} step needs 'target_workflow_type'",
    )


class SubWorkflowStep(StepKind):
    """``target_workflow_type`` with ``initial_data_template`` rendered against the parent."""

    async def execute(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        data = rt.render(step.initial_data_template)
        return await start_child(
            rt, step, workflow_type=str(step.target_workflow_type), initial_data=data
        )

    async def resume(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome | None:
        child_id = rt.record.blocked_on_child_id
        if child_id is None:
            return None
        child = await rt.children.load_related(rt, child_id)
        if child.status is WorkflowStatus.ACTIVE and rt.remote is None:
            return await run_child(rt, step, child)
        return child_outcome(rt, step, child.record)

    def validate(self, step: StepDefinition) -> Iterator[StepProblem]:
        return needs_target(step)


class FireAndForgetStep(StepKind):
    """Starts an independent workflow; the parent records its id and never waits for it."""

    async def execute(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        data = rt.render(step.initial_data_template)
        child = await spawn(rt, str(step.target_workflow_type), data, as_child=False)
        rt.record.runtime.setdefault("spawned", []).append(child.id)
        rt.audit("WORKFLOW_SPAWNED", step.name, {"child_id": child.id})
        if rt.remote is None:
            # Embedded mode: the child runs here, to its first wait; its failures stay its own.
            await child.run()
        return Advance({step.output_key: child.id} if step.output_key else {})

    def validate(self, step: StepDefinition) -> Iterator[StepProblem]:
        return needs_target(step)
