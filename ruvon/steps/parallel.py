"""PARALLEL: fan out (static ``tasks`` or ``iterate_over``), then merge the branch results.

Branches run through the execution provider concurrently (a thread pool overlaps them, the sync
provider runs them one by one). Each branch gets its own copy of the state; only what it
returns is merged, in task order, with the step's merge strategy and conflict behaviour.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ruvon.definitions.imports import cached_step_function
from ruvon.definitions.rules import StepProblem, unless
from ruvon.engine.invoke import call_step_function, check_result
from ruvon.engine.outcomes import Advance, StepKind, StepOutcome, Suspend
from ruvon.errors import ConfigurationError, StepFunctionError
from ruvon.merge import merge_many
from ruvon.models import WorkflowDirective, WorkflowStatus
from ruvon.providers.runs import RunKind
from ruvon.records import ParallelRun
from ruvon.steps.iteration import branch_state, resolve_items

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.runtime import RemoteWork, StepRuntime


@dataclass(frozen=True)
class Branch:
    name: str
    function: Callable[..., Any]
    kwargs: dict[str, Any]
    item: Any = None
    index: int | None = None
    timeout: float | None = None


def plan_branches(rt: StepRuntime, step: StepDefinition) -> list[Branch]:
    """The branches of one PARALLEL step run, in merge order."""
    if step.iterate_over is not None and step.task_function is not None:
        fn = cached_step_function(step.task_function, step=step.name)
        return [_item_branch(step, fn, i, item) for i, item in enumerate(resolve_items(rt, step))]
    return [_task_branch(step, i) for i in range(len(step.tasks))]


@dataclass(frozen=True)
class PlannedBranch:
    """One branch of a PARALLEL step (None if the step has no branch of that name), its merge
    position, and how many branches the step has."""

    branch: Branch | None
    index: int
    count: int


def plan_branch(rt: StepRuntime, step: StepDefinition, name: str) -> PlannedBranch:
    """The branch called ``name`` alone: what one distributed branch run needs.

    Building every branch to pick one made each of N branch runs cost O(N) (a 1,000-branch
    fan-out spent most of its worker time here); this builds one.
    """
    if step.iterate_over is not None and step.task_function is not None:
        items = resolve_items(rt, step)
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
    rt: StepRuntime, step: StepDefinition, branch: Branch, run: int, *, private_state: bool = True
) -> dict[str, Any]:
    """Call one branch's function on its own copy of the state (retries per the step's policy).

    ``private_state=False`` hands the function the workflow's state itself: for a caller that
    loaded the workflow for this branch alone and drops it afterwards (a worker's branch run),
    where a deep copy per branch would only cost time in proportion to the state.
    """
    context = rt.make_context(
        step,
        loop_item=branch.item,
        loop_index=branch.index,
        item=branch.item,
        branch_name=branch.name,
        idempotency_key=f"{rt.id}:{step.name}:{run}:{branch.name}",
    )
    try:
        return await call_step_function(
            rt,
            step,
            branch.function,
            context=context,
            state=branch_state(rt) if private_state else rt.state,
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


async def run_parallel(rt: StepRuntime, step: StepDefinition) -> StepOutcome:
    """Run every branch, then merge (or fail per ``allow_partial_success``)."""
    branches = plan_branches(rt, step)
    run = rt.run_number(step.name)
    size = step.batch_size or len(branches) or 1
    outcomes: list[dict[str, Any] | BaseException] = []
    for start in range(0, len(branches), size):
        batch = branches[start : start + size]
        outcomes += await asyncio.gather(
            *(run_branch(rt, step, b, run) for b in batch), return_exceptions=True
        )
    return merge_outcomes(rt, step, branches, outcomes)


def merge_outcomes(
    rt: StepRuntime,
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
    rt.audit(
        "PARALLEL_TASKS_MERGED",
        step.name,
        {
            "branches": len(branches),
            "succeeded": len(results),
            "failed": errors,
            "run": rt.run_number(step.name),  # which run of the step (a LOOP re-enters it)
        },
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
        rt.record.runtime.setdefault("parallel_errors", {})[step.name] = errors
    if step.merge_function_path:
        merge = cached_step_function(step.merge_function_path, step=step.name)
        merged = check_result(merge(rt.state, results), step=step.name, function=merge)
    else:
        merged = merge_many(
            {},
            results,
            step.merge_strategy,
            step.merge_conflict_behavior,
            context=f"PARALLEL step '{step.name}'",
        )
    return Advance(merged)


async def join_stored(rt: StepRuntime, remote: RemoteWork, step: StepDefinition) -> StepOutcome:
    """Distributed join: merge the outcomes the branch runs recorded (under the join's claim)."""
    ledger = remote.ledger
    if ledger is None:
        raise ConfigurationError(
            f"PARALLEL step '{step.name}': {type(rt.persistence).__name__} keeps no branch "
            "results; a cluster needs its shared PostgreSQL database"
        )
    branches = plan_branches(rt, step)
    stored = {
        o.branch: o for o in await ledger.branch_results(rt.id, step.name, rt.run_number(step.name))
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
    return merge_outcomes(rt, step, branches, outcomes)


def fan_out(rt: StepRuntime, remote: RemoteWork, step: StepDefinition) -> Suspend | None:
    """Distributed fan-out: one branch run per branch, committed with PENDING_PARALLEL.

    With a ``batch_size`` only that many are enqueued: each branch's commit releases the next
    (see :func:`batch_release`), so at most ``batch_size`` run at once, as in-process.
    """
    branches = plan_branches(rt, step)
    if not branches:
        return None  # nothing to run: merge the empty set in-process
    parallel = rt.record.runtime.setdefault("parallel", {})
    parallel[step.name] = ParallelRun(run=rt.run_number(step.name), branches=len(branches))
    first, _ = batch_release(step, len(branches))
    for branch in branches[: first or None]:
        remote.enqueue(RunKind.BRANCH, step.name, branch=branch.name)
    return Suspend(WorkflowStatus.PENDING_PARALLEL)


def batch_release(step: StepDefinition, count: int) -> tuple[int, list[str] | None]:
    """How a distributed fan-out of ``count`` branches is released: ``(batch, waiting)``.

    ``batch`` is 0 when every branch starts at once; else the first ``batch`` start with the
    fan-out and each recorded outcome releases the next. ``waiting`` names the branches after
    the first batch for static tasks (None for a dynamic fan-out, whose names are by index).
    """
    batch = step.batch_size
    if batch <= 0 or batch >= count:
        return 0, None
    if step.iterate_over is not None and step.task_function is not None:
        return batch, None
    return batch, [task.name for task in step.tasks[batch:]]


class ParallelStep(StepKind):
    """Marks PENDING_PARALLEL durably, then runs the fan-out (again, after a crash).

    Distributed, the fan-out is one branch run per branch on the workers (enqueued when the
    workflow arrives at the step, :meth:`dispatch_ahead`), and the join is a run of its own,
    created by the branch commit that completes the set (exactly once).
    """

    async def execute(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        if rt.status is WorkflowStatus.PENDING_PARALLEL:
            remote = rt.remote
            if remote is not None:
                return await join_stored(rt, remote, step)
            return await run_parallel(rt, step)

        async def follow_up() -> StepOutcome:
            return await run_parallel(rt, step)

        return Suspend(WorkflowStatus.PENDING_PARALLEL, follow_up=follow_up)

    def dispatch_ahead(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> Suspend | None:
        remote = rt.remote
        return fan_out(rt, remote, step) if remote is not None else None

    def validate(self, step: StepDefinition) -> Iterator[StepProblem]:
        dynamic = step.iterate_over is not None or step.task_function is not None
        yield from unless(
            bool(step.tasks) or dynamic, "tasks", "a PARALLEL step needs 'tasks' or 'iterate_over'"
        )
        if dynamic:
            yield from unless(
                step.iterate_over is not None,
                "iterate_over",
                "dynamic fan-out needs 'iterate_over'",
            )
            yield from unless(
                step.task_function is not None,
                "task_function",
                "dynamic fan-out needs 'task_function'",
            )
