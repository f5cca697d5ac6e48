"""The engine's seams: it runs the handlers it is handed, the loader checks each kind by the rules
it is given, and a worker's claim reaches the workflow explicitly, when it is built."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ruvon.builder import WorkflowBuilder
from ruvon.definitions.loader import load_workflow_file
from ruvon.definitions.rules import StepProblem
from ruvon.definitions.schema import StepDefinition
from ruvon.engine.distribution import Distribution
from ruvon.engine.outcomes import Advance, StepKind, StepOutcome
from ruvon.engine.runtime import StepRuntime
from ruvon.errors import DefinitionError
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon.models import StepType, WorkflowStatus
from ruvon.providers.runs import Claim, QueuedRun, RunKind
from ruvon.steps.registry import DEFAULT_HANDLERS
from ruvon.workflow import Workflow
from tests.contract import steps_fixtures as fx


class CountingStep(StepKind):
    """A STANDARD handler that records what it was asked and never calls the function."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    async def execute(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        self.seen.append((step.name, rt.run_number(step.name)))
        return Advance({"handled_by": "counting", step.name: True})


class NoStandardSteps(StepKind):
    """Rules that refuse every STANDARD step, naming its function."""

    def validate(self, step: StepDefinition) -> Iterator[StepProblem]:
        yield StepProblem("function", "this rulebook allows no STANDARD step")


class RecordingDispatcher:
    """A RunDispatcher that keeps the runs it is asked to announce."""

    name = "recording"

    def __init__(self) -> None:
        self.sent: list[QueuedRun] = []

    def dispatch(self, runs: Sequence[QueuedRun]) -> None:
        self.sent += runs

    def queue_for(self, step_queue: str | None, data_region: str | None) -> str:
        return step_queue or data_region or "default"

    async def execute(self, call: Any) -> Any:
        raise AssertionError("not used")

    def close(self) -> None:
        pass


def _builder() -> WorkflowBuilder:
    builder = WorkflowBuilder(
        persistence_provider=MemoryPersistenceProvider(),
        execution_provider=SyncExecutionProvider(),
    )
    builder.register_workflow_inline(
        "Two", [{"name": "A", "function": fx.task_x}, {"name": "B", "function": fx.task_y}]
    )
    return builder


async def test_the_engine_runs_the_handlers_it_is_handed() -> None:
    stored = await _builder().create_workflow("Two")
    counting = CountingStep()
    wf = Workflow(
        stored.record,
        stored.definition,
        persistence=stored.persistence,
        execution=stored.execution,
        observer=stored.observer,
        children=stored.children,
        handlers={**DEFAULT_HANDLERS, StepType.STANDARD: counting},
    )
    assert await wf.run() is WorkflowStatus.COMPLETED
    assert counting.seen == [("A", 1), ("B", 1)]
    assert wf.state == {"handled_by": "counting", "A": True, "B": True}
    assert (await wf.persistence.load_workflow(wf.id)).state == wf.state


def test_the_loader_checks_each_kind_by_the_rules_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(
        "workflow_type: One\nsteps:\n  - name: Only\n    type: STANDARD\n"
        f"    function: {fx.path('task_x')}\n"
    )
    assert load_workflow_file(path, rules=DEFAULT_HANDLERS).steps[0].name == "Only"
    strict = {**DEFAULT_HANDLERS, StepType.STANDARD: NoStandardSteps()}
    with pytest.raises(DefinitionError) as info:
        load_workflow_file(path, rules=strict)
    error = info.value
    assert (error.step, error.field, error.line) == ("Only", "function", 5)
    assert "this rulebook allows no STANDARD step" in str(error)


def test_only_a_dispatching_executor_gives_a_workflow_a_distributed_part() -> None:
    memory = MemoryPersistenceProvider()
    assert Distribution.for_providers(SyncExecutionProvider(), memory) is None
    part = Distribution.for_providers(RecordingDispatcher(), memory)
    assert part is not None
    assert part.claim is None and part.ledger is None  # memory keeps no step runs


async def test_a_claim_is_given_when_the_workflow_is_built() -> None:
    stored = await _builder().create_workflow("Two")
    claim = Claim(7, stored.id, RunKind.STEP, "A", "", 1, attempt=3, owner="w1", queue="q")
    wf = WorkflowBuilder().workflow_from_record(
        stored.record,
        persistence_provider=stored.persistence,
        execution_provider=RecordingDispatcher(),
        claim=claim,
    )
    part = wf.distribution
    assert part is not None and part.claim is claim and part.fence_pending
    assert part.claimed_attempt("A", RunKind.STEP) == 3
    assert part.claimed_attempt("A", RunKind.BRANCH) is None
    assert part.claimed_attempt("B", RunKind.STEP) is None
    assert wf.remote is part
