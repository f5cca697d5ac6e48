"""What a transition may change, copied before it and put back if applying or saving fails.

The engine applies an outcome to its in-memory workflow, then saves. If either step fails, the
object must again equal what is stored (a half-applied transition in memory would be saved by
the next call). Copying only what a transition can touch is far cheaper than a deep copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ruvon.engine import WorkflowEngine

__all__ = ["restore_snapshot", "take_snapshot"]


def take_snapshot(engine: WorkflowEngine) -> tuple[Any, ...]:
    """The fields of ``engine``'s workflow a transition can change, copied."""
    record = engine._record
    return (
        engine._states.value,
        record.current_step,
        record.status,
        list(record.completed_steps),
        record.run_at,
        record.blocked_on_child_id,
        _copy_two_levels(record.runtime),
        record.completed_at,
        record.error,
        list(engine._pending_audit),
        engine.outbox.snapshot() if engine.outbox is not None else None,
    )


def restore_snapshot(engine: WorkflowEngine, snapshot: tuple[Any, ...]) -> None:
    """Put ``engine``'s workflow back to ``snapshot``."""
    record = engine._record
    (
        engine._states.value,
        record.current_step,
        record.status,
        record.completed_steps,
        record.run_at,
        record.blocked_on_child_id,
        record.runtime,
        record.completed_at,
        record.error,
        engine._pending_audit,
        outbox,
    ) = snapshot
    if engine.outbox is not None and outbox is not None:
        engine.outbox.restore(outbox)


def _copy_two_levels(data: dict[str, Any]) -> dict[str, Any]:
    """Copy of the runtime bookkeeping deep enough for every engine write (a cheap deepcopy)."""
    return {
        key: dict(value)
        if isinstance(value, dict)
        else list(value)
        if isinstance(value, list)
        else value
        for key, value in data.items()
    }
