"""WAIT_FOR_EVENT and signals, on every persistence x execution combination."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ruvon.errors import (
    InputValidationError,
    InvalidWorkflowOperation,
    StepTimeoutError,
    WorkflowNotFound,
)
from ruvon.models import WorkflowStatus
from ruvon.signals import SignalOutcome, send_signal
from ruvon.testing.providers import EngineUnderTest
from tests.contract import steps_fixtures as fx

Status = WorkflowStatus
SHORT = 0.2


def _register(engine: EngineUnderTest, **wait: Any) -> None:
    step: dict[str, Any] = {
        "name": "AwaitPayment",
        "type": "WAIT_FOR_EVENT",
        "event": "paid",
        "input_model": fx.path("ApprovalInput"),
        **wait,
    }
    engine.builder.register_workflow_inline(
        "Signalled",
        [
            {"name": "Prepare", "type": "STANDARD", "function": fx.mark_a, "automate_next": True},
            {**step, "automate_next": True},
            {"name": "Done", "type": "STANDARD", "function": fx.mark_d},
        ],
    )


async def test_a_signal_resumes_a_waiting_workflow_once(engine: EngineUnderTest) -> None:
    _register(engine)
    wf = await engine.create("Signalled")
    assert await wf.run() is Status.WAITING_HUMAN
    assert wf.current_step == "AwaitPayment"

    sent = await send_signal(
        wf, "paid", {"approved": True, "approver": "bank"}, event_id="pay-1", actor="ops"
    )
    assert sent.outcome is SignalOutcome.DELIVERED and sent.event_id == "pay-1"
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.status is Status.COMPLETED
    assert stored.state["approver"] == "bank" and stored.state["d"] is True
    assert stored.runtime["signals_consumed"] == ["pay-1"]
    events = [(e.event_type, e.details) for e in await engine.persistence.get_audit_log(wf.id)]
    assert ("OPERATOR_ACTION", {"action": "signal", "by": "ops"}) in events
    received = [d for event, d in events if event == "EVENT_RECEIVED"]
    assert received == [{"event": "paid", "event_id": "pay-1", "sent_by": "ops"}]

    # The same event again: nothing changes (and a finished workflow refuses new ones).
    loaded = await engine.builder.load_workflow(wf.id)
    with pytest.raises(InvalidWorkflowOperation, match="COMPLETED"):
        await send_signal(loaded, "paid", {"approved": True, "approver": "x"}, event_id="pay-2")
    assert len(await engine.persistence.list_signals(wf.id)) == 1


async def test_a_duplicate_event_id_is_applied_once(engine: EngineUnderTest) -> None:
    engine.builder.register_workflow_inline(
        "TwoWaits",
        [
            {"name": "First", "type": "WAIT_FOR_EVENT", "event": "tick", "automate_next": True},
            {"name": "Second", "type": "WAIT_FOR_EVENT", "event": "tick"},
        ],
    )
    wf = await engine.create("TwoWaits")
    await wf.run()
    first = await send_signal(wf, "tick", {"n": 1}, event_id="t-1")
    again = await send_signal(wf, "tick", {"n": 2}, event_id="t-1")
    assert (first.outcome, again.outcome) == (SignalOutcome.DELIVERED, SignalOutcome.DUPLICATE)
    stored = await engine.persistence.load_workflow(wf.id)
    assert (stored.status, stored.current_step_name, stored.state) == (
        Status.WAITING_HUMAN, "Second", {"n": 1}
    )  # fmt: skip
    assert (await send_signal(wf, "tick", {"n": 3})).outcome is SignalOutcome.DELIVERED
    assert (await engine.persistence.load_workflow(wf.id)).state == {"n": 3}


async def test_a_signal_sent_before_the_wait_is_kept_and_consumed_there(
    engine: EngineUnderTest,
) -> None:
    engine.builder.register_workflow_inline(
        "Early",
        [
            {"name": "Prepare", "type": "STANDARD", "function": fx.mark_a},
            {"name": "AwaitGo", "type": "WAIT_FOR_EVENT", "event": "go", "automate_next": True},
            {"name": "Done", "type": "STANDARD", "function": fx.mark_d},
        ],
    )
    wf = await engine.create("Early")
    sent = await send_signal(wf, "go", {"early": True}, event_id="g-1")
    assert sent.outcome is SignalOutcome.STORED
    assert wf.status is Status.ACTIVE and wf.current_step == "Prepare"
    assert await wf.run() is Status.COMPLETED  # it never waited
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.state["early"] is True and stored.runtime["signals_consumed"] == ["g-1"]
    statuses = {e.new_status for e in await engine.persistence.get_audit_log(wf.id)}
    assert Status.WAITING_HUMAN not in statuses


async def test_bad_data_and_unknown_names_are_refused_before_anything_is_written(
    engine: EngineUnderTest,
) -> None:
    _register(engine)
    wf = await engine.create("Signalled")
    await wf.run()
    with pytest.raises(InputValidationError, match="approver"):
        await send_signal(wf, "paid", {"approved": True})
    with pytest.raises(
        InvalidWorkflowOperation, match=r"no WAIT_FOR_EVENT step for the event 'pay'.*paid"
    ):
        await send_signal(wf, "pay", {})
    assert await engine.persistence.list_signals(wf.id) == []
    assert (await engine.persistence.load_workflow(wf.id)).status is Status.WAITING_HUMAN
    with pytest.raises(WorkflowNotFound):
        await engine.builder.load_workflow("no-such-workflow")


async def test_resume_with_input_does_not_stand_in_for_the_event(engine: EngineUnderTest) -> None:
    _register(engine)
    wf = await engine.create("Signalled")
    await wf.run()
    with pytest.raises(InputValidationError, match="ruvon signal"):
        await wf.resume({"approved": True, "approver": "me"})
    await wf.resume()  # no input and no signal: still waiting
    stored = await engine.persistence.load_workflow(wf.id)
    assert (stored.status, stored.current_step_name) == (Status.WAITING_HUMAN, "AwaitPayment")


@pytest.mark.parametrize(
    ("wait", "expected"),
    [
        ({"on_timeout": "skip"}, {}),
        (
            {"on_timeout": "continue", "timeout_data": {"approved": False, "approver": "clock"}},
            {"approved": False, "approver": "clock"},
        ),
    ],
    ids=["skip", "continue"],
)
async def test_a_missed_event_skips_or_continues(
    engine: EngineUnderTest, wait: dict[str, Any], expected: dict[str, Any]
) -> None:
    _register(engine, timeout=SHORT, **wait)
    wf = await engine.create("Signalled")
    assert await wf.run() is Status.WAITING_HUMAN
    assert await wf.run() is Status.WAITING_HUMAN  # not due yet
    await asyncio.sleep(SHORT + 0.1)
    assert await wf.run() is Status.COMPLETED
    stored = await engine.persistence.load_workflow(wf.id)
    assert {k: stored.state.get(k) for k in ("approved", "approver")} == {
        "approved": expected.get("approved"),
        "approver": expected.get("approver"),
    }
    assert "EVENT_TIMED_OUT" in [
        e.event_type for e in await engine.persistence.get_audit_log(wf.id)
    ]


async def test_a_missed_event_fails_the_workflow_by_default(engine: EngineUnderTest) -> None:
    _register(engine, timeout=SHORT)
    wf = await engine.create("Signalled")
    await wf.run()
    await asyncio.sleep(SHORT + 0.1)
    assert await wf.run() is Status.FAILED
    stored = await engine.persistence.load_workflow(wf.id)
    assert "no 'paid' event within 0.2s" in str(stored.error)
    assert StepTimeoutError.__name__ in str(stored.error)
