"""Input given to ``next_step()`` for a step that runs later, elsewhere: kept with the workflow.

An ASYNC step's input, and a person's input to a human step on a cluster, are saved in
``runtime["pending_input"]`` with the save that hands the step on, so whoever runs the step (a
worker claiming its run, a crash-recovered run, a retry) calls the function with it; the save
recording the step's success drops it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ruvon.definitions.schema import StepDefinition
    from ruvon.engine.runtime import StepRuntime

__all__ = ["drop_input", "keep_input", "stored_input"]


def keep_input(rt: StepRuntime, step: StepDefinition, user_input: dict[str, Any] | None) -> None:
    """Keep ``user_input`` (if any) for the run of ``step`` (replacing an older one)."""
    if user_input is not None:
        rt.record.runtime.setdefault("pending_input", {})[step.name] = user_input


def stored_input(rt: StepRuntime, step: StepDefinition) -> dict[str, Any] | None:
    """The input kept for ``step`` (None if there is none)."""
    pending = rt.record.runtime.get("pending_input")
    return pending.get(step.name) if isinstance(pending, dict) else None


def drop_input(rt: StepRuntime, step: StepDefinition) -> None:
    """The step succeeded: drop its kept input (with the save that records the success)."""
    runtime = rt.record.runtime
    pending = runtime.get("pending_input")
    if isinstance(pending, dict) and pending.pop(step.name, None) is not None and not pending:
        del runtime["pending_input"]
