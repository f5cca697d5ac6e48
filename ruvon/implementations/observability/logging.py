"""An observer that writes every lifecycle event to the standard ``logging`` module."""

from __future__ import annotations

import logging

from ruvon.providers.observer import (
    BaseObserver,
    CompensationRan,
    StatusChanged,
    StepCompleted,
    StepFailed,
    StepStarted,
    WorkflowFinished,
    WorkflowStarted,
)


class LoggingObserver(BaseObserver):
    """Logs to ``ruvon.events`` (INFO for progress, WARNING for failures)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("ruvon.events")

    def on_workflow_started(self, event: WorkflowStarted) -> None:
        self.logger.info("workflow %s started (%s)", event.workflow_id, event.workflow_type)

    def on_step_started(self, event: StepStarted) -> None:
        self.logger.debug(
            "workflow %s step %s started (attempt %d)",
            event.workflow_id,
            event.step_name,
            event.attempt,
        )

    def on_step_completed(self, event: StepCompleted) -> None:
        self.logger.info(
            "workflow %s step %s completed in %.1f ms",
            event.workflow_id,
            event.step_name,
            event.duration_seconds * 1000,
        )

    def on_step_failed(self, event: StepFailed) -> None:
        self.logger.warning(
            "workflow %s step %s failed (attempt %d%s): %s",
            event.workflow_id,
            event.step_name,
            event.attempt,
            ", will retry" if event.will_retry else "",
            event.error,
        )

    def on_status_changed(self, event: StatusChanged) -> None:
        self.logger.info(
            "workflow %s: %s -> %s", event.workflow_id, event.old_status, event.new_status
        )

    def on_workflow_finished(self, event: WorkflowFinished) -> None:
        level = logging.INFO if event.status == "COMPLETED" else logging.WARNING
        self.logger.log(level, "workflow %s finished: %s", event.workflow_id, event.status)

    def on_compensation(self, event: CompensationRan) -> None:
        self.logger.info(
            "workflow %s compensated %s: %s",
            event.workflow_id,
            event.step_name,
            "ok" if event.succeeded else event.error,
        )
