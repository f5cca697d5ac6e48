"""Alembic's schema comparison (``compare_metadata``) as one readable line per difference."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Dialect

__all__ = ["describe_diff"]


def _where(kind: str) -> str:
    """add_* means the schema has it and the database lacks it; remove_* the other way round."""
    if kind.startswith("add"):
        return "missing from the database"
    return "in the database but not in ruvon.db_schema"


def describe_diff(diff: Any, dialect: Dialect | None = None) -> str:
    """One line for one entry of Alembic's ``compare_metadata`` (database vs. schema)."""
    if isinstance(diff, list):  # Alembic groups the modify_* changes of one column
        return "; ".join(describe_diff(part, dialect) for part in diff)
    kind, *args = diff
    if kind in ("add_table", "remove_table"):
        return f"table {args[0].name} is {_where(kind)}"
    if kind in ("add_column", "remove_column"):
        _schema, table, column = args
        return f"column {table}.{column.name} is {_where(kind)}"
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint"):
        item = args[0]
        what = "index" if kind.endswith("index") else "constraint"
        columns = ", ".join(column.name for column in item.columns)
        return f"{what} {item.name} on {item.table.name} ({columns}) is {_where(kind)}"
    if kind in ("add_fk", "remove_fk"):
        fk = args[0]
        columns = ", ".join(column.name for column in fk.columns)
        target = fk.referred_table.name
        return f"foreign key {fk.name} on {fk.table.name} ({columns}) -> {target} is {_where(kind)}"
    if kind.startswith("modify_"):
        _schema, table, column, _existing, in_database, in_schema = args
        return (
            f"column {table}.{column} {kind.removeprefix('modify_')}: "
            f"{_render(in_database, dialect)} in the database, "
            f"{_render(in_schema, dialect)} in ruvon.db_schema"
        )
    return f"{kind}: {args}"


def _render(value: Any, dialect: Dialect | None) -> str:
    """A type as the dialect spells it, a nullability as NULL / NOT NULL, anything else as is."""
    if value is True or value is False:
        return "NULL" if value else "NOT NULL"
    compile_type = getattr(value, "compile", None)
    if compile_type is None:
        return repr(value)
    try:
        return str(compile_type(dialect=dialect))
    except Exception:  # a type this dialect cannot render: its class name will do
        return type(value).__name__
