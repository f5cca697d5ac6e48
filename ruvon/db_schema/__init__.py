"""The database schema: SQLAlchemy Core tables, the single source of truth for every backend."""

from __future__ import annotations

from ruvon.db_schema.database import metadata

__all__ = ["metadata"]
