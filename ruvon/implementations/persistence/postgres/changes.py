"""The change feed on PostgreSQL (``sql/changes.sql``): workflows by their last commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ruvon.implementations.persistence.postgres.rows import utc
from ruvon.implementations.persistence.queries import load_queries
from ruvon.models import WorkflowStatus
from ruvon.providers.changes import ChangePosition, WorkflowChange

__all__ = ["PostgresChanges"]

_Q = load_queries(Path(__file__).with_name("sql") / "changes.sql")


class PostgresChanges:
    """:class:`~ruvon.providers.changes.WorkflowChanges` of the PostgreSQL provider."""

    # Provided by PostgresPool (pool.py), the provider's other base.
    _query: Callable[[str, str, str, tuple[Any, ...]], Awaitable[Any]]

    async def list_changed_workflows(
        self, after: ChangePosition, limit: int = 100
    ) -> list[WorkflowChange]:
        """Workflows whose ``(updated_at, id)`` sorts after ``after``, oldest change first."""
        args = (utc(after.updated_at), after.workflow_id, max(limit, 0))
        rows = await self._query(
            "list changed workflows", "fetch", _Q["list_changed_workflows"], args
        )
        return [_change(tuple(row)) for row in rows]


def _change(row: tuple[Any, ...]) -> WorkflowChange:
    workflow_id, workflow_type, version_name, status, step, parent, error, *rest = row
    version, created_at, updated_at, completed_at = rest
    return WorkflowChange(
        workflow_id,
        workflow_type,
        version_name,
        WorkflowStatus(status),
        str(step) if step is not None else None,
        parent,
        error,
        version,
        created_at,
        updated_at,
        completed_at,
    )
