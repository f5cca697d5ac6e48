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


def _find_step(rt: StepRuntime, name: str) -> tuple[StepDefinition | None, StepDefinition | None]:
    """The step called ``name`` and, for a LOOP body part, the LOOP step holding it."""
    for step in rt.definition.steps:
        if step.name == name:
            return step, None
        for body in step.loop_body:
            if body.name == name:
                return body, step
    return None, None


def compensation_key(rt: StepRuntime, position: int, loop: StepDefinition | None) -> str:
    """``<the forward run's idempotency key>:compensate`` for ``completed_steps[position]``.

    The forward key is rebuilt the way the forward run built it (``{id}:{step}:{run}``, or
    ``{id}:{loop}:{run}:{index}:{part}`` inside a LOOP), so an undo can find the effect it
    undoes and is never taken for that effect by a service deduplicating on the key. Entries
    stay in ``completed_steps`` until the rollback is saved, so a rollback run again after a
    crash hands every compensation the same key. A step completed more than once gets one key
    per completion: the newest is its current run, each earlier one the run before.
    """
    completed = rt.record.completed_steps
    name = completed[position]
    if loop is None:
        later = completed[position + 1 :].count(name)
        return f"{rt.id}:{name}:{rt.run_number(name) - later}:compensate"
    index = completed[:position].count(name)
    run = rt.run_number(loop.name)
    return f"{rt.id}:{loop.name}:{run}:{index}:{name}:compensate"


async def compensate(rt: StepRuntime) -> None:
    """Compensate every completed step, newest first.

    A compensation that fails is recorded and the rollback goes on: stopping half-way would leave
    the earlier steps un-compensated, which is worse than reporting one failure. Each outcome is
    written with the save that records the rollback (fenced like it): a rollback whose process
    dies before that save leaves no rows, and its next attempt writes them once.
    """
    record = rt.record
    for position in reversed(range(len(record.completed_steps))):
        name = record.completed_steps[position]
        step, loop = _find_step(rt, name)
        if step is None or step.compensate_function is None:
            continue
        state_before = rt.state_dict()
        error: str | None = None
        try:
            fn = cached_step_function(step.compensate_function, step=name)
            key = compensation_key(rt, position, loop)
            context = rt.make_context(step, idempotency_key=key)
            call = StepCall(name, fn, rt.state, context, {}, step.timeout)
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
