"""Saga rollback: run the compensations of completed steps in reverse order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ruvon.definitions.imports import cached_step_function
from ruvon.engine.invoke import check_result
from ruvon.providers.execution import StepCall
from ruvon.records import CompensationEntry

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.runtime import StepRuntime


def _find_step(rt: StepRuntime, name: str) -> StepDefinition | None:
    for step in rt.definition.steps:
        if step.name == name:
            return step
        for body in step.loop_body:
            if body.name == name:
                return body
    return None


async def compensate(rt: StepRuntime) -> None:
    """Compensate every completed step, newest first.

    A compensation that fails is recorded and the rollback goes on: stopping half-way would leave
    the earlier steps un-compensated, which is worse than reporting one failure. Each outcome is
    written with the save that records the rollback (fenced like it): a rollback whose process
    dies before that save leaves no rows, and its next attempt writes them once.
    """
    record = rt.record
    for name in reversed(record.completed_steps):
        step = _find_step(rt, name)
        if step is None or step.compensate_function is None:
            continue
        state_before = rt.state_dict()
        error: str | None = None
        try:
            fn = cached_step_function(step.compensate_function, step=name)
            call = StepCall(name, fn, rt.state, rt.make_context(step), {}, step.timeout)
            result = check_result(await rt.execution.execute(call), step=name, function=fn)
            rt.apply_result(result, step, soft=True)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        rt.record_compensation(
            CompensationEntry(
                rt.id, name, step.compensate_function, error is None, error, state_before
            )
        )
        rt.audit(
            "COMPENSATION_EXECUTED" if error is None else "COMPENSATION_FAILED",
            name,
            {"function": step.compensate_function, **({"error": error} if error else {})},
        )
        rt.events.compensated(name, error is None, error)
    record.completed_steps.clear()
