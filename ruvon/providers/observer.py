"""The observability seam: lifecycle hooks, one frozen dataclass per event.

Implementers subclass :class:`BaseObserver` and override only what they need; new fields can be
added to an event without breaking them. Observers must not raise: the engine logs and ignores an
observer's exception so monitoring can never break a workflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class WorkflowStarted:
    workflow_id: str
    workflow_type: str
    initial_state: dict[str, Any] = field(default_factory=dict)
    parent_execution_id: str | None = None
    # Stored in a cluster's shared database (its workers run it), not run by this process.
    on_cluster: bool = False


@dataclass(frozen=True)
class StepStarted:
    workflow_id: str
    workflow_type: str
    step_name: str
    step_type: str
    attempt: int = 1
    branch: str | None = None  # the PARALLEL branch (or None for the step itself)
    # On a cluster worker: the queue the run came from and the worker holding its claim.
    queue: str | None = None
    worker: str | None = None


@dataclass(frozen=True)
class StepAttemptEnded:
    """One call of a step's function returned or raised (one per :class:`StepStarted`)."""

    workflow_id: str
    workflow_type: str
    step_name: str
    step_type: str
    attempt: int
    duration_seconds: float
    branch: str | None = None
    # None: the attempt succeeded (or raised a directive: a jump, a pause, a child workflow).
    error: str | None = None


@dataclass(frozen=True)
class StepCompleted:
    workflow_id: str
    workflow_type: str
    step_name: str
    step_type: str
    duration_seconds: float
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class StepFailed:
    workflow_id: str
    workflow_type: str
    step_name: str
    step_type: str
    error: str
    attempt: int = 1
    will_retry: bool = False


@dataclass(frozen=True)
class StatusChanged:
    workflow_id: str
    workflow_type: str
    old_status: str
    new_status: str
    step_name: str | None = None


@dataclass(frozen=True)
class WorkflowFinished:
    workflow_id: str
    workflow_type: str
    status: str
    error: str | None = None
    final_state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CompensationRan:
    workflow_id: str
    workflow_type: str
    step_name: str
    succeeded: bool
    error: str | None = None


@runtime_checkable
class WorkflowObserver(Protocol):
    """Receives workflow lifecycle events."""

    def on_workflow_started(self, event: WorkflowStarted) -> None: ...
    def on_step_started(self, event: StepStarted) -> None: ...
    def on_step_completed(self, event: StepCompleted) -> None: ...
    def on_step_failed(self, event: StepFailed) -> None: ...
    def on_status_changed(self, event: StatusChanged) -> None: ...
    def on_workflow_finished(self, event: WorkflowFinished) -> None: ...
    def on_compensation(self, event: CompensationRan) -> None: ...


class BaseObserver:
    """No-op observer: subclass it and override the hooks you care about."""

    def on_workflow_started(self, event: WorkflowStarted) -> None:
        """A workflow was created and persisted."""

    def on_step_started(self, event: StepStarted) -> None:
        """A step attempt is about to run."""

    def on_step_attempt_ended(self, event: StepAttemptEnded) -> None:
        """A step attempt returned or raised (every attempt, PARALLEL branches included).

        Not part of :class:`WorkflowObserver`: an observer without it is simply not told.
        """

    def on_step_completed(self, event: StepCompleted) -> None:
        """A step finished and its result was merged."""

    def on_step_failed(self, event: StepFailed) -> None:
        """A step attempt raised; ``will_retry`` says whether another attempt follows."""

    def on_status_changed(self, event: StatusChanged) -> None:
        """The workflow status changed (pauses, waits, resumes, terminal states)."""

    def on_workflow_finished(self, event: WorkflowFinished) -> None:
        """The workflow reached a terminal status."""

    def on_compensation(self, event: CompensationRan) -> None:
        """One compensation function ran during a saga rollback."""


NoopObserver = BaseObserver
