"""Timeouts that stop work: a step attempt past its ``timeout`` is stopped before its retry
starts, and a workflow past its deadline (workflow-level ``timeout``) fails, compensating under
saga mode."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from ruvon.errors import ConcurrencyConflict, InvalidWorkflowOperation, WorkflowTimeoutError
from ruvon.models import WorkflowStatus
from ruvon.testing.providers import EngineUnderTest
from tests.contract import steps_fixtures as fx

Status = WorkflowStatus
DEADLINE = 0.3  # seconds: the workflow-level timeout of these workflows
PAST_DEADLINE = 0.45


# --------------------------------------------------------------------------- step timeouts
@pytest.mark.parametrize("blocking", [False, True], ids=["python-loop", "blocked-in-c"])
async def test_a_timed_out_sync_attempt_ends_before_its_retry_starts(
    engine: EngineUnderTest, blocking: bool
) -> None:
    engine.builder.register_workflow_inline(
        "RetryAfterTimeout",
        [
            {
                "name": "Spin",
                "type": "STANDARD",
                "function": fx.attempt_spins_then_succeeds,
                "timeout": 0.2,
                "retry": {"max_attempts": 2, "initial_interval": 0.01, "jitter": False},
            }
        ],
    )
    wf = await engine.create("RetryAfterTimeout", {"blocking": blocking})
    assert await wf.run() is Status.COMPLETED, wf.error
    assert wf.state["attempts"] == 2
    # Attempt 1 was stopped (interrupted, or its C call returned and then it was) and had
    # ended before attempt 2 started: never two attempts of the step at once.
    assert fx.EVENTS == ["start:1", "end:1", "start:2", "end:2"]
    retries = await engine.audit_events(wf.id, "STEP_RETRY")
    assert [e.details["error"] for e in retries] == [
        "StepTimeoutError: step 'Spin' exceeded its timeout of 0.2s (attempt 1)"
    ]


# --------------------------------------------------------------------------- workflow deadline
def _register_spinner(engine: EngineUnderTest, function: Any, *, saga: bool = False) -> None:
    engine.builder.register_workflow_inline(
        "Deadline",
        [
            {
                "name": "Reserve",
                "type": "STANDARD",
                "function": fx.mark_a,
                "compensate_function": fx.undo_a,
            },
            {"name": "Spin", "type": "STANDARD", "function": function},
            {"name": "Ship", "type": "STANDARD", "function": fx.mark_d},
        ],
        saga_mode=saga,
        timeout=DEADLINE,
    )


def _assert_timed_out(record_error: str | None, workflow_id: str, step: str) -> None:
    assert (record_error or "").startswith(
        f"WorkflowTimeoutError: workflow '{workflow_id}' exceeded its timeout of {DEADLINE:g}s "
        f"(at step '{step}')"
    ), record_error


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_the_deadline_stops_the_running_step_and_fails_the_workflow(
    engine: EngineUnderTest, kind: str
) -> None:
    _register_spinner(engine, fx.spin_sync if kind == "sync" else fx.spin_async)
    wf = await engine.create("Deadline")
    assert wf.record.deadline_at is not None
    assert wf.record.deadline_at == wf.record.created_at + timedelta(seconds=DEADLINE)
    assert await wf.run() is Status.FAILED
    _assert_timed_out(wf.error, wf.id, "Spin")
    # The step was stopped, not abandoned: it had ended when the failure was recorded.
    assert (fx.CALLS["spin"], fx.CALLS["spin_ended"], fx.CALLS["mark_d"]) == (1, 1, 0)
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.status is Status.FAILED and stored.error == wf.error
    assert stored.deadline_at == wf.record.deadline_at
    timed_out = await engine.audit_events(wf.id, "WORKFLOW_TIMED_OUT")
    assert [(e.step_name, e.details["timeout"]) for e in timed_out] == [("Spin", DEADLINE)]
    assert await engine.persistence.list_past_deadline(stored.deadline_at) == []
    # Its deadline was fixed at its start: a retry is refused, saying why, and changes nothing.
    with pytest.raises(InvalidWorkflowOperation, match=r"past its deadline .*start a new"):
        await wf.retry()
    again = await engine.persistence.load_workflow(wf.id)
    assert (again.status, again.version) == (Status.FAILED, stored.version)


async def test_under_saga_the_deadline_compensates_the_completed_steps(
    engine: EngineUnderTest,
) -> None:
    _register_spinner(engine, fx.spin_sync, saga=True)
    wf = await engine.create("Deadline")
    assert await wf.run() is Status.FAILED_ROLLED_BACK
    _assert_timed_out(wf.error, wf.id, "Spin")
    assert fx.CALLS["undo_a"] == 1
    assert wf.state["a_done"] is False  # what undo_a wrote
    log = await engine.persistence.get_compensation_log(wf.id)
    assert [(c.step_name, c.succeeded) for c in log] == [("Reserve", True)]


async def test_a_waiting_workflow_fails_when_its_deadline_has_passed(
    engine: EngineUnderTest,
) -> None:
    engine.builder.register_workflow_inline(
        "WaitsForAPerson",
        [
            {"name": "Prepare", "type": "STANDARD", "function": fx.mark_a},
            {"name": "Approve", "type": "HUMAN_IN_LOOP", "function": fx.mark_b},
        ],
        timeout=DEADLINE,
    )
    wf = await engine.create("WaitsForAPerson")
    assert await wf.run() is Status.WAITING_HUMAN
    assert await engine.persistence.list_past_deadline(wf.record.created_at) == []
    await asyncio.sleep(PAST_DEADLINE)
    assert await engine.persistence.list_past_deadline(wf.record.deadline_at) == [wf.id]

    # The answer comes too late: the deadline is checked before the step resumes.
    late = await engine.load(wf.id)
    stale = await engine.load(wf.id)
    with pytest.raises(WorkflowTimeoutError, match=f"workflow '{wf.id}' exceeded its timeout"):
        await late.next_step(user_input={"ok": True})
    assert late.status is Status.FAILED
    _assert_timed_out(late.error, wf.id, "Approve")
    assert fx.CALLS["mark_b"] == 0
    # A copy read before the failure cannot save over it: its write loses on the version.
    with pytest.raises(ConcurrencyConflict):
        await stale.next_step(user_input={"ok": True})
    stored = await engine.persistence.load_workflow(wf.id)
    assert (stored.status, stored.error) == (Status.FAILED, late.error)
    assert len(await engine.audit_events(wf.id, "WORKFLOW_TIMED_OUT")) == 1


async def test_the_deadline_is_checked_before_the_first_step(engine: EngineUnderTest) -> None:
    engine.builder.register_workflow_inline(
        "LateStart",
        [{"name": "First", "type": "STANDARD", "function": fx.mark_a}],
        timeout=DEADLINE,
    )
    wf = await engine.create("LateStart", automate_start=False)
    await asyncio.sleep(PAST_DEADLINE)
    assert await wf.run() is Status.FAILED
    _assert_timed_out(wf.error, wf.id, "First")
    assert fx.CALLS["mark_a"] == 0


async def test_a_workflow_that_ends_in_time_keeps_its_result(engine: EngineUnderTest) -> None:
    engine.builder.register_workflow_inline(
        "InTime",
        [{"name": "First", "type": "STANDARD", "function": fx.mark_a}],
        timeout=60,
    )
    wf = await engine.create("InTime")
    assert await wf.run() is Status.COMPLETED
    assert wf.state == {"a": True}
    assert await engine.audit_events(wf.id, "WORKFLOW_TIMED_OUT") == []
