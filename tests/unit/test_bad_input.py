"""Bad input at run time: each fails with the exact error class, naming its culprit.

Workflows run through the builder with in-memory persistence and inline execution. Every case
pins the error class exactly (``type(exc) is X``), checks that the message names what was wrong
(workflow, step, function, field, model), that it is one readable line and not a pydantic dump,
and where the workflow ends up (and that storage agrees).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ruvon.builder import WorkflowBuilder
from ruvon.errors import (
    InputValidationError,
    InvalidStepResult,
    InvalidWorkflowOperation,
    RuvonError,
    StateValidationError,
    WorkflowNotFound,
    WorkflowTypeNotFound,
)
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon.models import WorkflowStatus
from ruvon.workflow import Workflow
from tests.unit import bad_input_fixtures as fx

ORDER = {"order_id": "o-1", "amount": 10}

# Today a step result that no backend can store (NaN, an arbitrary object) is only caught by the
# save at the end of the transition: the error reaches the caller, but the workflow is not
# FAILED and the in-memory Workflow has already advanced past what storage holds. The fix checks
# storability in Workflow.apply_result before the state is adopted (and has encode_state name
# the offending key). Strict, so the tests fail loudly once the fix lands: drop the marker then.
UNSTORABLE_STATE_NOT_FAILED = pytest.mark.xfail(
    strict=True,
    reason="workflow.py adopts unstorable state before saving; serialization.py does not "
    "name the non-JSON key",
)


@pytest.fixture
def persistence() -> MemoryPersistenceProvider:
    return MemoryPersistenceProvider()


@pytest.fixture
async def builder(persistence: MemoryPersistenceProvider) -> AsyncIterator[WorkflowBuilder]:
    builder = WorkflowBuilder(
        workflow_registry={},
        persistence_provider=persistence,
        execution_provider=SyncExecutionProvider(),
    )
    yield builder
    await builder.close()


def assert_readable(exc: BaseException) -> str:
    """One line, no pydantic error dump; returns the message."""
    text = str(exc)
    assert text
    assert "\n" not in text, text
    assert "https://errors.pydantic.dev" not in text, text
    assert "validation error" not in text.lower(), text
    return text


def single_step(
    builder: WorkflowBuilder,
    function: Callable[..., Any],
    *,
    model: type[Any] = fx.OrderState,
    name: str = "Single",
) -> None:
    """Register ``name``: one STANDARD step ``work`` running ``function``, then ``finish``."""
    builder.register_workflow_inline(
        name,
        [{"name": "work", "function": function}, {"name": "finish", "function": fx.ok_step}],
        initial_state_model=model,
    )


async def run_failing_step(
    builder: WorkflowBuilder,
    persistence: MemoryPersistenceProvider,
    initial: dict[str, Any],
    expected: type[RuvonError],
) -> tuple[Workflow, RuvonError]:
    """Run step ``work`` of ``Single``: it must raise exactly ``expected`` and fail the workflow."""
    workflow = await builder.create_workflow("Single", initial)
    with pytest.raises(expected) as info:
        await workflow.next_step()
    exc = info.value
    assert type(exc) is expected, f"{type(exc).__name__}: {exc}"
    assert_readable(exc)
    assert workflow.status is WorkflowStatus.FAILED
    stored = await persistence.load_workflow(workflow.id)
    assert stored.status is WorkflowStatus.FAILED
    assert stored.error is not None
    assert stored.error.startswith(f"{expected.__name__}: ")
    assert stored.current_step_name == "work"
    return workflow, exc


# ---------------------------------------------------------------------- starting a workflow


async def test_initial_data_failing_the_state_model(
    builder: WorkflowBuilder, persistence: MemoryPersistenceProvider
) -> None:
    single_step(builder, fx.ok_step)
    with pytest.raises(InputValidationError) as info:
        await builder.create_workflow("Single", {"amount": "lots"})
    exc = info.value
    assert type(exc) is InputValidationError
    text = assert_readable(exc)
    assert "'Single'" in text
    assert "OrderState" in text
    assert "order_id: Field required" in text
    assert "amount: Input should be a valid integer" in text
    assert await persistence.list_workflows() == []


async def test_initial_data_with_nan_is_refused(
    builder: WorkflowBuilder, persistence: MemoryPersistenceProvider
) -> None:
    single_step(builder, fx.ok_step)
    with pytest.raises(StateValidationError) as info:
        await builder.create_workflow("Single", {**ORDER, "score": math.nan})
    exc = info.value
    assert type(exc) is StateValidationError
    text = assert_readable(exc)
    assert "'score'" in text
    assert "NaN" in text
    assert await persistence.list_workflows() == []


async def test_create_workflow_of_an_unknown_type_lists_known_types(
    builder: WorkflowBuilder,
) -> None:
    single_step(builder, fx.ok_step)
    single_step(builder, fx.ok_step, name="Other")
    with pytest.raises(WorkflowTypeNotFound) as info:
        await builder.create_workflow("Singel", ORDER)
    exc = info.value
    assert type(exc) is WorkflowTypeNotFound
    text = assert_readable(exc)
    assert "'Singel'" in text
    assert "known: Other, Single" in text


async def test_load_workflow_of_an_unknown_id(builder: WorkflowBuilder) -> None:
    with pytest.raises(WorkflowNotFound) as info:
        await builder.load_workflow("no-such-workflow-id")
    exc = info.value
    assert type(exc) is WorkflowNotFound
    assert exc.workflow_id == "no-such-workflow-id"
    assert "'no-such-workflow-id'" in assert_readable(exc)


# ---------------------------------------------------------------------- human input


async def test_human_input_failing_the_input_model_keeps_the_workflow_waiting(
    builder: WorkflowBuilder, persistence: MemoryPersistenceProvider
) -> None:
    builder.register_workflow_inline(
        "Review",
        [
            {"name": "review", "type": "HUMAN_IN_LOOP", "input_model": f"{fx.PREFIX}.Approval"},
            {"name": "finish", "function": fx.ok_step},
        ],
    )
    workflow = await builder.create_workflow("Review", {})
    await workflow.next_step()
    assert workflow.status is WorkflowStatus.WAITING_HUMAN

    with pytest.raises(InputValidationError) as info:
        await workflow.next_step(user_input={"approved": "perhaps"})
    exc = info.value
    assert type(exc) is InputValidationError
    text = assert_readable(exc)
    assert "step 'review'" in text
    assert "Approval" in text
    assert "approved: Input should be a valid boolean" in text
    assert "reviewer: Field required" in text

    # Bad input is the person's mistake, not the workflow's: it keeps waiting for good input.
    assert workflow.status is WorkflowStatus.WAITING_HUMAN
    stored = await persistence.load_workflow(workflow.id)
    assert stored.status is WorkflowStatus.WAITING_HUMAN
    assert stored.current_step_name == "review"
    await workflow.next_step(user_input={"approved": True, "reviewer": "ada"})
    assert workflow.state["reviewer"] == "ada"


# ---------------------------------------------------------------------- what a step returns


@pytest.mark.parametrize(
    ("function", "kind"), [(fx.returns_list, "list"), (fx.returns_str, "str")], ids=["list", "str"]
)
async def test_step_returning_a_non_dict(
    builder: WorkflowBuilder,
    persistence: MemoryPersistenceProvider,
    function: Callable[..., Any],
    kind: str,
) -> None:
    single_step(builder, function)
    _, exc = await run_failing_step(builder, persistence, ORDER, InvalidStepResult)
    assert isinstance(exc, InvalidStepResult)
    assert exc.step == "work"
    assert exc.non_retryable
    assert f"step 'work': function '{function.__qualname__}' returned {kind}" in str(exc)
    assert "must return a dict" in str(exc)


async def test_merge_producing_invalid_state(
    builder: WorkflowBuilder, persistence: MemoryPersistenceProvider
) -> None:
    single_step(builder, fx.returns_negative_amount)
    workflow, exc = await run_failing_step(builder, persistence, ORDER, StateValidationError)
    text = str(exc)
    assert f"'{workflow.id}'" in text
    assert "OrderState after step 'work'" in text
    assert "amount: Input should be greater than or equal to 0" in text
    # The bad merge never reached storage.
    assert (await persistence.load_workflow(workflow.id)).state["amount"] == 10


async def test_step_returning_keys_the_state_model_does_not_declare(
    builder: WorkflowBuilder, persistence: MemoryPersistenceProvider
) -> None:
    single_step(builder, fx.returns_undeclared_key)
    _, exc = await run_failing_step(builder, persistence, ORDER, StateValidationError)
    text = str(exc)
    assert "step 'work'" in text
    assert "surprise" in text
    assert "OrderState does not declare" in text


@pytest.mark.parametrize(
    ("function", "model", "key"),
    [(fx.returns_nan, fx.OrderState, "score"), (fx.returns_nan_free_form, dict, "ratio")],
    ids=["state-model", "free-form"],
)
async def test_step_returning_nan(
    builder: WorkflowBuilder,
    persistence: MemoryPersistenceProvider,
    function: Callable[..., Any],
    model: type[Any],
    key: str,
) -> None:
    single_step(builder, function, model=model)
    workflow, exc = await run_failing_step(builder, persistence, ORDER, StateValidationError)
    text = str(exc)
    assert f"'{workflow.id}'" in text
    assert "step 'work'" in text
    assert f"'{key}'" in text
    assert "NaN" in text


async def test_step_returning_a_non_json_value(
    builder: WorkflowBuilder, persistence: MemoryPersistenceProvider
) -> None:
    single_step(builder, fx.returns_object, model=dict)
    workflow, exc = await run_failing_step(builder, persistence, ORDER, StateValidationError)
    text = str(exc)
    assert f"'{workflow.id}'" in text
    assert "step 'work'" in text
    assert "not JSON-serializable at 'handle'" in text
    assert "object" in text


# ---------------------------------------------------------------------- finished workflows


async def test_next_step_on_a_completed_workflow(builder: WorkflowBuilder) -> None:
    single_step(builder, fx.ok_step)
    workflow = await builder.create_workflow("Single", ORDER)
    assert await workflow.run() is WorkflowStatus.COMPLETED
    with pytest.raises(InvalidWorkflowOperation) as info:
        await workflow.next_step()
    exc = info.value
    assert type(exc) is InvalidWorkflowOperation
    text = assert_readable(exc)
    assert f"'{workflow.id}'" in text
    assert "COMPLETED" in text
