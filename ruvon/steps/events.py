"""WAIT_FOR_EVENT: wait in WAITING_HUMAN until a named event (a signal) arrives.

Signals are stored as they are sent (``PersistenceProvider.record_signal``), before anyone
looks at the workflow, so one sent before the workflow reaches its wait is there when it does:
the step then takes it at once and never waits. A signal is *consumed* by the save that records
its step's transition (its event id joins ``runtime["signals_consumed"]`` in that save), so it
is taken once however many processes race: the losers' saves conflict on the version.

Arrival and sending can cross: the sender stores its signal, then looks for a waiting workflow;
the step saves WAITING_HUMAN, then looks again for a signal (the ``follow_up``). One of the two
always sees the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ruvon.clock import utc_now
from ruvon.definitions.rules import StepProblem, unless
from ruvon.definitions.schema import TimeoutAction
from ruvon.engine.outcomes import Advance, StepKind, StepOutcome, Suspend
from ruvon.errors import InputValidationError, StepTimeoutError
from ruvon.models import WorkflowStatus
from ruvon.records import SignalRecord
from ruvon.steps.human import validate_input

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.runtime import StepRuntime

__all__ = ["EVENT_TIMEOUT_ACTIONS", "WaitForEventStep", "waiting_for_event"]

#: The on_timeout values a WAIT_FOR_EVENT step accepts.
EVENT_TIMEOUT_ACTIONS = (TimeoutAction.FAIL, TimeoutAction.CONTINUE, TimeoutAction.SKIP)


def waiting_for_event(event: str) -> str:
    """The ``waiting_for`` of a workflow waiting for ``event`` (shown by ``ruvon show``)."""
    return f"event:{event}"


def consumed_signals(rt: StepRuntime) -> list[str]:
    """Event ids of the signals this workflow consumed."""
    consumed = rt.record.runtime.get("signals_consumed")
    return consumed if isinstance(consumed, list) else []


async def _next_signal(rt: StepRuntime, step: StepDefinition) -> SignalRecord | None:
    consumed = set(consumed_signals(rt))
    for signal in await rt.persistence.list_signals(rt.id, str(step.event)):
        if signal.event_id not in consumed:
            return signal
    return None


def _consume(rt: StepRuntime, step: StepDefinition, signal: SignalRecord) -> StepOutcome:
    validated = validate_input(step, signal.data)
    data = validated.model_dump(mode="json") if validated is not None else dict(signal.data)
    rt.record.runtime.setdefault("signals_consumed", []).append(signal.event_id)
    rt.audit(
        "EVENT_RECEIVED",
        step.name,
        {"event": signal.name, "event_id": signal.event_id, "sent_by": signal.sent_by},
    )
    return Advance(data)


class WaitForEventStep(StepKind):
    """Merges the event's data (validated by ``input_model``) into state and moves on."""

    async def execute(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome:
        signal = await _next_signal(rt, step)
        if signal is not None:
            return _consume(rt, step, signal)
        deadline = utc_now() + timedelta(seconds=step.timeout) if step.timeout else None

        async def look_again() -> StepOutcome | None:
            arrived = await _next_signal(rt, step)
            return _consume(rt, step, arrived) if arrived is not None else None

        return Suspend(
            WorkflowStatus.WAITING_HUMAN,
            waiting_for=waiting_for_event(str(step.event)),
            run_at=deadline,
            follow_up=look_again,
        )

    async def resume(
        self, rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None
    ) -> StepOutcome | None:
        if user_input:
            # Raised while waiting, so the workflow keeps waiting (see WorkflowEngine._guard).
            raise InputValidationError(
                f"step '{step.name}' waits for the event '{step.event}', not for input: send it "
                f"with `ruvon signal {rt.id} {step.event} --data JSON`"
            )
        signal = await _next_signal(rt, step)
        if signal is not None:
            return _consume(rt, step, signal)
        deadline = rt.record.run_at
        if deadline is None or deadline > utc_now():
            return None
        return self._time_out(rt, step)

    def _time_out(self, rt: StepRuntime, step: StepDefinition) -> StepOutcome:
        action = step.on_timeout
        if action is TimeoutAction.FAIL:
            raise StepTimeoutError(
                f"step '{step.name}' got no '{step.event}' event within {step.timeout:g}s",
                step=step.name,
                non_retryable=True,
            )
        rt.audit("EVENT_TIMED_OUT", step.name, {"event": step.event, "on_timeout": str(action)})
        if action is TimeoutAction.SKIP:
            return Advance({})
        data = dict(step.timeout_data or {})
        validated = validate_input(step, data)
        return Advance(validated.model_dump(mode="json") if validated is not None else data)

    def validate(self, step: StepDefinition) -> Iterator[StepProblem]:
        yield from unless(step.event is not None, "event", "a WAIT_FOR_EVENT step needs 'event'")
        yield from unless(
            step.on_timeout in EVENT_TIMEOUT_ACTIONS,
            "on_timeout",
            f"a WAIT_FOR_EVENT step's on_timeout is one of "
            f"{', '.join(a.value for a in EVENT_TIMEOUT_ACTIONS)}, not '{step.on_timeout}'",
        )
        yield from unless(
            step.on_timeout is TimeoutAction.FAIL or step.timeout is not None,
            "on_timeout",
            f"on_timeout '{step.on_timeout}' needs a 'timeout' (seconds to wait for the event)",
        )
        yield from unless(
            step.timeout_data is None or step.on_timeout is TimeoutAction.CONTINUE,
            "timeout_data",
            "'timeout_data' is the data of a timed-out wait with on_timeout 'continue'",
        )
        yield from unless(
            step.function is None,
            "function",
            "a WAIT_FOR_EVENT step merges the event's data into state; it takes no 'function'",
        )
