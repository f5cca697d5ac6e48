"""Core value types: statuses, step types, the step context and the control-flow directives.

User step modules import from here (``from ruvon.models import StepContext``), so the names and
constructor signatures follow the Ruvon documentation.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from ruvon.merge import MergeConflictBehavior, MergeStrategy

__all__ = [
    "TERMINAL_STATUSES",
    "MergeConflictBehavior",
    "MergeStrategy",
    "SagaWorkflowException",
    "StartSubWorkflowDirective",
    "StepContext",
    "StepType",
    "WorkflowDirective",
    "WorkflowJumpDirective",
    "WorkflowPauseDirective",
    "WorkflowStatus",
]


class WorkflowStatus(StrEnum):
    """Lifecycle status of a workflow instance (compares equal to its string value)."""

    ACTIVE = "ACTIVE"
    PENDING_ASYNC = "PENDING_ASYNC"
    PENDING_PARALLEL = "PENDING_PARALLEL"
    PENDING_SUB_WORKFLOW = "PENDING_SUB_WORKFLOW"
    WAITING_HUMAN = "WAITING_HUMAN"
    WAITING_TIMER = "WAITING_TIMER"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    FAILED_ROLLED_BACK = "FAILED_ROLLED_BACK"
    FAILED_CHILD_WORKFLOW = "FAILED_CHILD_WORKFLOW"
    FAILED_WORKER_CRASH = "FAILED_WORKER_CRASH"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        """Terminal statuses never change again."""
        return self in TERMINAL_STATUSES

    @property
    def is_failed(self) -> bool:
        """Any of the FAILED* statuses."""
        return self.value.startswith("FAILED")


TERMINAL_STATUSES = frozenset(
    {
        WorkflowStatus.COMPLETED,
        WorkflowStatus.FAILED,
        WorkflowStatus.FAILED_ROLLED_BACK,
        WorkflowStatus.FAILED_CHILD_WORKFLOW,
        WorkflowStatus.FAILED_WORKER_CRASH,
        WorkflowStatus.CANCELLED,
    }
)


class StepType(StrEnum):
    """Every step kind a workflow file may declare."""

    STANDARD = "STANDARD"
    COMPENSATABLE = "COMPENSATABLE"
    DECISION = "DECISION"
    ASYNC = "ASYNC"
    PARALLEL = "PARALLEL"
    SUB_WORKFLOW = "SUB_WORKFLOW"
    HTTP = "HTTP"
    LOOP = "LOOP"
    FIRE_AND_FORGET = "FIRE_AND_FORGET"
    CRON_SCHEDULE = "CRON_SCHEDULE"
    HUMAN_IN_LOOP = "HUMAN_IN_LOOP"
    HUMAN_APPROVAL = "HUMAN_APPROVAL"
    WAIT = "WAIT"
    WAIT_FOR_EVENT = "WAIT_FOR_EVENT"


class StepContext(BaseModel):
    """What a step function knows about where it runs (read-only by convention).

    ``idempotency_key`` is stable across retries of one step run, so user code can make external
    side effects exactly-once; a compensation gets its own, ``<the forward step's key>:compensate``.
    ``attempt`` counts from 1.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    workflow_id: str
    step_name: str
    validated_input: Any | None = None
    previous_step_result: dict[str, Any] | None = None
    loop_item: Any | None = None
    loop_index: int | None = None
    workflow_type: str | None = None
    attempt: int = 1
    idempotency_key: str | None = None
    parent_execution_id: str | None = None
    item: Any | None = None
    branch_name: str | None = None


_CONTEXT_DEFAULTS = {
    name: field.default
    for name, field in StepContext.model_fields.items()
    if not field.is_required()
}


def make_step_context(values: dict[str, Any]) -> StepContext:
    """Build a StepContext from trusted engine values without validation (the step hot path).

    Equivalent to ``StepContext.model_construct`` but several times cheaper, which matters when
    the engine's own overhead per step is measured in microseconds.
    """
    context = StepContext.__new__(StepContext)
    data = {**_CONTEXT_DEFAULTS, **values}
    object.__setattr__(context, "__dict__", data)
    object.__setattr__(context, "__pydantic_fields_set__", set(values))
    object.__setattr__(context, "__pydantic_extra__", None)
    object.__setattr__(context, "__pydantic_private__", None)
    return context


class WorkflowDirective(BaseException):
    """Base of the control-flow signals a step may raise.

    They derive from ``BaseException`` on purpose: a step's ``except Exception`` must not swallow
    a jump or a pause raised by code it calls.
    """


class WorkflowJumpDirective(WorkflowDirective):
    """Jump to ``target_step_name`` after merging ``result`` into state."""

    def __init__(self, target_step_name: str, result: dict[str, Any] | None = None) -> None:
        self.target_step_name = target_step_name
        self.result = result or {}
        super().__init__(f"jump to {target_step_name}")


class WorkflowPauseDirective(WorkflowDirective):
    """Merge ``result`` and pause in WAITING_HUMAN; the next ``next_step`` continues after it."""

    def __init__(
        self, result: dict[str, Any] | None = None, waiting_for: str | None = None
    ) -> None:
        self.result = result or {}
        self.waiting_for = waiting_for
        super().__init__(f"pause (waiting for {waiting_for or 'input'})")


class StartSubWorkflowDirective(WorkflowDirective):
    """Start a child workflow; the parent waits in PENDING_SUB_WORKFLOW until it ends."""

    def __init__(
        self,
        workflow_type: str,
        initial_data: dict[str, Any] | None = None,
        owner_id: str | None = None,
        data_region: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        self.workflow_type = workflow_type
        self.initial_data = initial_data or {}
        self.owner_id = owner_id
        self.data_region = data_region
        self.result = result or {}
        super().__init__(f"start sub-workflow {workflow_type}")


class SagaWorkflowException(Exception):
    """Raised by a step to fail the workflow on purpose (rolled back when saga mode is on)."""

    def __init__(self, message: str, original_exception: BaseException | None = None) -> None:
        self.message = message
        self.original_exception = original_exception
        super().__init__(message)
