"""WAIT: a durable timer. The workflow sleeps in WAITING_TIMER until ``run_at``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ruvon.clock import utc_now
from ruvon.errors import StepFunctionError
from ruvon.models import WorkflowStatus
from ruvon.steps.base import Advance, StepOutcome, Suspend

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.workflow import Workflow


def _deadline(wf: Workflow, step: StepDefinition) -> datetime:
    if step.wait_seconds is not None:
        return utc_now() + timedelta(seconds=step.wait_seconds)
    text = str(wf.render(step.wait_until))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise StepFunctionError(
            f"WAIT step '{step.name}': wait_until rendered to {text!r}, not an ISO-8601 time",
            step=step.name,
            non_retryable=True,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class WaitStep:
    """The deadline is stored, so a restarted process picks the timer up where it was."""

    async def execute(
        self, wf: Workflow, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        run_at = _deadline(wf, step)
        return Suspend(WorkflowStatus.WAITING_TIMER, run_at=run_at, waiting_for="timer")

    async def resume(
        self, wf: Workflow, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome | None:
        run_at = wf.record.run_at
        if run_at is not None and run_at > utc_now():
            return None
        wf.checkpoint_audit(
            "TIMER_FIRED", step.name, {"run_at": run_at.isoformat() if run_at else None}
        )
        return Advance({})
