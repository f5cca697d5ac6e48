"""PARALLEL fan-out and the merge strategies, through real steps, against every combination."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ruvon.errors import MergeConflictError, StepFunctionError
from ruvon.merge import MergeConflictBehavior, MergeStrategy
from ruvon.models import WorkflowStatus
from ruvon.testing.providers import EngineUnderTest
from tests.contract import steps_fixtures as fx

Status = WorkflowStatus
ITEMS = list(range(50))


def _static(engine: EngineUnderTest, tasks: list[Any], **options: Any) -> None:
    engine.builder.register_workflow_inline(
        "Fan",
        [
            {
                "name": "Fan",
                "type": "PARALLEL",
                "tasks": [{"name": f"T{i}", "function": fn} for i, fn in enumerate(tasks)],
                **options,
            },
            {"name": "After", "type": "STANDARD", "function": fx.mark_d},
        ],
    )


async def test_static_tasks_all_run_and_merge(engine: EngineUnderTest) -> None:
    _static(engine, [fx.task_x, fx.task_y, fx.path("task_z")])
    wf = await engine.create("Fan", {"start": True})
    await wf.next_step()
    assert wf.status is Status.ACTIVE
    assert wf.current_step == "After"
    assert wf.state == {"start": True, "x": 1, "y": 2, "z": 3}
    assert sorted(fx.EVENTS) == ["T0", "T1", "T2"]  # each branch saw its own name
    suspended = await engine.audit_events(wf.id, "STEP_SUSPENDED")
    assert [e.new_status for e in suspended] == ["PENDING_PARALLEL"]
    merged = await engine.audit_events(wf.id, "PARALLEL_TASKS_MERGED")
    assert [(e.details["branches"], e.details["succeeded"]) for e in merged] == [(3, 3)]
    assert await wf.run() is Status.COMPLETED
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.state == {"start": True, "x": 1, "y": 2, "z": 3, "d": True}


async def test_dynamic_fan_out_over_fifty_items_keeps_item_order(
    engine: EngineUnderTest,
) -> None:
    engine.builder.register_workflow_inline(
        "Dynamic",
        [
            {
                "name": "Double",
                "type": "PARALLEL",
                "iterate_over": "items",
                "task_function": fx.double_item,
                "item_var_name": "item",
                "merge_strategy": "APPEND",
            }
        ],
    )
    wf = await engine.create("Dynamic", {"items": ITEMS, "results": [-1]})
    await wf.next_step()
    assert wf.status is Status.COMPLETED
    assert wf.state["results"] == [-1, *(i * 2 for i in ITEMS)]
    assert fx.CALLS["double_item"] == len(ITEMS)
    # Every branch got its item, its index and a distinct branch name in its context.
    assert sorted((index, item) for index, item, _ in fx.EVENTS) == [(i, i) for i in ITEMS]
    assert len({branch for _, _, branch in fx.EVENTS}) == len(ITEMS)
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.state["results"] == wf.state["results"]


async def test_partial_success_keeps_successful_branches(engine: EngineUnderTest) -> None:
    engine.builder.register_workflow_inline(
        "Partial",
        [
            {
                "name": "Double",
                "type": "PARALLEL",
                "iterate_over": "state.items",
                "task_function": fx.double_item_or_fail,
                "merge_strategy": "append",
                "allow_partial_success": True,
            }
        ],
    )
    wf = await engine.create("Partial", {"items": ITEMS, "results": []})
    await wf.next_step()
    assert wf.status is Status.COMPLETED
    survivors = [i for i in ITEMS if i % 10 != 3]
    assert wf.state["results"] == [i * 2 for i in survivors]
    stored = await engine.persistence.load_workflow(wf.id)
    failed = stored.runtime["parallel_errors"]["Double"]
    assert sorted(failed) == sorted(f"Double[{i}]" for i in ITEMS if i % 10 == 3)
    assert all("cursed" in message for message in failed.values())


async def test_branch_failure_without_partial_success_fails_the_workflow(
    engine: EngineUnderTest,
) -> None:
    _static(engine, [fx.task_x, fx.task_boom, fx.task_z])
    wf = await engine.create("Fan", {"start": True})
    with pytest.raises(StepFunctionError, match="1 of 3 branches failed"):
        await wf.next_step()
    assert wf.status is Status.FAILED
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.status is Status.FAILED
    assert stored.state == {"start": True}  # nothing merged
    assert fx.CALLS["task_boom"] == 1
    assert fx.CALLS["mark_d"] == 0


async def test_merge_function_combines_branch_results(engine: EngineUnderTest) -> None:
    _static(
        engine,
        [fx.value_one, fx.value_two, fx.value_four],
        merge_function_path=fx.path("sum_values"),
    )
    wf = await engine.create("Fan")
    await wf.next_step()
    assert wf.state == {"total": 7, "merged_branches": 3}


async def test_conflicting_branches_with_raise_error_fail(engine: EngineUnderTest) -> None:
    _static(engine, [fx.conflict_one, fx.conflict_two], merge_conflict_behavior="raise_error")
    wf = await engine.create("Fan")
    with pytest.raises(MergeConflictError, match="shared"):
        await wf.next_step()
    assert wf.status is Status.FAILED
    assert (await engine.persistence.load_workflow(wf.id)).status is Status.FAILED


@pytest.mark.parametrize(
    ("conflict", "expected"),
    [("prefer_new", 2), ("PREFER_EXISTING", 1), ("prefer_old", 1)],
)
async def test_conflicting_branches_resolved_by_behaviour(
    engine: EngineUnderTest, conflict: str, expected: int
) -> None:
    _static(engine, [fx.conflict_one, fx.conflict_two], merge_conflict_behavior=conflict)
    wf = await engine.create("Fan")
    await wf.next_step()
    assert wf.state == {"shared": expected}


# --------------------------------------------------------------------------- merge strategies
S, C = MergeStrategy, MergeConflictBehavior
_EXISTING, _NEW = fx.MERGE_EXISTING, fx.MERGE_NEW
_NEW_WINS_SHALLOW = {**_EXISTING, **_NEW}
_OLD_WINS_SHALLOW = {**_EXISTING, "added": True}
_NEW_WINS_DEEP = {**_NEW_WINS_SHALLOW, "nested": {"x": 10, "y": 2, "z": 3}}
_OLD_WINS_DEEP = {**_OLD_WINS_SHALLOW, "nested": {"x": 1, "y": 2, "z": 3}}

MERGE_EXPECTED: dict[tuple[MergeStrategy, MergeConflictBehavior], dict[str, Any] | None] = {
    (S.SHALLOW, C.PREFER_NEW): _NEW_WINS_SHALLOW,
    (S.SHALLOW, C.PREFER_EXISTING): _OLD_WINS_SHALLOW,
    (S.SHALLOW, C.RAISE_ERROR): None,
    (S.DEEP, C.PREFER_NEW): _NEW_WINS_DEEP,
    (S.DEEP, C.PREFER_EXISTING): _OLD_WINS_DEEP,
    (S.DEEP, C.RAISE_ERROR): None,
    (S.APPEND, C.PREFER_NEW): {**_NEW_WINS_SHALLOW, "tags": ["t1", "t2"]},
    (S.APPEND, C.PREFER_EXISTING): {**_OLD_WINS_SHALLOW, "tags": ["t1", "t2"]},
    (S.APPEND, C.RAISE_ERROR): None,
    **{(S.REPLACE, c): _NEW_WINS_SHALLOW for c in C},
    **{(S.OVERWRITE_EXISTING, c): _NEW_WINS_DEEP for c in C},
    **{(S.PRESERVE_EXISTING, c): _OLD_WINS_DEEP for c in C},
}


def test_merge_table_covers_every_combination() -> None:
    assert set(MERGE_EXPECTED) == {(s, c) for s in S for c in C}


@pytest.mark.parametrize(
    ("strategy", "conflict"),
    sorted(MERGE_EXPECTED),
    ids=[f"{s.value}-{c.value}" for s, c in sorted(MERGE_EXPECTED)],
)
async def test_step_result_merges_by_strategy_and_conflict_behaviour(
    engine: EngineUnderTest, strategy: MergeStrategy, conflict: MergeConflictBehavior
) -> None:
    engine.builder.register_workflow_inline(
        "Merge",
        [
            {
                "name": "Probe",
                "type": "STANDARD",
                "function": fx.merge_probe,
                # Upper case, as YAML files usually spell them.
                "merge_strategy": strategy.value.upper(),
                "merge_conflict_behavior": conflict.value.upper(),
            }
        ],
    )
    wf = await engine.create("Merge", copy.deepcopy(_EXISTING))
    expected = MERGE_EXPECTED[(strategy, conflict)]
    if expected is None:
        with pytest.raises(MergeConflictError, match="'a'"):
            await wf.next_step()
        assert wf.status is Status.FAILED
        stored = await engine.persistence.load_workflow(wf.id)
        assert stored.status is Status.FAILED
        assert stored.state == _EXISTING
        return
    await wf.next_step()
    assert wf.status is Status.COMPLETED
    assert wf.state == expected
    assert (await engine.persistence.load_workflow(wf.id)).state == expected
