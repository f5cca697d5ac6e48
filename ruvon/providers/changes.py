"""The change-feed seam: which workflows changed after a position, oldest change first.

A store that implements it (SQLite, PostgreSQL, memory) lets a reader follow every commit by
asking again from the last position it saw; ``ruvon server``'s live streams poll it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from ruvon.records import WorkflowRecord

__all__ = ["ChangePosition", "WorkflowChanges"]


@dataclass(frozen=True, slots=True, order=True)
class ChangePosition:
    """A place in the order of changes: ``(updated_at, workflow id)``."""

    updated_at: datetime
    workflow_id: str = ""

    @classmethod
    def of(cls, record: WorkflowRecord) -> ChangePosition:
        """The position of a record's last commit."""
        return cls(record.updated_at, record.id)


@runtime_checkable
class WorkflowChanges(Protocol):
    """Optional capability of a persistence provider: list workflows by their last change."""

    async def list_changed_workflows(
        self, after: ChangePosition, limit: int = 100
    ) -> list[WorkflowRecord]:
        """Workflows whose ``(updated_at, id)`` sorts after ``after``, oldest change first.

        ``updated_at`` is written by the committing process before the commit, so a commit can
        become visible with a position older than one already read: a reader that must see
        every commit asks again from a little before the last position it saw.
        """
        ...
