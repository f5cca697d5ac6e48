"""Sending a named event to a workflow: ``Client.signal``, ``ruvon signal``, the server's API.

:func:`send_signal` checks first and writes nothing on a refusal: an unknown workflow is
``WorkflowNotFound``, a finished one or one with no WAIT_FOR_EVENT step for the name is
``InvalidWorkflowOperation``, data its step's ``input_model`` rejects is
``InputValidationError`` naming the field. Then the signal is stored (a duplicate event id
stops here: ``duplicate``), and if the workflow waits for it now it is resumed at once in this
process, as ``resume`` does (on a cluster the workers take the steps after it): ``delivered``.
Otherwise it stays stored until the workflow reaches the wait: ``stored``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ruvon.definitions.schema import StepDefinition
from ruvon.errors import ConcurrencyConflict, InvalidWorkflowOperation
from ruvon.models import StepType, WorkflowStatus
from ruvon.records import SignalRecord
from ruvon.steps.human import validate_input
from ruvon.workflow import Workflow

__all__ = ["SignalOutcome", "SignalSent", "send_signal"]

_ATTEMPTS = 5


class SignalOutcome(StrEnum):
    """What a send did."""

    DELIVERED = "delivered"  # the workflow was waiting for it and moved on
    STORED = "stored"  # kept until the workflow reaches its wait for the name
    DUPLICATE = "duplicate"  # a signal with this event id was already sent: nothing changed


@dataclass(frozen=True)
class SignalSent:
    """The outcome of one send, with the event id (generated when none was given)."""

    outcome: SignalOutcome
    event_id: str
    workflow: Workflow


def _event_steps(steps: tuple[StepDefinition, ...]) -> Iterator[StepDefinition]:
    for step in steps:
        if step.type is StepType.WAIT_FOR_EVENT:
            yield step
        yield from _event_steps(step.loop_body)


def _waiting_step(workflow: Workflow, name: str) -> StepDefinition | None:
    """The WAIT_FOR_EVENT step for ``name`` the workflow waits at now, if it does."""
    index = workflow.current_step_index
    if workflow.status is not WorkflowStatus.WAITING_HUMAN or not 0 <= index < len(workflow.steps):
        return None
    step = workflow.steps[index]
    waiting = step.type is StepType.WAIT_FOR_EVENT and step.event == name
    return step if waiting and not workflow.record.runtime.get("resume_after") else None


def _step_for(workflow: Workflow, name: str) -> StepDefinition:
    if workflow.status.is_terminal:
        raise InvalidWorkflowOperation(
            f"workflow '{workflow.id}' is {workflow.status}: it waits for no event any more, "
            f"so the '{name}' signal was not stored"
        )
    current = _waiting_step(workflow, name)
    if current is not None:
        return current
    steps = list(_event_steps(workflow.definition.steps))
    for step in steps:
        if step.event == name:
            return step
    known = ", ".join(sorted({str(step.event) for step in steps})) or "none"
    raise InvalidWorkflowOperation(
        f"workflow '{workflow.id}' ({workflow.workflow_type}) has no WAIT_FOR_EVENT step for the "
        f"event '{name}' (the events it waits for: {known}); the signal was not stored"
    )


async def send_signal(
    workflow: Workflow,
    name: str,
    data: dict[str, Any] | None = None,
    *,
    event_id: str | None = None,
    actor: str | None = None,
    reload: Callable[[], Awaitable[Workflow]] | None = None,
) -> SignalSent:
    """Store the signal ``name`` for ``workflow`` and deliver it if the workflow waits for it.

    ``reload`` loads the workflow afresh: when another writer saved it first (the workflow
    itself arriving at the wait, say), the delivery is tried again on the stored copy.
    """
    payload = dict(data or {})
    step = _step_for(workflow, name)
    validate_input(step, payload)
    event_id = event_id or uuid.uuid4().hex
    signal = SignalRecord(workflow.id, name, event_id, payload, sent_by=actor)
    if not await workflow.persistence.record_signal(signal):
        return SignalSent(SignalOutcome.DUPLICATE, event_id, workflow)
    for _ in range(_ATTEMPTS):
        if _waiting_step(workflow, name) is None:
            break
        if actor is not None:
            workflow.note_operator_action("signal", actor)
        try:
            await workflow.resume({})
        except ConcurrencyConflict:
            if reload is None:
                break
            workflow = await reload()
            continue
        if event_id in workflow.record.runtime.get("signals_consumed", []):
            return SignalSent(SignalOutcome.DELIVERED, event_id, workflow)
        break
    consumed = event_id in workflow.record.runtime.get("signals_consumed", [])
    return SignalSent(
        SignalOutcome.DELIVERED if consumed else SignalOutcome.STORED, event_id, workflow
    )
