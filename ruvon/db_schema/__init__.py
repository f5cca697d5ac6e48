"""The database schema: SQLAlchemy Core tables, the single source of truth for every backend.

``metadata`` is imported on first access, so that :mod:`ruvon.db_schema.migrations` (which
runtime providers import for the expected revision) does not pull SQLAlchemy into every process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ruvon.db_schema.database import metadata

__all__ = ["metadata"]


def __getattr__(name: str) -> Any:
    if name == "metadata":
        from ruvon.db_schema.database import metadata

        return metadata
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
