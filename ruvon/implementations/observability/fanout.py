"""One observer that hands every event to several (metrics and tracing, say)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ruvon.providers.observer import (
    BaseObserver,
    CompensationRan,
    StatusChanged,
    StepAttemptEnded,
    StepCompleted,
    StepFailed,
    StepStarted,
    WorkflowFinished,
    WorkflowObserver,
    WorkflowStarted,
)

__all__ = ["ObserverFanout"]

logger = logging.getLogger("ruvon.workflow")


class ObserverFanout(BaseObserver):
    """Delivers each event to every observer in turn; one that raises does not stop the rest."""

    def __init__(self, observers: Sequence[WorkflowObserver]) -> None:
        self.observers = tuple(observers)

    def _deliver(self, hook: str, event: Any) -> None:
        for observer in self.observers:
            method = getattr(observer, hook, None)
            if method is None:
                continue  # an optional hook this observer does not have
            try:
                method(event)
            except Exception:
                logger.exception("observer %r failed in %s", observer, hook)

    def on_workflow_started(self, event: WorkflowStarted) -> None:
        self._deliver("on_workflow_started", event)

    def on_step_started(self, event: StepStarted) -> None:
        self._deliver("on_step_started", event)

    def on_step_attempt_ended(self, event: StepAttemptEnded) -> None:
        self._deliver("on_step_attempt_ended", event)

    def on_step_completed(self, event: StepCompleted) -> None:
        self._deliver("on_step_completed", event)

    def on_step_failed(self, event: StepFailed) -> None:
        self._deliver("on_step_failed", event)

    def on_status_changed(self, event: StatusChanged) -> None:
        self._deliver("on_status_changed", event)

    def on_workflow_finished(self, event: WorkflowFinished) -> None:
        self._deliver("on_workflow_finished", event)

    def on_compensation(self, event: CompensationRan) -> None:
        self._deliver("on_compensation", event)
