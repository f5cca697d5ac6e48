"""Child workflows (SUB_WORKFLOW, StartSubWorkflowDirective, FIRE_AND_FORGET) and CRON_SCHEDULE."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ruvon.errors import ChildWorkflowFailed
from ruvon.models import WorkflowStatus
from ruvon.testing.providers import EngineUnderTest
from tests.contract import steps_fixtures as fx

Status = WorkflowStatus


def _register_children(engine: EngineUnderTest) -> None:
    register = engine.builder.register_workflow_inline
    register("Child", [{"name": "Double", "type": "STANDARD", "function": fx.double_value}])
    register(
        "ChildHuman",
        [
            {
                "name": "Double",
                "type": "STANDARD",
                "function": fx.double_value,
                "automate_next": True,
            },
            {"name": "Approve", "type": "HUMAN_IN_LOOP", "input_model": fx.path("ApprovalInput")},
            {"name": "Finish", "type": "STANDARD", "function": fx.mark_c},
        ],
    )
    register("ChildFail", [{"name": "Boom", "type": "STANDARD", "function": fx.always_fails}])
    register(
        "ChildHumanFail",
        [
            {"name": "Approve", "type": "HUMAN_IN_LOOP", "automate_next": True},
            {"name": "Boom", "type": "STANDARD", "function": fx.always_fails},
        ],
    )


def _register_parent(engine: EngineUnderTest, child_type: str) -> None:
    engine.builder.register_workflow_inline(
        "Parent",
        [
            {"name": "Prepare", "type": "STANDARD", "function": fx.mark_a},
            {
                "name": "Spawn",
                "type": "SUB_WORKFLOW",
                "target_workflow_type": child_type,
                "initial_data_template": {"value": "{{ state.value }}"},
                "output_key": "child_state",
            },
        ],
    )


async def _only_child(engine: EngineUnderTest, parent_id: str) -> str:
    children = await engine.persistence.list_workflows(parent_execution_id=parent_id)
    assert len(children) == 1
    return children[0].id


async def test_sub_workflow_runs_child_and_merges_its_results(engine: EngineUnderTest) -> None:
    _register_children(engine)
    _register_parent(engine, "Child")
    parent = await engine.create("Parent", {"value": 5})
    assert await parent.run() is Status.COMPLETED

    child_id = await _only_child(engine, parent.id)
    child = await engine.persistence.load_workflow(child_id)
    assert child.status is Status.COMPLETED
    assert child.parent_execution_id == parent.id
    assert child.state == {"value": 5, "doubled": 10}  # a lone {{ expr }} keeps its type
    assert fx.EVENTS[-1] == parent.id  # the child's context knew its parent
    results = parent.state["sub_workflow_results"]
    assert list(results) == [child_id]
    assert results[child_id]["status"] == "COMPLETED"
    assert results[child_id]["state"] == {"value": 5, "doubled": 10}
    assert parent.state["child_state"] == {"value": 5, "doubled": 10}
    assert parent.sub_workflow_results == results
    stored_parent = await engine.persistence.load_workflow(parent.id)
    assert stored_parent.state["sub_workflow_results"] == results


async def test_parent_waits_for_a_paused_child_and_resumes_when_it_completes(
    engine: EngineUnderTest,
) -> None:
    _register_children(engine)
    _register_parent(engine, "ChildHuman")
    parent = await engine.create("Parent", {"value": 4})
    assert await parent.run() is Status.PENDING_SUB_WORKFLOW

    child_id = await _only_child(engine, parent.id)
    stored_parent = await engine.persistence.load_workflow(parent.id)
    assert stored_parent.status is Status.PENDING_SUB_WORKFLOW
    assert stored_parent.blocked_on_child_id == child_id

    # Another process picks the child up later and a person answers it.
    child = await engine.load(child_id, builder=engine.new_builder())
    assert child.status is Status.WAITING_HUMAN
    assert child.parent_execution_id == parent.id
    await child.next_step(user_input={"approved": True, "approver": "ann"})
    assert await child.run() is Status.COMPLETED

    resumed = await engine.load(parent.id)
    assert resumed.status is Status.COMPLETED
    child_result = resumed.state["sub_workflow_results"][child_id]
    assert child_result["state"] == {
        "value": 4,
        "doubled": 8,
        "approved": True,
        "approver": "ann",
        "c": True,
    }
    assert resumed.state["child_state"]["c"] is True
    assert fx.CALLS["mark_a"] == 1  # the parent's first step did not run again


async def test_failed_child_fails_the_parent(engine: EngineUnderTest) -> None:
    _register_children(engine)
    _register_parent(engine, "ChildFail")
    parent = await engine.create("Parent", {"value": 1})
    with pytest.raises(ChildWorkflowFailed):
        while parent.status is Status.ACTIVE:
            await parent.next_step()
    assert parent.status is Status.FAILED_CHILD_WORKFLOW
    child_id = await _only_child(engine, parent.id)
    assert (await engine.persistence.load_workflow(child_id)).status is Status.FAILED
    stored_parent = await engine.persistence.load_workflow(parent.id)
    assert stored_parent.status is Status.FAILED_CHILD_WORKFLOW
    assert stored_parent.error is not None and child_id in stored_parent.error


@pytest.mark.parametrize("ending", ["fails", "cancelled"])
async def test_waiting_parent_fails_when_its_resumed_child_does_not_complete(
    engine: EngineUnderTest, ending: str
) -> None:
    _register_children(engine)
    _register_parent(engine, "ChildHumanFail")
    parent = await engine.create("Parent", {"value": 2})
    assert await parent.run() is Status.PENDING_SUB_WORKFLOW
    child = await engine.load(await _only_child(engine, parent.id))
    assert child.status is Status.WAITING_HUMAN
    if ending == "fails":
        with pytest.raises(ValueError, match="always fails"):
            await child.next_step(user_input={"ok": True})
        assert child.status is Status.FAILED
    else:
        await child.cancel(reason="no longer needed")
        assert child.status is Status.CANCELLED
    stored_parent = await engine.persistence.load_workflow(parent.id)
    assert stored_parent.status is Status.FAILED_CHILD_WORKFLOW
    assert stored_parent.error is not None and child.id in stored_parent.error


async def test_start_sub_workflow_directive_from_a_standard_step(
    engine: EngineUnderTest,
) -> None:
    _register_children(engine)
    engine.builder.register_workflow_inline(
        "Directing",
        [
            {"name": "Delegate", "type": "STANDARD", "function": fx.start_child_directive},
            {"name": "After", "type": "STANDARD", "function": fx.mark_b},
        ],
    )
    parent = await engine.create("Directing", {"value": 6})
    assert await parent.run() is Status.COMPLETED
    child_id = await _only_child(engine, parent.id)
    child = await engine.persistence.load_workflow(child_id)
    assert (child.workflow_type, child.status) == ("Child", Status.COMPLETED)
    assert child.state == {"value": 6, "doubled": 12}
    assert parent.state["child_requested"] is True
    assert parent.state["sub_workflow_results"][child_id]["state"]["doubled"] == 12
    assert parent.state["b"] is True
    assert fx.CALLS["start_child_directive"] == 1


async def test_fire_and_forget_child_is_independent(engine: EngineUnderTest) -> None:
    _register_children(engine)
    engine.builder.register_workflow_inline(
        "Spawner",
        [
            {
                "name": "Spawn",
                "type": "FIRE_AND_FORGET",
                "target_workflow_type": "ChildFail",
                "initial_data_template": {"value": "{{ state.value }}"},
                "output_key": "spawned_id",
            },
            {"name": "After", "type": "STANDARD", "function": fx.mark_b},
        ],
    )
    parent = await engine.create("Spawner", {"value": 3})
    assert await parent.run() is Status.COMPLETED
    spawned_id = parent.state["spawned_id"]
    child = await engine.persistence.load_workflow(spawned_id)
    assert child.workflow_type == "ChildFail"
    assert child.status is Status.FAILED  # its failure stayed its own
    assert child.parent_execution_id is None
    assert child.state == {"value": 3}
    assert await engine.persistence.list_workflows(parent_execution_id=parent.id) == []
    assert parent.state["b"] is True
    spawned = await engine.audit_events(parent.id, "WORKFLOW_SPAWNED")
    assert [e.details["child_id"] for e in spawned] == [spawned_id]


async def test_cron_schedule_step_registers_a_schedule(engine: EngineUnderTest) -> None:
    engine.builder.register_workflow_inline(
        "Report", [{"name": "Build", "type": "STANDARD", "function": fx.mark_a}]
    )
    engine.builder.register_workflow_inline(
        "Scheduler",
        [
            {
                "name": "Schedule",
                "type": "CRON_SCHEDULE",
                "schedule_name": "weekly_report_{{ state.user_id }}",
                "cron_expression": "0 9 * * MON",
                "target_workflow_type": "Report",
                "initial_data_template": {"user_id": "{{ state.user_id }}"},
            }
        ],
    )
    before = datetime.now(UTC)
    wf = await engine.create("Scheduler", {"user_id": "u1"})
    assert await wf.run() is Status.COMPLETED
    schedules = await engine.persistence.list_schedules()
    assert [s.name for s in schedules] == ["weekly_report_u1"]
    schedule = schedules[0]
    assert (schedule.workflow_type, schedule.cron) == ("Report", "0 9 * * MON")
    assert schedule.initial_data == {"user_id": "u1"}
    assert schedule.enabled is True
    assert schedule.source_workflow_id == wf.id
    assert schedule.next_run_at is not None
    next_run = schedule.next_run_at.astimezone(UTC)
    assert next_run > before
    assert (next_run.weekday(), next_run.hour, next_run.minute) == (0, 9, 0)
    registered = await engine.audit_events(wf.id, "SCHEDULE_REGISTERED")
    assert [e.details["schedule"] for e in registered] == ["weekly_report_u1"]
    assert fx.CALLS["mark_a"] == 0  # registering never runs the target workflow
