"""The list query with only the filters given: one statement per combination, each indexable.

A prefix filter is a byte-order range (``~>=~`` / ``~<~``, which the ``text_pattern_ops``
indexes of migration 0006 serve with a bound parameter) plus ``starts_with`` for the exact
match; a ``LIKE $n`` cannot use an index in a prepared statement's generic plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ruvon.implementations.persistence.postgres.rows import utc
from ruvon.implementations.persistence.queries import load_queries, prefix_upper_bound

__all__ = ["ListFilters", "list_statement"]

_Q = load_queries(Path(__file__).with_name("sql") / "workflows.sql")


@dataclass(frozen=True)
class ListFilters:
    """What ``list_workflows`` was asked for (``None``: not filtered on)."""

    status: str | None = None
    workflow_type: str | None = None
    parent_execution_id: str | None = None
    created_since: datetime | None = None
    created_until: datetime | None = None
    workflow_version: str | None = None
    id_prefix: str | None = None
    idempotency_key_prefix: str | None = None
    after: tuple[datetime, str] | None = None
    limit: int = 100


@dataclass
class _Where:
    """Conditions and their arguments, numbered after the limit ($1)."""

    args: list[Any] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args) + 1}"

    def equal(self, column: str, value: Any) -> None:
        if value is not None:
            self.conditions.append(f"{column} = {self.arg(value)}")

    def prefix(self, column: str, prefix: str | None) -> None:
        if prefix is None:
            return
        if not prefix:  # every text starts with "": only that there is one (a key may be NULL)
            self.conditions.append(f"{column} IS NOT NULL")
            return
        low = self.arg(prefix)
        self.conditions.append(f"{column} ~>=~ {low} AND starts_with({column}, {low})")
        bound = prefix_upper_bound(prefix)
        if bound is not None:
            self.conditions.append(f"{column} ~<~ {self.arg(bound)}")


def list_statement(filters: ListFilters) -> tuple[str, list[Any]]:
    """The SQL and its arguments for ``filters``."""
    where = _Where()
    where.equal("status", filters.status)
    where.equal("workflow_type", filters.workflow_type)
    where.equal("parent_execution_id", filters.parent_execution_id)
    where.equal("workflow_version", filters.workflow_version)
    if filters.created_since is not None:
        where.conditions.append(f"created_at >= {where.arg(utc(filters.created_since))}")
    if filters.created_until is not None:
        where.conditions.append(f"created_at < {where.arg(utc(filters.created_until))}")
    if filters.after is not None:
        at, workflow_id = filters.after
        where.conditions.append(
            f"(created_at, id) < ({where.arg(utc(at))}, {where.arg(workflow_id)}::text)"
        )
    where.prefix("id", filters.id_prefix)
    where.prefix("idempotency_key", filters.idempotency_key_prefix)
    clause = "WHERE " + "\n  AND ".join(where.conditions) if where.conditions else ""
    return _Q["list_workflows"].replace("{where}", clause), [max(filters.limit, 0), *where.args]
