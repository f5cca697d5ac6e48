"""Child workflows: starting one from a step, applying its end to the parent, reporting back.

Embedded, a child runs in the same process right after the parent's PENDING_SUB_WORKFLOW save;
a child that stops at a wait is resumed on its own later and, when it ends, resumes its stored
parent (:func:`report_to_parent`). Distributed, the child's start run is stored with the child
and announced only after the parent's save; the child's terminal save enqueues the parent's
resumption in the same transaction (see :class:`~ruvon.engine.machine.WorkflowEngine`).

Children are made through the engine's :class:`~ruvon.engine.runtime.ChildFactory`, never by
importing the builder.
"""

from __future__ import annotations

import logging
from typing import Any

from ruvon.definitions.schema import StepDefinition
from ruvon.engine.outcomes import Advance, StepOutcome, Suspend
from ruvon.engine.runtime import ChildWorkflow, StepRuntime
from ruvon.errors import ChildWorkflowFailed
from ruvon.models import WorkflowStatus
from ruvon.records import ChildResult, WorkflowRecord

__all__ = ["child_outcome", "report_to_parent", "spawn", "start_child"]

logger = logging.getLogger("ruvon.sub_workflow")


async def spawn(
    rt: StepRuntime,
    workflow_type: str,
    initial_data: dict[str, Any],
    *,
    as_child: bool,
    owner_id: str | None = None,
    data_region: str | None = None,
) -> ChildWorkflow:
    """Store a new workflow started by ``rt`` (its child when ``as_child``), not yet run."""
    record = rt.record
    child = await rt.children.create_child(
        rt,
        workflow_type,
        initial_data,
        parent_execution_id=rt.id if as_child else None,
        owner_id=owner_id or record.owner_id,
        data_region=data_region or record.data_region,
        # A child is part of its parent's work, so it runs at the parent's priority; an
        # independent workflow (FIRE_AND_FORGET) has its own file's.
        priority=record.priority if as_child else None,
    )
    remote, child_remote = rt.remote, child.remote
    if remote is not None and child_remote is not None:
        # The child's start run is stored with the child; announce it only after this
        # workflow's save committed, so the child can never report to a parent that does not
        # wait for it yet.
        remote.defer(child_remote.take_deferred())
    return child


def child_outcome(
    rt: StepRuntime, step: StepDefinition, child: WorkflowRecord
) -> StepOutcome | None:
    """The parent's outcome for a child in ``child.status`` (None while it is still running)."""
    if child.status is WorkflowStatus.COMPLETED:
        runtime = rt.record.runtime
        results = dict(runtime.get("sub_workflow_results", {}))
        results[child.id] = ChildResult(
            workflow_type=child.workflow_type,
            status=str(child.status),
            state=child.state,
            final_result=child.state,
        )
        runtime["sub_workflow_results"] = results
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


async def run_child(
    rt: StepRuntime, step: StepDefinition, child: ChildWorkflow
) -> StepOutcome | None:
    """Run ``child`` here (embedded) as far as it goes; the parent's outcome for where it got."""
    child.reports_to_parent = False  # this parent applies the result itself
    await child.run()
    return child_outcome(rt, step, child.record)


async def start_child(
    rt: StepRuntime,
    step: StepDefinition,
    *,
    workflow_type: str,
    initial_data: dict[str, Any],
    result: dict[str, Any] | None = None,
    owner_id: str | None = None,
    data_region: str | None = None,
) -> Suspend:
    """Create the child, then park the parent in PENDING_SUB_WORKFLOW and run the child."""
    child = await spawn(
        rt, workflow_type, initial_data, as_child=True, owner_id=owner_id, data_region=data_region
    )
    follow_up = None
    if rt.remote is None:  # on a cluster the child runs on the workers and its end reports

        async def follow_up() -> StepOutcome | None:
            return await run_child(rt, step, child)

    return Suspend(
        WorkflowStatus.PENDING_SUB_WORKFLOW,
        result or {},
        blocked_on_child_id=child.id,
        waiting_for=f"child {child.workflow_type} {child.id}",
        follow_up=follow_up,
    )


async def report_to_parent(child: StepRuntime) -> None:
    """A child that ended on its own resumes its stored parent (if the parent still waits)."""
    parent_id = child.record.parent_execution_id
    assert parent_id is not None
    try:
        parent = await child.children.load_related(child, parent_id)
        waiting = parent.status is WorkflowStatus.PENDING_SUB_WORKFLOW
        if waiting and parent.record.blocked_on_child_id == child.id:
            await parent.next_step()
    except Exception:
        # The parent's own status records what went wrong; the child's run is not affected.
        logger.exception("resuming parent %s of child %s failed", parent_id, child.id)
