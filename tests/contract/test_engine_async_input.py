"""Input given to ``next_step`` for an ASYNC step is durable with PENDING_ASYNC.

The step's function runs after the PENDING_ASYNC save: on a thread (embedded), in a later
process that finds the workflow PENDING_ASYNC after a crash, or on a worker whose message
carries ids only. Each must call it with the input it was given, and a retry after the step
failed too; once the step succeeds the stored input is gone.
"""

from __future__ import annotations

import pytest

from ruvon.models import WorkflowStatus
from ruvon.testing.providers import EngineUnderTest
from tests.contract import steps_fixtures as fx

Status = WorkflowStatus


def _register(engine: EngineUnderTest, function: object) -> None:
    engine.builder.register_workflow_inline(
        "AsyncInput",
        [
            {"name": "Annotate", "type": "ASYNC", "function": function},
            {"name": "After", "type": "STANDARD", "function": fx.mark_b},
        ],
    )


async def test_the_function_gets_the_input_and_nothing_is_left_behind(
    engine: EngineUnderTest,
) -> None:
    fx.FLAGS["recovered"] = True
    _register(engine, fx.crash_once_with_note)
    wf = await engine.create("AsyncInput")
    await wf.next_step(user_input={"note": "hello"})
    assert await wf.run() is Status.COMPLETED
    assert wf.state == {"note_seen": "hello", "b": True}
    stored = await engine.persistence.load_workflow(wf.id)
    assert "pending_input" not in stored.runtime


async def test_the_input_survives_a_crash_mid_step(engine: EngineUnderTest) -> None:
    _register(engine, fx.crash_once_with_note)
    wf = await engine.create("AsyncInput")
    with pytest.raises(fx.SimulatedCrash):
        await wf.next_step(user_input={"note": "hello"})
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.status is Status.PENDING_ASYNC
    assert stored.runtime["pending_input"] == {"Annotate": {"note": "hello"}}

    fx.FLAGS["recovered"] = True
    recovered = await engine.load(wf.id, builder=engine.new_builder())
    assert await recovered.run() is Status.COMPLETED
    assert recovered.state == {"note_seen": "hello", "b": True}
    notes = [e[1] for e in fx.EVENTS if isinstance(e, tuple) and e[0] == "crash_once_with_note"]
    assert notes == ["hello", "hello"]  # the crashed call and the recovered one
    assert "pending_input" not in (await engine.persistence.load_workflow(wf.id)).runtime


async def test_a_retry_after_a_failure_gets_the_input_again(engine: EngineUnderTest) -> None:
    _register(engine, fx.fail_until_fixed_with_note)
    wf = await engine.create("AsyncInput")
    with pytest.raises(fx.PermanentError):
        await wf.next_step(user_input={"note": "again"})
    assert wf.status is Status.FAILED

    fx.FLAGS["fixed"] = True
    operator_copy = await engine.load(wf.id)
    await operator_copy.retry()
    assert await operator_copy.run() is Status.COMPLETED
    assert operator_copy.state == {"note_seen": "again", "b": True}
    assert "pending_input" not in (await engine.persistence.load_workflow(wf.id)).runtime
