"""What a transition may change, copied before it and put back if applying or saving fails.

The engine applies an outcome to its in-memory workflow, then saves. If either step fails, the
object must again equal what is stored (a half-applied transition in memory would be saved by
the next call). Copying only what a transition can touch is far cheaper than a deep copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from ruvon.models import WorkflowStatus
from ruvon.records import AuditEntry, WorkflowRecord, WorkflowRuntime

if TYPE_CHECKING:
    from ruvon.engine.distribution import Distribution
    from ruvon.engine.outbox import OutboxSnapshot
    from ruvon.engine.state import StateKeeper

__all__ = ["TransitionSnapshot"]


@dataclass(slots=True)
class TransitionSnapshot:
    """The fields of one workflow object a transition can change, copied.

    Not frozen: one is taken per transition, and frozen dataclasses cost more to construct.
    """

    state: Any
    current_step: int
    status: WorkflowStatus
    completed_steps: list[str]
    run_at: datetime | None
    blocked_on_child_id: str | None
    runtime: dict[str, Any]
    completed_at: datetime | None
    error: str | None
    pending_audit: list[AuditEntry]
    outbox: OutboxSnapshot | None

    @classmethod
    def capture(
        cls,
        record: WorkflowRecord,
        states: StateKeeper,
        pending_audit: list[AuditEntry],
        distribution: Distribution | None,
    ) -> TransitionSnapshot:
        return cls(
            states.value,
            record.current_step,
            record.status,
            list(record.completed_steps),
            record.run_at,
            record.blocked_on_child_id,
            _copy_two_levels(record.runtime),
            record.completed_at,
            record.error,
            list(pending_audit),
            distribution.snapshot() if distribution is not None else None,
        )

    def restore(
        self, record: WorkflowRecord, states: StateKeeper, distribution: Distribution | None
    ) -> list[AuditEntry]:
        """Put the object back; returns the pending audit rows as they were."""
        states.value = self.state
        record.current_step = self.current_step
        record.status = self.status
        record.completed_steps = list(self.completed_steps)
        record.run_at = self.run_at
        record.blocked_on_child_id = self.blocked_on_child_id
        record.runtime = cast("WorkflowRuntime", _copy_two_levels(self.runtime))
        record.completed_at = self.completed_at
        record.error = self.error
        if distribution is not None and self.outbox is not None:
            distribution.restore(self.outbox)
        return list(self.pending_audit)


def _copy_two_levels(data: WorkflowRuntime | dict[str, Any]) -> dict[str, Any]:
    """Copy of the runtime bookkeeping deep enough for every engine write (a cheap deepcopy)."""
    return {
        key: dict(value)
        if isinstance(value, dict)
        else list(value)
        if isinstance(value, list)
        else value
        for key, value in data.items()
    }
