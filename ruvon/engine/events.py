"""Lifecycle events of one workflow, delivered to its observer.

Events are only built when the observer overrides the hook (the no-op base costs nothing on the
step hot path), and an observer that raises is logged and ignored: monitoring must never break
a workflow.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ruvon.providers import observer as events
from ruvon.providers.observer import BaseObserver, WorkflowObserver

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition

logger = logging.getLogger("ruvon.workflow")


class WorkflowEvents:
    """Builds and delivers the events of one workflow."""

    __slots__ = ("observer", "workflow_id", "workflow_type")

    def __init__(self, observer: WorkflowObserver, workflow_id: str, workflow_type: str) -> None:
        self.observer = observer
        self.workflow_id = workflow_id
        self.workflow_type = workflow_type

    def notify(self, hook: str, event: Any) -> None:
        """Call an observer hook; an observer's failure is logged, never propagated."""
        try:
            getattr(self.observer, hook)(event)
        except Exception:
            logger.exception("observer %r failed in %s", self.observer, hook)

    def observes(self, hook: str) -> bool:
        """False when the observer keeps the no-op hook, or lacks an optional one (so building
        the event can be skipped)."""
        own = getattr(type(self.observer), hook, None)
        return own is not None and own is not getattr(BaseObserver, hook)

    def started(
        self,
        initial_state: dict[str, Any],
        parent_execution_id: str | None,
        *,
        on_cluster: bool = False,
    ) -> None:
        self.notify(
            "on_workflow_started",
            events.WorkflowStarted(
                self.workflow_id, self.workflow_type, initial_state, parent_execution_id, on_cluster
            ),
        )

    def step_started(
        self,
        step: StepDefinition,
        attempt: int,
        branch: str | None = None,
        *,
        queue: str | None = None,
        worker: str | None = None,
    ) -> None:
        if self.observes("on_step_started"):
            self.notify(
                "on_step_started",
                events.StepStarted(
                    self.workflow_id,
                    self.workflow_type,
                    step.name,
                    str(step.type),
                    attempt,
                    branch,
                    queue,
                    worker,
                ),
            )

    def attempt_ended(
        self,
        step: StepDefinition,
        attempt: int,
        branch: str | None,
        duration: float,
        exc: BaseException | None,
    ) -> None:
        if self.observes("on_step_attempt_ended"):
            self.notify(
                "on_step_attempt_ended",
                events.StepAttemptEnded(
                    self.workflow_id,
                    self.workflow_type,
                    step.name,
                    str(step.type),
                    attempt,
                    duration,
                    branch,
                    None if exc is None else f"{type(exc).__name__}: {exc}",
                ),
            )

    def step_completed(
        self, step: StepDefinition, duration: float, result: dict[str, Any] | None
    ) -> None:
        if self.observes("on_step_completed"):
            self.notify(
                "on_step_completed",
                events.StepCompleted(
                    self.workflow_id,
                    self.workflow_type,
                    step.name,
                    str(step.type),
                    duration,
                    result,
                ),
            )

    def step_failed(
        self, step: StepDefinition, exc: BaseException, attempt: int, will_retry: bool
    ) -> None:
        self.notify(
            "on_step_failed",
            events.StepFailed(
                self.workflow_id,
                self.workflow_type,
                step.name,
                str(step.type),
                f"{type(exc).__name__}: {exc}",
                attempt,
                will_retry,
            ),
        )

    def status_changed(self, old: str, new: str, step: str | None) -> None:
        self.notify(
            "on_status_changed",
            events.StatusChanged(self.workflow_id, self.workflow_type, old, new, step),
        )

    def finished(self, status: str, error: str | None, final_state: dict[str, Any]) -> None:
        self.notify(
            "on_workflow_finished",
            events.WorkflowFinished(
                self.workflow_id, self.workflow_type, status, error, final_state
            ),
        )

    def compensated(self, step_name: str, succeeded: bool, error: str | None) -> None:
        self.notify(
            "on_compensation",
            events.CompensationRan(
                self.workflow_id, self.workflow_type, step_name, succeeded, error
            ),
        )
