"""SUB_WORKFLOW (and StartSubWorkflowDirective), FIRE_AND_FORGET, and child-to-parent reporting.

Embedded mode runs a child in the same process right after the parent's PENDING_SUB_WORKFLOW
save. A child that stops at a wait is resumed on its own later; when it ends it reports to the
stored parent, which then continues.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ruvon.errors import ChildWorkflowFailed
from ruvon.models import WorkflowStatus
from ruvon.records import WorkflowRecord
from ruvon.steps.base import Advance, NotResumable, StepOutcome, Suspend

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.workflow import Workflow

logger = logging.getLogger("ruvon.sub_workflow")


async def _spawn(
    wf: Workflow,
    workflow_type: str,
    initial_data: dict[str, Any],
    *,
    parent: bool,
    owner_id: str | None = None,
    data_region: str | None = None,
) -> Workflow:
    record = wf.record
    child = await wf.builder.create_workflow(
        workflow_type,
        initial_data,
        persistence_provider=wf.persistence,
        execution_provider=wf.execution,
        workflow_observer=wf.observer,
        parent_execution_id=wf.id if parent else None,
        owner_id=owner_id or record.owner_id,
        data_region=data_region or record.data_region,
        metadata={"spawned_by": wf.id},
        automate_start=False,
        announce=False,
    )
    if wf.outbox is not None and child.outbox is not None:
        # Distributed: the child's start run is stored with the child; announce it only after
        # this workflow's save committed, so the child can never report to a parent that does
        # not wait for it yet.
        wf.outbox.unannounced += child.outbox.unannounced
        child.outbox.unannounced.clear()
    return child


def child_outcome(wf: Workflow, step: StepDefinition, child: WorkflowRecord) -> StepOutcome | None:
    """The parent's outcome for a child in ``child.status`` (None while it is still running)."""
    if child.status is WorkflowStatus.COMPLETED:
        results = dict(wf.record.runtime.get("sub_workflow_results", {}))
        results[child.id] = {
            "workflow_type": child.workflow_type,
            "status": str(child.status),
            "state": child.state,
            "final_result": child.state,
        }
        wf.record.runtime["sub_workflow_results"] = results
        data: dict[str, Any] = {"sub_workflow_results": results}
        if step.output_key:
            data[step.output_key] = child.state
        return Advance(data, soft_keys=True)
    if child.status.is_terminal:
        raise ChildWorkflowFailed(
            f"child workflow '{child.id}' ({child.workflow_type}) of step '{step.name}' ended "
            f"{child.status}: {child.error or 'no error recorded'}",
            step=step.name,
            non_retryable=True,
        )
    return None


async def _run_child(wf: Workflow, step: StepDefinition, child: Workflow) -> StepOutcome | None:
    child.reports_to_parent = False  # this parent applies the result itself
    await child.run()
    return child_outcome(wf, step, child.record)


async def start_child(
    wf: Workflow,
    step: StepDefinition,
    *,
    workflow_type: str,
    initial_data: dict[str, Any],
    result: dict[str, Any] | None = None,
    owner_id: str | None = None,
    data_region: str | None = None,
) -> Suspend:
    """Create the child, then park the parent in PENDING_SUB_WORKFLOW and run the child."""
    child = await _spawn(
        wf, workflow_type, initial_data, parent=True, owner_id=owner_id, data_region=data_region
    )
    if wf.distributed:  # the child runs on the workers; its end enqueues this one's resumption
        return Suspend(
            WorkflowStatus.PENDING_SUB_WORKFLOW,
            result or {},
            blocked_on_child_id=child.id,
            waiting_for=f"child {child.workflow_type} {child.id}",
        )

    async def follow_up() -> StepOutcome | None:
        return await _run_child(wf, step, child)

    return Suspend(
        WorkflowStatus.PENDING_SUB_WORKFLOW,
        result or {},
        blocked_on_child_id=child.id,
        waiting_for=f"child {child.workflow_type} {child.id}",
        follow_up=follow_up,
    )


class SubWorkflowStep:
    """``target_workflow_type`` with ``initial_data_template`` rendered against the parent."""

    async def execute(
        self, wf: Workflow, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        data = wf.render(step.initial_data_template)
        return await start_child(
            wf, step, workflow_type=str(step.target_workflow_type), initial_data=data
        )

    async def resume(
        self, wf: Workflow, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome | None:
        child_id = wf.record.blocked_on_child_id
        if child_id is None:
            return None
        child = await wf.builder.load_workflow(
            child_id,
            persistence_provider=wf.persistence,
            execution_provider=wf.execution,
            workflow_observer=wf.observer,
        )
        if child.status is WorkflowStatus.ACTIVE and not wf.distributed:
            return await _run_child(wf, step, child)
        return child_outcome(wf, step, child.record)


class FireAndForgetStep(NotResumable):
    """Starts an independent workflow; the parent records its id and never waits for it."""

    async def execute(
        self, wf: Workflow, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        data = wf.render(step.initial_data_template)
        child = await _spawn(wf, str(step.target_workflow_type), data, parent=False)
        wf.record.runtime.setdefault("spawned", []).append(child.id)
        wf.checkpoint_audit("WORKFLOW_SPAWNED", step.name, {"child_id": child.id})
        if not wf.distributed:
            # Embedded mode: the child runs here, to its first wait; its failures stay its own.
            await child.run()
        return Advance({step.output_key: child.id} if step.output_key else {})


async def report_to_parent(child: Workflow) -> None:
    """A child that ended on its own resumes its stored parent (if the parent still waits)."""
    parent_id = child.record.parent_execution_id
    assert parent_id is not None
    try:
        parent = await child.builder.load_workflow(
            parent_id,
            persistence_provider=child.persistence,
            execution_provider=child.execution,
            workflow_observer=child.observer,
        )
        waiting = parent.status is WorkflowStatus.PENDING_SUB_WORKFLOW
        if waiting and parent.record.blocked_on_child_id == child.id:
            await parent.next_step()
    except Exception:
        # The parent's own status records what went wrong; the child's run is not affected.
        logger.exception("resuming parent %s of child %s failed", parent_id, child.id)
