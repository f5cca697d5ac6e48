"""Failure handling and durability: saga rollback, retries, timeouts, optimistic concurrency,
idempotent start under concurrency and definition snapshots."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ruvon.errors import ConcurrencyConflict, StepTimeoutError
from ruvon.models import WorkflowStatus
from ruvon.testing.providers import EngineUnderTest
from tests.contract import steps_fixtures as fx

Status = WorkflowStatus


# --------------------------------------------------------------------------- saga
def _register_saga(engine: EngineUnderTest, *, saga_mode: bool) -> None:
    engine.builder.register_workflow_inline(
        "Saga",
        [
            {
                "name": "A",
                "type": "COMPENSATABLE",
                "function": fx.saga_a,
                "compensate_function": fx.undo_a,
            },
            {
                "name": "B",
                "type": "COMPENSATABLE",
                "function": fx.saga_b,
                "compensate_function": fx.undo_b_fails,
            },
            # A STANDARD step with a compensation takes part in the saga as well.
            {
                "name": "C",
                "type": "STANDARD",
                "function": fx.saga_c,
                "compensate_function": fx.path("undo_c"),
            },
            {"name": "Fail", "type": "STANDARD", "function": fx.saga_fail},
        ],
        saga_mode=saga_mode,
    )


async def _run_until_failure(wf: Any) -> None:
    with pytest.raises(RuntimeError, match="shipping unavailable"):
        while wf.status is Status.ACTIVE:
            await wf.next_step()


async def test_saga_compensates_in_reverse_completion_order(engine: EngineUnderTest) -> None:
    _register_saga(engine, saga_mode=True)
    wf = await engine.create("Saga")
    await _run_until_failure(wf)
    assert wf.status is Status.FAILED_ROLLED_BACK
    # Completed A, C, B (jumps), so compensated B, C, A; B's compensation failed.
    assert fx.EVENTS == ["do:A", "do:C", "do:B", "do:Fail", "undo:B", "undo:C", "undo:A"]
    log = await engine.persistence.get_compensation_log(wf.id)
    assert [(e.step_name, e.succeeded) for e in log] == [("B", False), ("C", True), ("A", True)]
    assert log[0].error is not None and "refund service down" in log[0].error
    assert log[1].function == fx.path("undo_c")
    assert log[1].state_before["c_done"] is True
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.status is Status.FAILED_ROLLED_BACK
    assert stored.state == {"a_done": False, "b_done": True, "c_done": False}
    events = [e.event_type for e in await engine.audit_events(wf.id)]
    assert events.count("COMPENSATION_EXECUTED") == 2
    assert events.count("COMPENSATION_FAILED") == 1


async def test_without_saga_mode_a_failure_compensates_nothing(engine: EngineUnderTest) -> None:
    _register_saga(engine, saga_mode=False)
    wf = await engine.create("Saga")
    await _run_until_failure(wf)
    assert wf.status is Status.FAILED
    assert fx.EVENTS == ["do:A", "do:C", "do:B", "do:Fail"]
    assert await engine.persistence.get_compensation_log(wf.id) == []
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.state == {"a_done": True, "b_done": True, "c_done": True}


@pytest.mark.parametrize("awaited", [True, False], ids=["awaited", "not-awaited"])
async def test_enable_saga_mode_on_an_instance(engine: EngineUnderTest, awaited: bool) -> None:
    _register_saga(engine, saga_mode=False)
    wf = await engine.create("Saga")
    if awaited:
        await wf.enable_saga_mode()
    else:
        wf.enable_saga_mode()
    assert wf.saga_mode_enabled
    await _run_until_failure(wf)
    assert wf.status is Status.FAILED_ROLLED_BACK
    assert fx.EVENTS[-3:] == ["undo:B", "undo:C", "undo:A"]
    stored = await engine.persistence.load_workflow(wf.id)
    assert (stored.status, stored.saga_mode) == (Status.FAILED_ROLLED_BACK, True)


# --------------------------------------------------------------------------- retries
def _register_retry(engine: EngineUnderTest, function: Any, **retry: Any) -> None:
    engine.builder.register_workflow_inline(
        "Retry",
        [
            {
                "name": "Try",
                "type": "STANDARD",
                "function": function,
                "retry": {"initial_interval": 0.01, "jitter": False, **retry},
            },
            {"name": "After", "type": "STANDARD", "function": fx.mark_b},
        ],
    )


async def test_transient_failures_are_retried_with_a_stable_idempotency_key(
    engine: EngineUnderTest,
) -> None:
    _register_retry(engine, fx.fail_twice, max_attempts=3)
    wf = await engine.create("Retry")
    await wf.next_step()
    assert wf.status is Status.ACTIVE
    assert wf.state == {"attempts": 3}
    assert fx.CALLS["fail_twice"] == 3
    attempts = [attempt for attempt, _ in fx.EVENTS]
    keys = {key for _, key in fx.EVENTS}
    assert attempts == [1, 2, 3]
    assert keys == {f"{wf.id}:Try:1"}
    retries = await engine.audit_events(wf.id, "STEP_RETRY")
    assert [(e.step_name, e.details["attempt"]) for e in retries] == [("Try", 1), ("Try", 2)]
    assert all("ConnectionError" in e.details["error"] for e in retries)


async def test_non_retryable_error_stops_retrying(engine: EngineUnderTest) -> None:
    _register_retry(engine, fx.permanent_failure, max_attempts=5, non_retryable=["PermanentError"])
    wf = await engine.create("Retry")
    with pytest.raises(fx.PermanentError):
        await wf.next_step()
    assert wf.status is Status.FAILED
    assert fx.CALLS["permanent_failure"] == 1
    assert await engine.audit_events(wf.id, "STEP_RETRY") == []


async def test_exhausted_attempts_fail_the_workflow(engine: EngineUnderTest) -> None:
    _register_retry(engine, fx.always_fails, max_attempts=3)
    wf = await engine.create("Retry")
    with pytest.raises(ValueError, match="attempt 3"):
        await wf.next_step()
    assert wf.status is Status.FAILED
    assert fx.EVENTS == [1, 2, 3]
    assert len(await engine.audit_events(wf.id, "STEP_RETRY")) == 2
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.status is Status.FAILED
    assert stored.error is not None and "attempt 3" in stored.error
    assert fx.CALLS["mark_b"] == 0


# --------------------------------------------------------------------------- timeouts
# A sync body is interrupted at its timeout and waited for (tests/contract/test_engine_deadlines
# covers a body blocked in C, whose failure waits until the C call returns).
@pytest.mark.parametrize("function", [fx.spin_sync, fx.slow_async], ids=["sync", "async"])
async def test_step_over_its_timeout_fails(engine: EngineUnderTest, function: Any) -> None:
    engine.builder.register_workflow_inline(
        "Slow", [{"name": "Slow", "type": "STANDARD", "function": function, "timeout": 0.2}]
    )
    wf = await engine.create("Slow")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(StepTimeoutError, match=r"timeout of 0\.2s"):
        await wf.next_step()
    assert loop.time() - started < 0.9  # did not wait for the step to finish
    if function is fx.spin_sync:
        assert fx.CALLS["spin_ended"] == 1  # stopped, not abandoned: it ended first
    assert wf.status is Status.FAILED
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.status is Status.FAILED
    assert "slow" not in stored.state and "spun" not in stored.state


# --------------------------------------------------------------------------- concurrency
def _register_pair(engine: EngineUnderTest) -> None:
    engine.builder.register_workflow_inline(
        "Pair",
        [
            {"name": "A", "type": "STANDARD", "function": fx.mark_a},
            {"name": "B", "type": "STANDARD", "function": fx.mark_b},
        ],
    )


async def test_stale_copy_cannot_overwrite_the_winner(engine: EngineUnderTest) -> None:
    _register_pair(engine)
    created = await engine.create("Pair", {"n": 1})
    winner = await engine.load(created.id)
    loser = await engine.load(created.id)
    also_stale = await engine.load(created.id)

    await winner.next_step()
    with pytest.raises(ConcurrencyConflict):
        await loser.next_step()
    with pytest.raises(ConcurrencyConflict):
        await also_stale.save()

    stored = await engine.persistence.load_workflow(created.id)
    assert stored.version == winner.record.version
    assert stored.state == winner.state == {"n": 1, "a": True}
    assert stored.current_step_name == "B"
    completed = await engine.audit_events(created.id, "STEP_COMPLETED")
    assert [e.step_name for e in completed] == ["A"]  # the loser's audit row was not written


async def test_concurrent_saves_of_one_version_let_exactly_one_win(
    engine: EngineUnderTest,
) -> None:
    _register_pair(engine)
    created = await engine.create("Pair", {"n": 1})
    first = await engine.load(created.id)
    second = await engine.load(created.id)
    first.state["who"] = "first"
    second.state["who"] = "second"
    outcomes = await asyncio.gather(first.save(), second.save(), return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failures) == 1
    assert isinstance(failures[0], ConcurrencyConflict)
    winner = first if outcomes[0] is None else second
    stored = await engine.persistence.load_workflow(created.id)
    assert stored.state["who"] == winner.state["who"]
    assert stored.version == created.record.version + 1


async def test_concurrent_idempotent_creates_store_one_workflow(
    engine: EngineUnderTest,
) -> None:
    _register_pair(engine)
    created = await asyncio.gather(
        *(engine.create("Pair", {"n": i}, idempotency_key="same-key") for i in range(4))
    )
    assert len({wf.id for wf in created}) == 1
    assert len(await engine.persistence.list_workflows(workflow_type="Pair")) == 1
    assert len(await engine.audit_events(created[0].id, "WORKFLOW_CREATED")) == 1


# --------------------------------------------------------------------------- snapshots
_WORKFLOW_YAML = """\
workflow_type: Snapshot
workflow_version: "{version}"
initial_state_model: builtins.dict
steps:
{steps}
"""
_STEP_YAML = "  - name: {name}\n    type: STANDARD\n    function: {function}\n"


def _write_definition(directory: Path, version: str, steps: list[tuple[str, str]]) -> Path:
    registry = directory / "workflow_registry.yaml"
    registry.write_text(
        "workflows:\n  - type: Snapshot\n    config_file: snapshot.yaml\n"
        "    initial_state_model: builtins.dict\n",
        encoding="utf-8",
    )
    body = "".join(_STEP_YAML.format(name=n, function=fx.path(f)) for n, f in steps)
    (directory / "snapshot.yaml").write_text(
        _WORKFLOW_YAML.format(version=version, steps=body), encoding="utf-8"
    )
    return registry


async def test_running_workflows_keep_their_definition_snapshot(
    engine: EngineUnderTest, tmp_path: Path
) -> None:
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    registry = _write_definition(definitions, "1.0", [("Work", "snap_old")])
    old_builder = engine.new_builder(registry)
    in_flight = await old_builder.create_workflow("Snapshot", {"n": 1})
    assert in_flight.workflow_version == "1.0"

    # The YAML changes: the step's function is replaced and a step is added.
    _write_definition(definitions, "2.0", [("Work", "snap_new"), ("Extra", "snap_extra")])
    new_builder = engine.new_builder(registry)  # a restarted process reads the new file

    old = await engine.load(in_flight.id, builder=new_builder)
    assert [s.name for s in old.steps] == ["Work"]
    assert await old.run() is Status.COMPLETED
    assert old.state == {"n": 1, "version_ran": "old"}
    assert old.workflow_version == "1.0"

    fresh = await new_builder.create_workflow("Snapshot", {"n": 2})
    assert fresh.workflow_version == "2.0"
    assert await fresh.run() is Status.COMPLETED
    assert fresh.state == {"n": 2, "version_ran": "new", "extra": True}
    assert fx.CALLS == {"snap_old": 1, "snap_new": 1, "snap_extra": 1}
    stored_old = await engine.persistence.load_workflow(in_flight.id)
    assert [s["name"] for s in stored_old.definition_snapshot["steps"]] == ["Work"]


async def test_stale_copy_in_saga_mode_never_compensates(engine: EngineUnderTest) -> None:
    engine.builder.register_workflow_inline(
        "StaleSaga",
        [
            {
                "name": "Reserve",
                "type": "COMPENSATABLE",
                "function": fx.mark_a,
                "compensate_function": fx.undo_a,
            },
            # Suspending steps save before they run: that save is where the stale copy loses.
            {"name": "Pay", "type": "ASYNC", "function": fx.async_double},
            {"name": "Ship", "type": "STANDARD", "function": fx.mark_c},
        ],
        saga_mode=True,
    )
    created = await engine.create("StaleSaga", {"value": 2})
    await created.next_step()
    winner = await engine.load(created.id)
    loser = await engine.load(created.id)
    await winner.next_step()
    with pytest.raises(ConcurrencyConflict):
        await loser.next_step()
    assert fx.CALLS["undo_a"] == 0
    assert await engine.persistence.get_compensation_log(created.id) == []
    assert fx.CALLS["async_double"] == 1  # the loser lost before running the step
    stored = await engine.persistence.load_workflow(created.id)
    assert stored.status is Status.ACTIVE
    assert stored.current_step_name == "Ship"
    assert await winner.run() is Status.COMPLETED


async def test_stale_copy_losing_inside_a_loop_never_compensates(
    engine: EngineUnderTest,
) -> None:
    engine.builder.register_workflow_inline(
        "StaleLoop",
        [
            {
                "name": "Reserve",
                "type": "COMPENSATABLE",
                "function": fx.mark_a,
                "compensate_function": fx.undo_a,
            },
            # LOOP saves a checkpoint after every iteration: the stale copy loses there.
            {
                "name": "Each",
                "type": "LOOP",
                "mode": "ITERATE",
                "iterate_over": "items",
                "max_iterations": 5,
                "loop_body": [
                    {"name": "Record", "type": "STANDARD", "function": fx.record_loop_item}
                ],
            },
        ],
        saga_mode=True,
    )
    created = await engine.create("StaleLoop", {"items": [1, 2], "seen": []})
    await created.next_step()
    winner = await engine.load(created.id)
    loser = await engine.load(created.id)
    assert await winner.run() is Status.COMPLETED
    with pytest.raises(ConcurrencyConflict):
        await loser.next_step()
    assert fx.CALLS["undo_a"] == 0
    assert await engine.persistence.get_compensation_log(created.id) == []
    stored = await engine.persistence.load_workflow(created.id)
    assert stored.status is Status.COMPLETED
    assert stored.state["seen"] == ["0:1:1", "1:2:2"]


async def test_async_step_interrupted_by_a_crash_runs_again_with_the_same_key(
    engine: EngineUnderTest,
) -> None:
    engine.builder.register_workflow_inline(
        "Crashy",
        [
            {"name": "Charge", "type": "ASYNC", "function": fx.async_crash_once},
            {"name": "After", "type": "STANDARD", "function": fx.mark_b},
        ],
    )
    wf = await engine.create("Crashy")
    with pytest.raises(fx.SimulatedCrash):
        await wf.next_step()
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.status is Status.PENDING_ASYNC  # the durable mark made before running

    fx.FLAGS["recovered"] = True
    recovered = await engine.load(wf.id, builder=engine.new_builder())
    await recovered.next_step()  # recovery re-runs the step it finds PENDING_ASYNC
    assert recovered.current_step == "After"
    assert await recovered.run() is Status.COMPLETED
    assert recovered.state == {"charged": True, "b": True}
    keys = [key for kind, *key in fx.EVENTS if kind == "crash_once"]
    assert keys == [[f"{wf.id}:Charge:1"], [f"{wf.id}:Charge:1"]]


# --------------------------------------------------------------------------- compensation keys
async def test_a_compensation_has_its_own_key_derived_from_its_forward_step(
    engine: EngineUnderTest,
) -> None:
    """An undo keyed like its effect would be dropped by a service deduplicating on the key."""
    engine.builder.register_workflow_inline(
        "Refunds",
        [
            {
                "name": "Charge",
                "type": "COMPENSATABLE",
                "function": fx.charge_card,
                "compensate_function": fx.refund_card,
            },
            {
                "name": "Each",
                "type": "LOOP",
                "mode": "ITERATE",
                "iterate_over": "items",
                "max_iterations": 5,
                "loop_body": [
                    {
                        "name": "ChargeItem",
                        "type": "STANDARD",
                        "function": fx.charge_item,
                        "compensate_function": fx.refund_item,
                    }
                ],
            },
            {"name": "Fail", "type": "STANDARD", "function": fx.saga_fail},
        ],
        saga_mode=True,
    )
    wf = await engine.create("Refunds", {"items": ["x", "y"]})
    await _run_until_failure(wf)
    assert wf.status is Status.FAILED_ROLLED_BACK
    # Every undo happened: none was mistaken for the charge it undoes.
    assert fx.EVENTS == [
        "charge:Charge",
        "charge:ChargeItem[x]",
        "charge:ChargeItem[y]",
        "do:Fail",
        "refund:ChargeItem",
        "refund:ChargeItem",
        "refund:Charge",
    ]
    forward = [key for kind, _, key in fx.FLAGS["keys"] if kind == "charge"]
    undo = [key for kind, _, key in fx.FLAGS["keys"] if kind == "refund"]
    assert forward == [
        f"{wf.id}:Charge:1",
        f"{wf.id}:Each:1:0:ChargeItem",
        f"{wf.id}:Each:1:1:ChargeItem",
    ]
    # Newest first, each `<its forward key>:compensate`.
    assert undo == [f"{key}:compensate" for key in reversed(forward)]
    log = await engine.persistence.get_compensation_log(wf.id)
    assert [(e.step_name, e.succeeded) for e in log] == [
        ("ChargeItem", True),
        ("ChargeItem", True),
        ("Charge", True),
    ]
