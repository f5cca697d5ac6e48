"""Steps that wait or repeat: HUMAN_IN_LOOP, HUMAN_APPROVAL (with timeouts), WAIT, LOOP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ruvon.clock import utc_now
from ruvon.errors import InputValidationError, IterationLimitExceeded, StepTimeoutError
from ruvon.models import WorkflowStatus
from ruvon.testing.providers import EngineUnderTest
from tests.contract import steps_fixtures as fx

Status = WorkflowStatus
SHORT = 0.2  # seconds: timers and approval deadlines
PAST_SHORT = 0.3
RECORD_BODY = {"name": "Record", "type": "STANDARD", "function": fx.record_loop_item}


# --------------------------------------------------------------------------- HUMAN_IN_LOOP
def _register_human(engine: EngineUnderTest, *, function: bool) -> None:
    step: dict[str, Any] = {
        "name": "Approve",
        "type": "HUMAN_IN_LOOP",
        "input_model": fx.path("ApprovalInput"),
    }
    if function:
        step["function"] = fx.apply_approval
    engine.builder.register_workflow_inline(
        "Human",
        [
            {"name": "Prepare", "type": "STANDARD", "function": fx.mark_a},
            step,
            {"name": "Done", "type": "STANDARD", "function": fx.mark_d},
        ],
    )


@pytest.mark.parametrize("function", [True, False], ids=["with-function", "merge-input"])
async def test_human_in_loop_pauses_validates_and_resumes(
    engine: EngineUnderTest, function: bool
) -> None:
    _register_human(engine, function=function)
    wf = await engine.create("Human")
    assert await wf.run() is Status.WAITING_HUMAN
    assert wf.current_step == "Approve"
    assert (await engine.persistence.load_workflow(wf.id)).status is Status.WAITING_HUMAN

    await wf.next_step()  # no input: keeps waiting
    assert wf.status is Status.WAITING_HUMAN

    with pytest.raises(InputValidationError, match="approver"):
        await wf.next_step(user_input={"approved": "certainly not a bool"})
    assert wf.status is Status.WAITING_HUMAN
    stored = await engine.persistence.load_workflow(wf.id)
    assert (stored.status, stored.current_step_name) == (Status.WAITING_HUMAN, "Approve")
    assert fx.CALLS["apply_approval"] == 0

    # A different process answers: load, resume with valid input.
    answering = await engine.load(wf.id)
    await answering.next_step(user_input={"approved": True, "approver": "ann"})
    assert answering.status is Status.ACTIVE
    assert answering.current_step == "Done"
    assert await answering.run() is Status.COMPLETED
    expected = {"a": True, "approved": True, "approver": "ann", "d": True}
    if function:
        expected["validated_model"] = "ApprovalInput"
    assert answering.state == expected
    assert fx.CALLS["apply_approval"] == (1 if function else 0)
    assert fx.CALLS["mark_a"] == 1
    resumed = await engine.audit_events(wf.id, "STEP_RESUMED")
    assert [e.step_name for e in resumed] == ["Approve"]


# --------------------------------------------------------------------------- HUMAN_APPROVAL
def _register_approval(engine: EngineUnderTest, **options: Any) -> None:
    engine.builder.register_workflow_inline(
        "Approval",
        [
            {"name": "Approve", "type": "HUMAN_APPROVAL", **options},
            {"name": "Done", "type": "STANDARD", "function": fx.mark_d},
        ],
    )


async def test_human_approval_approved_by_a_person(engine: EngineUnderTest) -> None:
    _register_approval(engine)
    wf = await engine.create("Approval")
    await wf.next_step()
    assert wf.status is Status.WAITING_HUMAN
    with pytest.raises(InputValidationError):
        await wf.next_step(user_input={"reason": "no decision given"})
    assert wf.status is Status.WAITING_HUMAN
    await wf.next_step(user_input={"approved": True, "approver": "bob"})
    assert await wf.run() is Status.COMPLETED
    assert wf.state == {"approved": True, "approver": "bob", "reason": None, "d": True}


@pytest.mark.parametrize(("action", "approved"), [("auto_reject", False), ("auto_approve", True)])
async def test_human_approval_timeout_decides_automatically(
    engine: EngineUnderTest, action: str, approved: bool
) -> None:
    _register_approval(engine, approval_timeout=SHORT, on_timeout=action)
    wf = await engine.create("Approval")
    await wf.next_step()
    assert wf.status is Status.WAITING_HUMAN
    await wf.next_step()  # before the deadline nothing happens
    assert wf.status is Status.WAITING_HUMAN

    await asyncio.sleep(PAST_SHORT)
    assert wf.id in await engine.persistence.list_due_timers(utc_now())
    await wf.next_step()
    assert wf.status is Status.ACTIVE
    assert wf.state["approved"] is approved
    assert wf.state["reason"] == f"{action} after timeout"
    timed_out = await engine.audit_events(wf.id, "APPROVAL_TIMED_OUT")
    assert [e.details["approved"] for e in timed_out] == [approved]
    assert await wf.run() is Status.COMPLETED


async def test_human_approval_timeout_can_fail_the_workflow(engine: EngineUnderTest) -> None:
    _register_approval(engine, approval_timeout=SHORT, on_timeout="fail")
    wf = await engine.create("Approval")
    await wf.next_step()
    await asyncio.sleep(PAST_SHORT)
    with pytest.raises(StepTimeoutError, match="no decision"):
        await wf.next_step()
    assert wf.status is Status.FAILED
    assert (await engine.persistence.load_workflow(wf.id)).status is Status.FAILED
    assert fx.CALLS["mark_d"] == 0


# --------------------------------------------------------------------------- WAIT
def _register_timer(engine: EngineUnderTest) -> None:
    engine.builder.register_workflow_inline(
        "Timer",
        [
            {"name": "Before", "type": "STANDARD", "function": fx.mark_a, "automate_next": True},
            {"name": "Sleep", "type": "WAIT", "wait_seconds": SHORT},
            {"name": "After", "type": "STANDARD", "function": fx.mark_b},
        ],
    )


async def test_wait_step_is_a_durable_timer(engine: EngineUnderTest) -> None:
    _register_timer(engine)
    wf = await engine.create("Timer")
    await wf.next_step()
    assert wf.status is Status.WAITING_TIMER
    assert wf.current_step == "Sleep"
    run_at = wf.record.run_at
    assert run_at is not None and run_at > utc_now()
    assert wf.id not in await engine.persistence.list_due_timers(utc_now())

    result, _ = await wf.next_step()  # not due yet
    assert wf.status is Status.WAITING_TIMER
    assert result["status"] == "WAITING_TIMER"
    assert fx.CALLS["mark_b"] == 0

    await asyncio.sleep(PAST_SHORT)
    assert wf.id in await engine.persistence.list_due_timers(utc_now())
    await wf.next_step()
    assert wf.status is Status.ACTIVE
    assert wf.current_step == "After"
    assert await wf.run() is Status.COMPLETED
    assert [e.step_name for e in await engine.audit_events(wf.id, "TIMER_FIRED")] == ["Sleep"]


async def test_wait_step_survives_a_restart(engine: EngineUnderTest) -> None:
    _register_timer(engine)
    wf = await engine.create("Timer")
    await wf.next_step()
    assert wf.status is Status.WAITING_TIMER
    run_at = wf.record.run_at
    del wf  # the process that started it is gone

    stored = await engine.persistence.list_workflows(workflow_type="Timer")
    restarted = await engine.load(stored[0].id, builder=engine.new_builder())
    assert restarted.status is Status.WAITING_TIMER
    assert restarted.record.run_at == run_at
    await restarted.next_step()
    assert restarted.status is Status.WAITING_TIMER  # still not due

    await asyncio.sleep(PAST_SHORT)
    assert await restarted.run() is Status.COMPLETED
    assert restarted.state == {"a": True, "b": True}
    assert fx.CALLS == {"mark_a": 1, "mark_b": 1}


# --------------------------------------------------------------------------- LOOP
async def test_iterate_loop_runs_body_per_item_with_loop_context(
    engine: EngineUnderTest,
) -> None:
    engine.builder.register_workflow_inline(
        "Iterate",
        [
            {
                "name": "EachItem",
                "type": "LOOP",
                "mode": "ITERATE",
                "iterate_over": "state.items",
                "item_var_name": "item",
                "max_iterations": 10,
                "loop_body": [RECORD_BODY],
            },
            {"name": "After", "type": "STANDARD", "function": fx.mark_b},
        ],
    )
    wf = await engine.create("Iterate", {"items": ["x", "y", "z"], "seen": []})
    await wf.next_step()
    assert wf.current_step == "After"
    assert wf.state["seen"] == ["0:x:x", "1:y:y", "2:z:z"]
    assert fx.CALLS["record_loop_item"] == 3
    assert len(set(fx.EVENTS)) == 3  # a distinct idempotency key per iteration
    iterations = await engine.audit_events(wf.id, "LOOP_ITERATION")
    assert [e.details["index"] for e in iterations] == [0, 1, 2]
    assert await wf.run() is Status.COMPLETED
    assert (await engine.persistence.load_workflow(wf.id)).state["seen"] == wf.state["seen"]


def _register_while(engine: EngineUnderTest, *, until: int, limit: int) -> None:
    engine.builder.register_workflow_inline(
        "While",
        [
            {
                "name": "Count",
                "type": "LOOP",
                "mode": "WHILE",
                "while_condition": f"state.count < {until}",
                "max_iterations": limit,
                "loop_body": [{"name": "Inc", "type": "STANDARD", "function": fx.increment}],
            }
        ],
    )


async def test_while_loop_runs_until_condition_is_false(engine: EngineUnderTest) -> None:
    _register_while(engine, until=3, limit=5)
    wf = await engine.create("While", {"count": 0})
    assert await wf.run() is Status.COMPLETED
    assert wf.state == {"count": 3}
    assert fx.CALLS["increment"] == 3


async def test_while_loop_past_max_iterations_fails(engine: EngineUnderTest) -> None:
    _register_while(engine, until=100, limit=3)
    wf = await engine.create("While", {"count": 0})
    with pytest.raises(IterationLimitExceeded, match="max_iterations of 3"):
        await wf.next_step()
    assert wf.status is Status.FAILED
    assert fx.CALLS["increment"] == 3
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.status is Status.FAILED
    assert stored.state == {"count": 3}


async def test_iterate_loop_over_more_items_than_max_iterations_fails(
    engine: EngineUnderTest,
) -> None:
    engine.builder.register_workflow_inline(
        "TooMany",
        [
            {
                "name": "EachItem",
                "type": "LOOP",
                "mode": "ITERATE",
                "iterate_over": "items",
                "max_iterations": 2,
                "loop_body": [RECORD_BODY],
            }
        ],
    )
    wf = await engine.create("TooMany", {"items": [1, 2, 3], "seen": []})
    with pytest.raises(IterationLimitExceeded):
        await wf.next_step()
    assert wf.status is Status.FAILED
    assert fx.CALLS["record_loop_item"] == 0
