"""WAIT: a durable timer. The workflow sleeps in WAITING_TIMER until ``run_at``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ruvon.clock import utc_now
from ruvon.definitions.rules import StepProblem, unless
from ruvon.engine.outcomes import Advance, StepKind, StepOutcome, Suspend
from ruvon.errors import StepFunctionError
from ruvon.models import WorkflowStatus

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.runtime import StepRuntime


def _deadline(rt: StepRuntime, step: StepDefinition) -> datetime:
    if step.wait_seconds is not None:
        return utc_now() + timedelta(seconds=step.wait_seconds)
    text = str(rt.render(step.wait_until))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise StepFunctionError(
            f"WAIT step '{step.name}': wait_until rendered to {text!r}, not an ISO-8601 time",
            step=step.name,
            non_retryable=True,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class WaitStep(StepKind):
    """The deadline is stored, so a restarted process picks the timer up where it was."""

    async def execute(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        run_at = _deadline(rt, step)
        return Suspend(WorkflowStatus.WAITING_TIMER, run_at=run_at, waiting_for="timer")

    async def resume(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome | None:
        run_at = rt.record.run_at
        if run_at is not None and run_at > utc_now():
            return None
        rt.audit("TIMER_FIRED", step.name, {"run_at": run_at.isoformat() if run_at else None})
        return Advance({})

    def validate(self, step: StepDefinition) -> Iterator[StepProblem]:
        yield from unless(
            (step.wait_seconds is None) != (step.wait_until is None),
            "wait_seconds",
            "a WAIT step needs exactly one of 'wait_seconds' or 'wait_until'",
        )
