"""Core engine contract: STANDARD, DECISION, ASYNC, directives, state model, observers,
cancel/retry, idempotent start and the TestHarness, against every provider combination."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ruvon.clock import utc_now
from ruvon.errors import (
    InvalidStepResult,
    InvalidWorkflowOperation,
    IterationLimitExceeded,
    RoutingError,
    StateValidationError,
)
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon.models import StepType, WorkflowStatus
from ruvon.providers.observer import (
    BaseObserver,
    StatusChanged,
    StepCompleted,
    StepStarted,
    WorkflowFinished,
    WorkflowStarted,
)
from ruvon.testing import TestHarness
from ruvon.testing.providers import EngineUnderTest
from tests.contract import steps_fixtures as fx

Status = WorkflowStatus


async def event_types(engine: EngineUnderTest, workflow_id: str) -> list[str]:
    return [entry.event_type for entry in await engine.audit_events(workflow_id)]


# --------------------------------------------------------------------------- STANDARD
async def test_standard_steps_run_in_order_and_chain_with_automate_next(
    engine: EngineUnderTest,
) -> None:
    engine.builder.register_workflow_inline(
        "Standard",
        [
            {"name": "A", "type": "STANDARD", "function": fx.mark_a, "automate_next": True},
            {"name": "B", "type": "STANDARD", "function": fx.path("mark_b")},
            {"name": "C", "type": "STANDARD", "function": fx.mark_c},
        ],
    )
    wf = await engine.create("Standard", {"order": 7})
    assert wf.status is Status.ACTIVE
    assert wf.current_step == "A"

    result, jump = await wf.next_step()
    # automate_next on A chains B into the same call; C waits for the next call.
    assert (result, jump) == ({"b": True}, None)
    assert wf.current_step == "C"
    assert fx.CALLS == {"mark_a": 1, "mark_b": 1}

    await wf.next_step()
    assert wf.status is Status.COMPLETED
    assert wf.current_step is None
    assert wf.state == {"order": 7, "a": True, "b": True, "c": True}

    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.status is Status.COMPLETED
    assert stored.state == {"order": 7, "a": True, "b": True, "c": True}
    assert await event_types(engine, wf.id) == [
        "WORKFLOW_CREATED",
        "STEP_COMPLETED",
        "STEP_COMPLETED",
        "STEP_COMPLETED",
        "WORKFLOW_COMPLETED",
    ]
    with pytest.raises(InvalidWorkflowOperation):
        await wf.next_step()


async def test_typed_state_is_a_model_instance_and_round_trips(
    engine: EngineUnderTest,
) -> None:
    engine.builder.register_workflow_inline(
        "Typed",
        [{"name": "Inc", "type": "STANDARD", "function": fx.increment}],
        initial_state_model=fx.CounterState,
    )
    wf = await engine.create("Typed", {"count": 41, "name": "n"})
    assert isinstance(wf.state, fx.CounterState)
    await wf.next_step()
    assert wf.status is Status.COMPLETED
    assert wf.state == fx.CounterState(count=42, name="n")
    assert (await engine.persistence.load_workflow(wf.id)).state["count"] == 42


# --------------------------------------------------------------------------- DECISION
def _register_router(engine: EngineUnderTest, *, with_default: bool) -> None:
    routes: list[dict[str, Any]] = [
        {"condition": "state.amount > 100", "target": "High"},
        {"condition": "state.amount > 10", "next_step": "Mid"},
    ]
    if with_default:
        routes.append({"default": "Low"})
    engine.builder.register_workflow_inline(
        "Router",
        [
            {"name": "Decide", "type": "DECISION", "function": fx.decide, "routes": routes},
            {"name": "High", "type": "STANDARD", "function": fx.mark_a},
            {"name": "Mid", "type": "STANDARD", "function": fx.mark_b},
            {"name": "Low", "type": "STANDARD", "function": fx.mark_c},
        ],
    )


@pytest.mark.parametrize(("amount", "target"), [(500, "High"), (50, "Mid"), (5, "Low")])
async def test_decision_routes_to_first_matching_route_or_default(
    engine: EngineUnderTest, amount: int, target: str
) -> None:
    _register_router(engine, with_default=True)
    wf = await engine.create("Router", {"amount": amount})
    _, jump = await wf.next_step()
    assert jump == target
    assert wf.current_step == target
    assert wf.state == {"amount": amount, "decided": True}
    completed = await engine.audit_events(wf.id, "STEP_COMPLETED")
    assert completed[0].details["next_step"] == target


async def test_decision_without_matching_route_fails_with_routing_error(
    engine: EngineUnderTest,
) -> None:
    _register_router(engine, with_default=False)
    wf = await engine.create("Router", {"amount": 1})
    with pytest.raises(RoutingError):
        await wf.next_step()
    assert wf.status is Status.FAILED
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.status is Status.FAILED
    assert stored.error is not None and stored.error.startswith("RoutingError")
    assert "WORKFLOW_FAILED" in await event_types(engine, wf.id)


def _register_routed_loop(engine: EngineUnderTest, *, limit: int) -> None:
    engine.builder.register_workflow_inline(
        "RoutedLoop",
        [
            {"name": "Inc", "type": "STANDARD", "function": fx.increment, "max_iterations": 3},
            {
                "name": "Check",
                "type": "DECISION",
                "routes": [
                    {"condition": f"state.count < {limit}", "target": "Inc"},
                    {"default": "Done"},
                ],
            },
            {"name": "Done", "type": "STANDARD", "function": fx.mark_d},
        ],
    )


async def test_routed_loop_within_max_iterations_completes(engine: EngineUnderTest) -> None:
    _register_routed_loop(engine, limit=3)
    wf = await engine.create("RoutedLoop", {"count": 0})
    assert await wf.run() is Status.COMPLETED
    assert wf.state == {"count": 3, "d": True}
    assert fx.CALLS["increment"] == 3


async def test_routed_loop_past_max_iterations_fails(engine: EngineUnderTest) -> None:
    _register_routed_loop(engine, limit=10)
    wf = await engine.create("RoutedLoop", {"count": 0})
    with pytest.raises(IterationLimitExceeded):
        while wf.status is Status.ACTIVE:
            await wf.next_step()
    assert wf.status is Status.FAILED
    assert fx.CALLS["increment"] == 3
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.status is Status.FAILED
    assert stored.state["count"] == 3
    assert stored.error is not None and "IterationLimitExceeded" in stored.error


# --------------------------------------------------------------------------- ASYNC
async def test_async_step_passes_through_pending_async_and_completes(
    engine: EngineUnderTest,
) -> None:
    engine.builder.register_workflow_inline(
        "Async",
        [
            {"name": "Double", "type": "ASYNC", "function": fx.async_double},
            {"name": "After", "type": "STANDARD", "function": fx.mark_b},
        ],
    )
    wf = await engine.create("Async", {"value": 21})
    await wf.next_step()
    assert wf.status is Status.ACTIVE
    assert wf.current_step == "After"
    assert wf.state == {"value": 21, "doubled": 42}
    suspended = await engine.audit_events(wf.id, "STEP_SUSPENDED")
    assert [(e.step_name, e.new_status) for e in suspended] == [("Double", "PENDING_ASYNC")]
    assert await wf.run() is Status.COMPLETED
    assert fx.CALLS["async_double"] == 1


# --------------------------------------------------------------------------- directives
async def test_jump_directive_skips_to_target_and_merges_its_result(
    engine: EngineUnderTest,
) -> None:
    engine.builder.register_workflow_inline(
        "Jumping",
        [
            {"name": "A", "type": "STANDARD", "function": fx.jump_to_c},
            {"name": "B", "type": "STANDARD", "function": fx.mark_b},
            {"name": "C", "type": "STANDARD", "function": fx.mark_c},
        ],
    )
    wf = await engine.create("Jumping")
    result, jump = await wf.next_step()
    assert (result, jump) == ({"jumped": True}, "C")
    assert wf.current_step == "C"
    assert wf.status is Status.ACTIVE
    assert await wf.run() is Status.COMPLETED
    assert wf.state == {"jumped": True, "c": True}
    assert fx.CALLS["mark_b"] == 0


async def test_pause_directive_waits_then_continues_after_the_step_with_input(
    engine: EngineUnderTest,
) -> None:
    engine.builder.register_workflow_inline(
        "Pausing",
        [
            {"name": "Ask", "type": "STANDARD", "function": fx.pause_for_manager},
            {"name": "Use", "type": "STANDARD", "function": fx.use_note},
        ],
    )
    wf = await engine.create("Pausing")
    await wf.next_step()
    assert wf.status is Status.WAITING_HUMAN
    assert wf.current_step == "Ask"
    assert wf.state == {"paused": True}

    await wf.next_step()  # no input: still waiting, nothing re-run
    assert wf.status is Status.WAITING_HUMAN
    assert fx.CALLS["pause_for_manager"] == 1

    reloaded = await engine.load(wf.id)
    assert reloaded.status is Status.WAITING_HUMAN
    await reloaded.next_step(user_input={"note": "approved by ann"})
    assert reloaded.status is Status.COMPLETED
    assert reloaded.state == {"paused": True, "note_seen": "approved by ann"}
    assert fx.CALLS == {"pause_for_manager": 1, "use_note": 1}


# --------------------------------------------------------------------------- state model
@pytest.mark.parametrize(
    ("function", "needle"),
    [(fx.return_unknown_key, "not_a_field"), (fx.return_wrong_type, "count")],
    ids=["unknown-key", "wrong-type"],
)
async def test_result_that_breaks_the_state_model_fails_the_workflow(
    engine: EngineUnderTest, function: Any, needle: str
) -> None:
    engine.builder.register_workflow_inline(
        "Strict",
        [{"name": "Bad", "type": "STANDARD", "function": function}],
        initial_state_model=fx.CounterState,
    )
    wf = await engine.create("Strict", {"count": 1})
    with pytest.raises(StateValidationError, match=needle):
        await wf.next_step()
    assert wf.status is Status.FAILED
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.status is Status.FAILED
    assert stored.state["count"] == 1
    assert stored.error is not None and needle in stored.error


@pytest.mark.parametrize(
    ("function", "where", "kind"),
    [
        (fx.return_set, "order.tags", "set"),
        (fx.return_frozenset, "seen", "frozenset"),
        (fx.add_set_in_place, "later", "set"),
    ],
    ids=["set", "frozenset", "in-place"],
)
async def test_a_set_in_free_form_state_is_refused_naming_step_and_key(
    engine: EngineUnderTest, function: Any, where: str, kind: str
) -> None:
    """JSON has no sets: stored, a set would silently come back as a list (as NaN would as null)."""
    engine.builder.register_workflow_inline(
        "Sets", [{"name": "Tag", "type": "STANDARD", "function": function}]
    )
    wf = await engine.create("Sets", {"x": 1})
    with pytest.raises(StateValidationError) as caught:
        await wf.next_step()
    message = str(caught.value)
    assert "step 'Tag'" in message
    assert f"holds a {kind} at '{where}'" in message
    assert "\n" not in message
    assert wf.status is Status.FAILED
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.status is Status.FAILED
    assert stored.state == {"x": 1}  # nothing of the bad result was written
    assert stored.error is not None and f"at '{where}'" in stored.error


async def test_a_set_the_state_model_declares_is_kept(engine: EngineUnderTest) -> None:
    engine.builder.register_workflow_inline(
        "DeclaredSet",
        [{"name": "Tag", "type": "STANDARD", "function": fx.return_declared_set}],
        initial_state_model=fx.TaggedState,
    )
    wf = await engine.create("DeclaredSet", {})
    await wf.next_step()
    assert wf.status is Status.COMPLETED
    reloaded = await engine.load(wf.id)
    assert reloaded.state == fx.TaggedState(tags={"vip", "new"})
    assert isinstance(reloaded.state.tags, set)


async def test_in_place_mutation_of_model_state_is_persisted(engine: EngineUnderTest) -> None:
    engine.builder.register_workflow_inline(
        "Mutating",
        [{"name": "Mutate", "type": "STANDARD", "function": fx.mutate_in_place}],
        initial_state_model=fx.CounterState,
    )
    wf = await engine.create("Mutating", {"count": 1})
    await wf.next_step()
    assert wf.status is Status.COMPLETED
    reloaded = await engine.load(wf.id)
    assert reloaded.state == fx.CounterState(count=6, log=["mutated"])


async def test_in_place_mutation_of_dict_state_is_persisted(engine: EngineUnderTest) -> None:
    engine.builder.register_workflow_inline(
        "MutatingDict", [{"name": "Touch", "type": "STANDARD", "function": fx.mutate_dict_in_place}]
    )
    wf = await engine.create("MutatingDict", {"x": 1})
    await wf.next_step()
    assert (await engine.persistence.load_workflow(wf.id)).state == {"x": 1, "touched": True}


async def test_non_dict_result_is_invalid(engine: EngineUnderTest) -> None:
    engine.builder.register_workflow_inline(
        "ReturnsList", [{"name": "Listy", "type": "STANDARD", "function": fx.return_list}]
    )
    wf = await engine.create("ReturnsList")
    with pytest.raises(InvalidStepResult, match="list"):
        await wf.next_step()
    assert wf.status is Status.FAILED
    assert (await engine.persistence.load_workflow(wf.id)).status is Status.FAILED


# --------------------------------------------------------------------------- observers
class RecordingObserver(BaseObserver):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_workflow_started(self, event: WorkflowStarted) -> None:
        self.events.append(("started", event))

    def on_step_started(self, event: StepStarted) -> None:
        self.events.append(("step_started", event))

    def on_step_completed(self, event: StepCompleted) -> None:
        self.events.append(("step_completed", event))

    def on_status_changed(self, event: StatusChanged) -> None:
        self.events.append(("status", event))

    def on_workflow_finished(self, event: WorkflowFinished) -> None:
        self.events.append(("finished", event))


class ExplodingObserver(BaseObserver):
    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):

            def explode(event: Any) -> None:
                raise RuntimeError(f"observer broke in {name}")

            return explode
        return super().__getattribute__(name)


def _register_two_steps(engine: EngineUnderTest) -> None:
    engine.builder.register_workflow_inline(
        "Observed",
        [
            {"name": "A", "type": "STANDARD", "function": fx.mark_a, "automate_next": True},
            {"name": "B", "type": "STANDARD", "function": fx.mark_b},
        ],
    )


async def test_observer_receives_frozen_lifecycle_events(engine: EngineUnderTest) -> None:
    _register_two_steps(engine)
    observer = RecordingObserver()
    wf = await engine.create("Observed", {"n": 1}, workflow_observer=observer)
    await wf.run()
    assert wf.status is Status.COMPLETED
    kinds = [kind for kind, _ in observer.events]
    assert kinds == [
        "started",
        "step_started",
        "step_completed",
        "step_started",
        "status",
        "step_completed",
        "finished",
    ]
    started = observer.events[0][1]
    assert started == WorkflowStarted(wf.id, "Observed", {"n": 1}, None)
    steps = [e for kind, e in observer.events if kind == "step_completed"]
    assert [(e.step_name, e.step_type, e.result) for e in steps] == [
        ("A", "STANDARD", {"a": True}),
        ("B", "STANDARD", {"b": True}),
    ]
    finished = observer.events[-1][1]
    assert (finished.status, finished.error) == ("COMPLETED", None)
    assert finished.final_state == {"n": 1, "a": True, "b": True}
    for _, event in observer.events:
        assert dataclasses.is_dataclass(event)
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.workflow_id = "tampered"


async def test_raising_observer_never_breaks_the_workflow(engine: EngineUnderTest) -> None:
    _register_two_steps(engine)
    wf = await engine.create("Observed", workflow_observer=ExplodingObserver())
    assert await wf.run() is Status.COMPLETED
    assert wf.state == {"a": True, "b": True}


# --------------------------------------------------------------------------- cancel / retry
async def test_cancel_is_terminal(engine: EngineUnderTest) -> None:
    _register_two_steps(engine)
    wf = await engine.create("Observed")
    await wf.cancel(reason="customer changed their mind")
    assert wf.status is Status.CANCELLED
    with pytest.raises(InvalidWorkflowOperation):
        await wf.next_step()
    reloaded = await engine.load(wf.id)
    assert reloaded.status is Status.CANCELLED
    with pytest.raises(InvalidWorkflowOperation):
        await reloaded.next_step()
    with pytest.raises(InvalidWorkflowOperation):
        await reloaded.cancel()
    cancelled = await engine.audit_events(wf.id, "WORKFLOW_CANCELLED")
    assert [e.details["reason"] for e in cancelled] == ["customer changed their mind"]
    assert fx.CALLS["mark_a"] == 0


async def test_cancel_a_waiting_timer_disarms_it(engine: EngineUnderTest) -> None:
    engine.builder.register_workflow_inline(
        "Sleepy",
        [
            {"name": "Sleep", "type": "WAIT", "wait_seconds": 0.01},
            {"name": "After", "type": "STANDARD", "function": fx.mark_b},
        ],
    )
    wf = await engine.create("Sleepy")
    await wf.next_step()
    assert wf.status is Status.WAITING_TIMER
    await wf.cancel()
    stored = await engine.persistence.load_workflow(wf.id)
    assert (stored.status, stored.run_at) == (Status.CANCELLED, None)
    far_future = utc_now() + timedelta(days=1)
    assert wf.id not in await engine.persistence.list_due_timers(far_future)
    assert await wf.run() is Status.CANCELLED
    assert fx.CALLS["mark_b"] == 0


async def test_retry_resumes_a_failed_workflow_at_the_failed_step(
    engine: EngineUnderTest,
) -> None:
    engine.builder.register_workflow_inline(
        "Retryable",
        [
            {"name": "A", "type": "STANDARD", "function": fx.mark_a},
            {"name": "Flaky", "type": "STANDARD", "function": fx.flaky_until_fixed},
            {"name": "C", "type": "STANDARD", "function": fx.mark_c},
        ],
    )
    wf = await engine.create("Retryable")
    assert await wf.run() is Status.FAILED
    assert wf.current_step == "Flaky"
    with pytest.raises(InvalidWorkflowOperation):
        await wf.next_step()

    fx.FLAGS["fixed"] = True
    operator_copy = await engine.load(wf.id)
    await operator_copy.retry()
    assert operator_copy.status is Status.ACTIVE
    assert operator_copy.error is None
    assert await operator_copy.run() is Status.COMPLETED
    assert operator_copy.state == {"a": True, "fixed": True, "c": True}
    assert fx.CALLS == {"mark_a": 1, "flaky_until_fixed": 2, "mark_c": 1}
    assert "WORKFLOW_RETRIED" in await event_types(engine, wf.id)
    with pytest.raises(InvalidWorkflowOperation):
        await operator_copy.retry()


# --------------------------------------------------------------------------- idempotent start
async def test_create_with_same_idempotency_key_returns_the_same_workflow(
    engine: EngineUnderTest,
) -> None:
    _register_two_steps(engine)
    first = await engine.create("Observed", {"n": 1}, idempotency_key="order-42")
    second = await engine.create("Observed", {"n": 2}, idempotency_key="order-42")
    other = await engine.create("Observed", {"n": 3}, idempotency_key="order-43")
    assert second.id == first.id
    assert second.state == {"n": 1}
    assert other.id != first.id
    stored = await engine.persistence.list_workflows(workflow_type="Observed")
    assert sorted(r.id for r in stored) == sorted([first.id, other.id])
    assert (await engine.persistence.find_by_idempotency_key("order-42")) is not None


# --------------------------------------------------------------------------- TestHarness
async def test_harness_drives_a_live_workflow(engine: EngineUnderTest) -> None:
    engine.builder.register_workflow_inline(
        "Harnessed",
        [
            {"name": "Inc", "type": "STANDARD", "function": fx.increment},
            {
                "name": "Ask",
                "type": StepType.HUMAN_IN_LOOP,
                "input_model": fx.path("ApprovalInput"),
            },
            {"name": "Done", "type": "STANDARD", "function": fx.mark_d},
        ],
    )
    harness = TestHarness(
        builder=engine.builder,
        persistence_provider=engine.persistence,
        execution_provider=engine.execution,
    )
    wf = await harness.start_workflow(workflow_type="Harnessed", initial_data={"count": 1})
    report = await harness.next_step(wf.id)
    assert report["step_completed"] is True
    assert report["step_name"] == "Inc"
    assert report["steps_completed"] == ["Inc"]
    assert report["result"] == {"count": 2}
    assert wf.state == {"count": 2}  # the object start_workflow returned is live

    report = await harness.next_step(wf.id)
    assert report["step_completed"] is False
    assert wf.status is Status.WAITING_HUMAN
    report = await harness.next_step(wf.id, user_input={"approved": True, "approver": "ann"})
    assert report["steps_completed"] == ["Ask"]
    await harness.next_step(wf.id)
    assert wf.status is Status.COMPLETED
    reloaded = await harness.load_workflow(wf.id)
    assert reloaded is not wf
    assert reloaded.state == {"count": 2, "approved": True, "approver": "ann", "d": True}
    assert await harness.run_step("Inc", {"count": 10}, workflow_type="Harnessed") == {"count": 11}


async def test_harness_defaults_to_memory_and_sync_from_a_registry_file(tmp_path: Path) -> None:
    (tmp_path / "counting.yaml").write_text(
        "workflow_type: Counting\n"
        "steps:\n"
        f"  - name: Inc\n    type: STANDARD\n    function: {fx.path('increment')}\n"
        "    automate_next: true\n"
        f"  - name: Done\n    type: STANDARD\n    function: {fx.path('mark_d')}\n",
        encoding="utf-8",
    )
    registry = tmp_path / "workflow_registry.yaml"
    registry.write_text(
        "workflows:\n  - type: Counting\n    config_file: counting.yaml\n"
        "    initial_state_model: builtins.dict\n",
        encoding="utf-8",
    )
    async with TestHarness(str(registry), workflow_type="Counting") as harness:
        assert isinstance(harness.persistence, MemoryPersistenceProvider)
        assert isinstance(harness.execution, SyncExecutionProvider)
        wf = await harness.start_workflow(initial_data={"count": 1})
        report = await harness.next_step(wf.id)
        assert report["steps_completed"] == ["Inc", "Done"]
        assert report["status"] == "COMPLETED"
        assert wf.status is Status.COMPLETED
        assert report["state"] == wf.state == {"count": 2, "d": True}
        assert await harness.run_step("Inc", {"count": 41}) == {"count": 42}
