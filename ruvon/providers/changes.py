"""The change-feed seam: which workflows changed after a position, oldest change first.

A store that implements it (SQLite, PostgreSQL, memory) lets a reader follow every commit by
asking again from the last position it saw; ``ruvon server``'s live streams poll it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from ruvon.models import WorkflowStatus
from ruvon.records import WorkflowRecord

__all__ = ["ChangePosition", "WorkflowChange", "WorkflowChanges"]


@dataclass(frozen=True, slots=True)
class WorkflowChange:
    """A workflow as its last commit left it, as a listing shows it: no state, no definition
    (a change feed reads many of these, often the same ones again)."""

    id: str
    workflow_type: str
    workflow_version: str | None
    status: WorkflowStatus
    current_step_name: str | None
    parent_execution_id: str | None
    error: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, record: WorkflowRecord) -> WorkflowChange:
        """The change a full record shows."""
        return cls(
            id=record.id,
            workflow_type=record.workflow_type,
            workflow_version=record.workflow_version,
            status=record.status,
            current_step_name=record.current_step_name,
            parent_execution_id=record.parent_execution_id,
            error=record.error,
            version=record.version,
            created_at=record.created_at,
            updated_at=record.updated_at,
            completed_at=record.completed_at,
        )


@dataclass(frozen=True, slots=True, order=True)
class ChangePosition:
    """A place in the order of changes: ``(updated_at, workflow id)``."""

    updated_at: datetime
    workflow_id: str = ""

    @classmethod
    def of(cls, record: WorkflowChange | WorkflowRecord) -> ChangePosition:
        """The position of a workflow's last commit."""
        return cls(record.updated_at, record.id)


@runtime_checkable
class WorkflowChanges(Protocol):
    """Optional capability of a persistence provider: list workflows by their last change."""

    async def list_changed_workflows(
        self, after: ChangePosition, limit: int = 100
    ) -> list[WorkflowChange]:
        """Workflows whose ``(updated_at, id)`` sorts after ``after``, oldest change first.

        ``updated_at`` is written by the committing process before the commit, so a commit can
        become visible with a position older than one already read: a reader that must see
        every commit asks again from a little before the last position it saw.
        """
        ...
