"""Saga rollback: run the compensations of completed steps in reverse order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ruvon.definitions.imports import cached_step_function
from ruvon.providers.execution import StepCall
from ruvon.records import CompensationEntry
from ruvon.steps.invoke import check_result

if TYPE_CHECKING:
    from ruvon.workflow import Workflow


def _find_step(wf: Workflow, name: str):  # type: ignore[no-untyped-def]
    for step in wf.steps:
        if step.name == name:
            return step
        for body in step.loop_body:
            if body.name == name:
                return body
    return None


async def compensate(wf: Workflow) -> None:
    """Compensate every completed step, newest first.

    A compensation that fails is recorded and the rollback goes on: stopping half-way would leave
    the earlier steps un-compensated, which is worse than reporting one failure.
    """
    record = wf.record
    for name in reversed(record.completed_steps):
        step = _find_step(wf, name)
        if step is None or step.compensate_function is None:
            continue
        state_before = wf.state_dict()
        error: str | None = None
        try:
            fn = cached_step_function(step.compensate_function, step=name)
            call = StepCall(name, fn, wf.state, wf.make_context(step), {}, step.timeout)
            result = check_result(await wf.execution.execute(call), step=name, function=fn)
            wf.apply_result(result, step, soft=True)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        await wf.persistence.record_compensation(
            CompensationEntry(
                wf.id, name, step.compensate_function, error is None, error, state_before
            )
        )
        wf.checkpoint_audit(
            "COMPENSATION_EXECUTED" if error is None else "COMPENSATION_FAILED",
            name,
            {"function": step.compensate_function, **({"error": error} if error else {})},
        )
        wf.events.compensated(name, error is None, error)
    record.completed_steps.clear()
