"""TestHarness: run workflows in a test with in-memory persistence and inline execution.

::

    harness = TestHarness("config/workflow_registry.yaml")
    workflow = await harness.start_workflow(workflow_type="OrderProcessing", initial_data={...})
    result = await harness.next_step(workflow.id)
    assert result["step_completed"]
    reloaded = await harness.load_workflow(workflow.id)

``start_workflow`` returns a *live* object: ``harness.next_step(workflow.id)`` advances that very
object, so its ``status`` and ``state`` are current afterwards. Step failures propagate out of
``next_step`` (after the workflow was persisted as FAILED), exactly as from
``Workflow.next_step``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypedDict

from pydantic import BaseModel

from ruvon.builder import WorkflowBuilder
from ruvon.definitions.imports import cached_step_function
from ruvon.definitions.schema import StepDefinition
from ruvon.engine.invoke import check_result
from ruvon.errors import InvalidWorkflowOperation
from ruvon.models import StepContext, WorkflowStatus
from ruvon.providers.execution import ExecutionProvider, StepCall
from ruvon.providers.observer import WorkflowObserver
from ruvon.providers.persistence import PersistenceProvider
from ruvon.records import AuditEntry
from ruvon.workflow import Workflow

__all__ = ["StepReport", "TestHarness"]

HARNESS_WORKFLOW_ID = "test-harness"


class StepReport(TypedDict):
    """What one ``TestHarness.next_step`` call did (a plain dict, subscriptable by key)."""

    step_completed: bool
    """True when at least one step completed (False when the call only paused or waited)."""
    step_name: str | None
    """The step the workflow was at when the call began."""
    steps_completed: list[str]
    """Every step completed by the call, in order (more than one with ``automate_next``)."""
    result: dict[str, Any]
    jump_to: str | None
    status: str
    current_step: str | None
    state: dict[str, Any]


class TestHarness:
    """Drives workflows for tests: ``MemoryPersistenceProvider`` + ``SyncExecutionProvider``.

    Definitions come from ``workflow_registry`` (a registry dict or the path of a
    ``workflow_registry.yaml``), from ``config_dir``, or from a ready ``builder`` (for example
    one with ``register_workflow_inline`` definitions). Pass ``persistence_provider`` /
    ``execution_provider`` to run the same test against another backend.
    """

    __test__ = False  # a library class, not a pytest test class

    def __init__(
        self,
        workflow_registry: Mapping[str, Any] | str | Path | None = None,
        *,
        builder: WorkflowBuilder | None = None,
        config_dir: str | Path | None = None,
        workflow_type: str | None = None,
        persistence_provider: PersistenceProvider | None = None,
        execution_provider: ExecutionProvider | None = None,
        observer: WorkflowObserver | None = None,
    ) -> None:
        if builder is not None and (workflow_registry is not None or config_dir is not None):
            raise ValueError("pass either a builder or a registry/config_dir, not both")
        self._owned_persistence: PersistenceProvider | None = None
        self._owned_execution: ExecutionProvider | None = None
        if persistence_provider is None:
            from ruvon.implementations.persistence.memory import MemoryPersistenceProvider

            persistence_provider = self._owned_persistence = MemoryPersistenceProvider()
        if execution_provider is None:
            from ruvon.implementations.execution.sync import SyncExecutionProvider

            execution_provider = self._owned_execution = SyncExecutionProvider()
        self.persistence: PersistenceProvider = persistence_provider
        self.execution: ExecutionProvider = execution_provider
        self.observer = observer
        self.workflow_type = workflow_type
        self.builder = builder or WorkflowBuilder(
            workflow_registry,
            config_dir=config_dir,
            persistence_provider=persistence_provider,
            execution_provider=execution_provider,
            observer=observer,
        )
        self._live: dict[str, Workflow] = {}

    # ------------------------------------------------------------------ workflows
    async def start_workflow(
        self,
        workflow_type: str | None = None,
        initial_data: Mapping[str, Any] | BaseModel | None = None,
        **create_options: Any,
    ) -> Workflow:
        """Create a workflow (not yet run) and return the live object the harness drives."""
        workflow = await self.builder.create_workflow(
            self._type(workflow_type),
            initial_data,
            persistence_provider=self.persistence,
            execution_provider=self.execution,
            workflow_observer=self.observer,
            **create_options,
        )
        self._live[workflow.id] = workflow
        return workflow

    async def next_step(
        self, workflow_id: str, user_input: dict[str, Any] | None = None
    ) -> StepReport:
        """Advance the workflow by one ``next_step`` and report what happened."""
        workflow = await self._workflow(workflow_id)
        step_name = workflow.current_step
        audit_before = len(await self.persistence.get_audit_log(workflow_id))
        result, jump = await workflow.next_step(user_input=user_input)
        entries = (await self.persistence.get_audit_log(workflow_id))[audit_before:]
        completed = _completed_steps(entries)
        return StepReport(
            step_completed=bool(completed),
            step_name=step_name,
            steps_completed=completed,
            result=result,
            jump_to=jump,
            status=str(workflow.status),
            current_step=workflow.current_step,
            state=workflow.state_dict(),
        )

    async def run(self, workflow_id: str) -> WorkflowStatus:
        """Advance until the workflow waits or ends; failures are recorded, not raised."""
        return await (await self._workflow(workflow_id)).run()

    async def load_workflow(self, workflow_id: str) -> Workflow:
        """A fresh copy of the workflow as stored (independent of the live object)."""
        return await self.builder.load_workflow(
            workflow_id,
            persistence_provider=self.persistence,
            execution_provider=self.execution,
            workflow_observer=self.observer,
        )

    async def get_audit_log(self, workflow_id: str) -> list[AuditEntry]:
        """The workflow's audit rows, oldest first."""
        return await self.persistence.get_audit_log(workflow_id)

    # ------------------------------------------------------------------ single steps
    async def run_step(
        self,
        step_name: str,
        state: Mapping[str, Any] | BaseModel | None = None,
        user_input: Mapping[str, Any] | None = None,
        *,
        workflow_type: str | None = None,
    ) -> dict[str, Any]:
        """Call one step's function on ``state`` (no workflow, nothing persisted).

        Returns the dict the function returned; its exceptions propagate unchanged.
        """
        definition = self.builder.get_definition(self._type(workflow_type))
        step = _find_step(definition.steps, step_name)
        if step is None or step.function is None:
            raise InvalidWorkflowOperation(
                f"workflow '{definition.workflow_type}' has no step '{step_name}' with a function"
            )
        function = cached_step_function(step.function, step=step.name)
        data = state.model_dump(mode="json") if isinstance(state, BaseModel) else dict(state or {})
        model = definition.state_model
        step_state: Any = model.model_validate(data) if definition.state_is_model else data
        context = StepContext(
            workflow_id=HARNESS_WORKFLOW_ID,
            step_name=step.name,
            workflow_type=definition.workflow_type,
            idempotency_key=f"{HARNESS_WORKFLOW_ID}:{step.name}:1",
        )
        kwargs = dict(user_input or {})
        call = StepCall(step.name, function, step_state, context, kwargs, step.timeout)
        value = await self.execution.execute(call)
        return check_result(value, step=step.name, function=function)

    # ------------------------------------------------------------------ lifecycle
    async def close(self) -> None:
        """Close the providers the harness created itself."""
        if self._owned_persistence is not None:
            await self._owned_persistence.close()
            self._owned_persistence = None
        if self._owned_execution is not None:
            self._owned_execution.close()
            self._owned_execution = None
        self._live.clear()

    async def __aenter__(self) -> TestHarness:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _type(self, workflow_type: str | None) -> str:
        chosen = workflow_type or self.workflow_type
        if chosen is None:
            raise ValueError("pass workflow_type (or give the harness a default workflow_type)")
        return chosen

    async def _workflow(self, workflow_id: str) -> Workflow:
        workflow = self._live.get(workflow_id)
        if workflow is None:
            workflow = await self.load_workflow(workflow_id)
            self._live[workflow_id] = workflow
        return workflow


def _completed_steps(entries: list[AuditEntry]) -> list[str]:
    return [e.step_name for e in entries if e.event_type == "STEP_COMPLETED" and e.step_name]


def _find_step(steps: tuple[StepDefinition, ...], name: str) -> StepDefinition | None:
    for step in steps:
        if step.name == name:
            return step
        found = _find_step(step.loop_body, name)
        if found is not None:
            return found
    return None
