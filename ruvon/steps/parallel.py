"""PARALLEL: fan out (static ``tasks`` or ``iterate_over``), then merge the branch results.

Branches run through the execution provider concurrently (a thread pool overlaps them, the sync
provider runs them one by one). Each branch gets its own copy of the state; only what it
returns is merged, in task order, with the step's merge strategy and conflict behaviour.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ruvon.definitions.imports import cached_step_function
from ruvon.errors import StepFunctionError
from ruvon.merge import merge_many
from ruvon.models import WorkflowDirective, WorkflowStatus
from ruvon.providers.runs import RunKind
from ruvon.steps.base import Advance, NotResumable, StepOutcome, Suspend
from ruvon.steps.invoke import call_step_function, check_result
from ruvon.steps.iteration import branch_state, resolve_items

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.providers.ledger import RunLedger
    from ruvon.workflow import Workflow


@dataclass(frozen=True)
class Branch:
    name: str
    function: Callable[..., Any]
    kwargs: dict[str, Any]
    item: Any = None
    index: int | None = None
    timeout: float | None = None


def plan_branches(wf: Workflow, step: StepDefinition) -> list[Branch]:
    """The branches of one PARALLEL step run, in merge order."""
    if step.iterate_over is not None and step.task_function is not None:
        fn = cached_step_function(step.task_function, step=step.name)
        return [_item_branch(step, fn, i, item) for i, item in enumerate(resolve_items(wf, step))]
    return [_task_branch(step, i) for i in range(len(step.tasks))]


@dataclass(frozen=True)
class PlannedBranch:
    """One branch of a PARALLEL step (None if the step has no branch of that name), its merge
    position, and how many branches the step has."""

    branch: Branch | None
    index: int
    count: int


def plan_branch(wf: Workflow, step: StepDefinition, name: str) -> PlannedBranch:
    """The branch called ``name`` alone: what one distributed branch run needs.

    Building every branch to pick one made each of N branch runs cost O(N) (a 1,000-branch
    fan-out spent most of its worker time here); this builds one.
    """
    if step.iterate_over is not None and step.task_function is not None:
        items = resolve_items(wf, step)
        index = _item_index(step, name)
        if index is None or index >= len(items):
            return PlannedBranch(None, -1, len(items))
        fn = cached_step_function(step.task_function, step=step.name)
        return PlannedBranch(_item_branch(step, fn, index, items[index]), index, len(items))
    for index, task in enumerate(step.tasks):
        if task.name == name:
            return PlannedBranch(_task_branch(step, index), index, len(step.tasks))
    return PlannedBranch(None, -1, len(step.tasks))


def _item_branch(step: StepDefinition, fn: Callable[..., Any], index: int, item: Any) -> Branch:
    return Branch(f"{step.name}[{index}]", fn, {step.item_var_name: item}, item, index)


def _item_index(step: StepDefinition, name: str) -> int | None:
    """``i`` of a dynamic branch name ``<step>[i]`` (see :func:`_item_branch`)."""
    prefix = f"{step.name}["
    if not (name.startswith(prefix) and name.endswith("]")):
        return None
    digits = name[len(prefix) : -1]
    return int(digits) if digits.isdigit() else None


def _task_branch(step: StepDefinition, index: int) -> Branch:
    task = step.tasks[index]
    function = cached_step_function(task.function, step=step.name)
    return Branch(task.name, function, {}, timeout=task.timeout)


async def run_branch(
    wf: Workflow, step: StepDefinition, branch: Branch, run: int, *, private_state: bool = True
) -> dict[str, Any]:
    """Call one branch's function on its own copy of the state (retries per the step's policy).

    ``private_state=False`` hands the function the workflow's state itself: for a caller that
    loaded the workflow for this branch alone and drops it afterwards (a worker's branch run),
    where a deep copy per branch would only cost time in proportion to the state.
    """
    context = wf.make_context(
        step,
        loop_item=branch.item,
        loop_index=branch.index,
        item=branch.item,
        branch_name=branch.name,
        idempotency_key=f"{wf.id}:{step.name}:{run}:{branch.name}",
    )
    try:
        return await call_step_function(
            wf,
            step,
            branch.function,
            context=context,
            state=branch_state(wf) if private_state else wf.state,
            kwargs=branch.kwargs,
            timeout=branch.timeout,
        )
    except WorkflowDirective as directive:
        # Jumps and pauses belong to the workflow, not to one of many branches.
        raise StepFunctionError(
            f"branch '{branch.name}' raised {type(directive).__name__}, which PARALLEL "
            "branches may not do",
            step=step.name,
            non_retryable=True,
        ) from None


class RecordedBranchError(Exception):
    """A branch failure as its worker recorded it: the text of :func:`branch_error_text`."""


def branch_error_text(error: BaseException) -> str:
    """How a failed branch is reported (audit, ``parallel_errors``): ``Type: message``."""
    if isinstance(error, RecordedBranchError):
        return str(error)
    return f"{type(error).__name__}: {error}"


async def run_parallel(wf: Workflow, step: StepDefinition) -> StepOutcome:
    """Run every branch, then merge (or fail per ``allow_partial_success``)."""
    branches = plan_branches(wf, step)
    run = wf.run_number(step.name)
    size = step.batch_size or len(branches) or 1
    outcomes: list[dict[str, Any] | BaseException] = []
    for start in range(0, len(branches), size):
        batch = branches[start : start + size]
        outcomes += await asyncio.gather(
            *(run_branch(wf, step, b, run) for b in batch), return_exceptions=True
        )
    return merge_outcomes(wf, step, branches, outcomes)


def merge_outcomes(
    wf: Workflow,
    step: StepDefinition,
    branches: list[Branch],
    outcomes: list[dict[str, Any] | BaseException],
) -> StepOutcome:
    """Merge branch results in branch order, or fail the step per ``allow_partial_success``."""
    results = [o for o in outcomes if isinstance(o, dict)]
    errors = {
        b.name: branch_error_text(o)
        for b, o in zip(branches, outcomes, strict=True)
        if isinstance(o, BaseException)
    }
    wf.checkpoint_audit(
        "PARALLEL_TASKS_MERGED",
        step.name,
        {"branches": len(branches), "succeeded": len(results), "failed": errors},
    )
    if errors and (not step.allow_partial_success or not results):
        first = next(o for o in outcomes if isinstance(o, BaseException))
        summary = "; ".join(f"{name}: {err}" for name, err in list(errors.items())[:5])
        raise StepFunctionError(
            f"PARALLEL step '{step.name}': {len(errors)} of {len(branches)} branches failed "
            f"({summary})",
            step=step.name,
        ) from first
    if errors:
        wf.record.runtime.setdefault("parallel_errors", {})[step.name] = errors
    if step.merge_function_path:
        merge = cached_step_function(step.merge_function_path, step=step.name)
        merged = check_result(merge(wf.state, results), step=step.name, function=merge)
    else:
        merged = merge_many(
            {},
            results,
            step.merge_strategy,
            step.merge_conflict_behavior,
            context=f"PARALLEL step '{step.name}'",
        )
    return Advance(merged)


async def join_stored(wf: Workflow, step: StepDefinition) -> StepOutcome:
    """Distributed join: merge the outcomes the branch runs recorded (under the join's claim)."""
    ledger = cast("RunLedger", wf.persistence)
    branches = plan_branches(wf, step)
    stored = {
        o.branch: o for o in await ledger.branch_results(wf.id, step.name, wf.run_number(step.name))
    }
    outcomes: list[dict[str, Any] | BaseException] = []
    for branch in branches:
        found = stored.get(branch.name)
        if found is None:  # cannot happen: the join is created when every branch recorded
            outcomes.append(StepFunctionError(f"branch '{branch.name}' recorded no outcome"))
        elif found.succeeded:
            outcomes.append(found.result or {})
        else:
            outcomes.append(RecordedBranchError(found.error or "failed"))
    return merge_outcomes(wf, step, branches, outcomes)


def fan_out(wf: Workflow, step: StepDefinition) -> StepOutcome | None:
    """Distributed fan-out: one branch run per branch, committed with PENDING_PARALLEL."""
    branches = plan_branches(wf, step)
    if not branches:
        return None  # nothing to run: merge the empty set in-process
    parallel = wf.record.runtime.setdefault("parallel", {})
    parallel[step.name] = {"run": wf.run_number(step.name), "branches": len(branches)}
    for branch in branches:
        wf.enqueue_run(RunKind.BRANCH, step.name, branch=branch.name)
    return Suspend(WorkflowStatus.PENDING_PARALLEL)


class ParallelStep(NotResumable):
    """Marks PENDING_PARALLEL durably, then runs the fan-out (again, after a crash).

    Distributed, the fan-out is one branch run per branch on the workers, and the join is a run
    of its own, created by the branch commit that completes the set (exactly once).
    """

    async def execute(
        self, wf: Workflow, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        if wf.status is WorkflowStatus.PENDING_PARALLEL:
            if wf.distributed:
                return await join_stored(wf, step)
            return await run_parallel(wf, step)
        if wf.distributed:
            suspended = fan_out(wf, step)
            if suspended is not None:
                return suspended

        async def follow_up() -> StepOutcome:
            return await run_parallel(wf, step)

        return Suspend(WorkflowStatus.PENDING_PARALLEL, follow_up=follow_up)
