"""Bringing a SQLite database to the migrations' head, cheaply enough to do on every open.

The schema is the one the Alembic migrations (``migrations/``) build, as on PostgreSQL: there is
no second DDL. Running them costs ~0.3 s (importing SQLAlchemy and Alembic, then each revision),
too slow for the hundreds of databases a test run opens, so once per process they run into an
in-memory database and the DDL they produced is kept (:func:`head_schema`). A new database gets
those statements replayed in one ``BEGIN IMMEDIATE`` transaction, which costs what the old
hand-written DDL did. (``sqlite3.Connection.backup()`` from that template would copy pages as
fast, but cannot run inside a transaction: two processes opening the same new file could both
copy, the second wiping rows the first had already written.)

Opening a database that is at the head costs one query and imports neither SQLAlchemy nor
Alembic. A database at an older revision is upgraded by the migrations themselves (batch mode),
by the caller. A database at a newer revision is used as it is when that revision declares
itself compatible with this code (``ruvon_schema_compat``, see
:mod:`ruvon.db_schema.compatibility`), and raises ``SchemaOutOfDate`` otherwise.
Files written before Ruvon had migrations (its tables, no ``alembic_version``) are adopted in the
same transaction: a table with exactly the head's columns but older declarations is rebuilt
with the head's DDL (rows kept), missing tables and indexes are created, the file is stamped.
Tables that are not Ruvon's are left alone.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from ruvon.db_schema import compatibility, migrations
from ruvon.errors import ConfigurationError, SchemaOutOfDate
from ruvon.implementations.persistence.queries import load_queries

__all__ = ["HeadSchema", "head_schema", "prepare_schema", "read_declarations", "read_revision"]

_Q = load_queries(Path(__file__).with_name("sql") / "workflows.sql")
_build_lock = threading.Lock()
# Nullable columns later revisions added to tables a pre-migration file already has: such a
# file lacks them, and its rebuilt table has them NULL.
_ADDED_SINCE_LEGACY = {"workflow_executions": frozenset({"deadline_at"})}
_head: HeadSchema | None = None


@dataclass(frozen=True)
class SchemaObject:
    """One table or index of the head schema and the statement that creates it."""

    type: str
    name: str
    table: str
    sql: str


@dataclass(frozen=True)
class HeadSchema:
    """The schema the migrations build on SQLite, captured from an in-memory database."""

    revision: str
    objects: tuple[SchemaObject, ...]
    columns: dict[str, tuple[str, ...]]
    declarations: tuple[tuple[str, str], ...]


def head_schema() -> HeadSchema:
    """Run the migrations into an in-memory database (once per process) and capture its DDL."""
    global _head
    with _build_lock:
        if _head is None:
            _head = _build_head_schema()
        return _head


def _build_head_schema() -> HeadSchema:
    from sqlalchemy import create_engine, pool

    template = sqlite3.connect(":memory:", check_same_thread=False)
    engine = create_engine("sqlite://", creator=lambda: template, poolclass=pool.StaticPool)
    try:
        migrations.make_sqlite_transactional(engine)
        with engine.connect() as connection:
            migrations.upgrade_connection(connection)
        objects = tuple(SchemaObject(*row) for row in template.execute(_Q["schema_objects"]))
        tables = [item.name for item in objects if item.type == "table"]
        columns = {table: _columns(template, table) for table in tables}
        revision = read_revision(template)
        declarations = tuple(read_declarations(template).items())
    finally:
        engine.dispose()
        template.close()
    if revision != migrations.SCHEMA_REVISION:
        raise ConfigurationError(
            f"the migrations' head is {revision} but ruvon.db_schema.migrations.SCHEMA_REVISION "
            f"is {migrations.SCHEMA_REVISION}: set SCHEMA_REVISION to the new revision"
        )
    return HeadSchema(revision, objects, columns, declarations)


def _columns(conn: sqlite3.Connection, table: str) -> tuple[str, ...]:
    return tuple(name for (name,) in conn.execute(_Q["table_columns"], (table,)))


def read_revision(conn: sqlite3.Connection) -> str | None:
    """The database's Alembic revision; None without one (no table, or an empty one)."""
    try:
        row = conn.execute(migrations.VERSION_QUERY).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return None if row is None else str(row[0])


def read_declarations(conn: sqlite3.Connection) -> dict[str, str]:
    """The database's ``ruvon_schema_compat`` rows; empty without the table."""
    try:
        rows = conn.execute(compatibility.COMPAT_QUERY).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    return {str(revision): str(compatible) for revision, compatible in rows}


def prepare_schema(conn: sqlite3.Connection, path: str) -> str | None:
    """Make the schema of ``conn`` usable; return the revision to upgrade from, if any.

    None: the database is at the head (now), or at a newer revision compatible with this code.
    A revision: an older one the migrations must upgrade (the caller runs them, on a connection
    of their own). Raises ``SchemaOutOfDate`` for a newer revision this code cannot run against
    or tables it cannot adopt.
    """
    found = read_revision(conn)
    if found is None:
        found = _install_head(conn, path)
    if found == migrations.SCHEMA_REVISION:
        return None
    if found not in migrations.known_revisions():
        where = f"SQLite database '{path}'"
        migrations.assert_schema_compatible(found, read_declarations(conn), database=where)
        return None
    return found


def _install_head(conn: sqlite3.Connection, path: str) -> str:
    """Create what the head schema has and the database lacks, and stamp it, in one transaction.

    Returns the revision the database is at afterwards (another connection may have installed
    the schema while this one waited for the write lock). Foreign keys are off meanwhile:
    rebuilding a parent table must not cascade-delete its children's rows.
    """
    head = head_schema()
    (foreign_keys,) = conn.execute(_Q["foreign_keys"]).fetchone()
    conn.execute(_Q["set_foreign_keys"].format(enabled=0))
    try:
        conn.execute(_Q["begin_immediate"])
        try:
            found = read_revision(conn)
            if found is None:
                _create_head(conn, head, path)
                conn.execute(_Q["stamp_revision"], (head.revision,))
                conn.executemany(_Q["record_compatibility"], head.declarations)
                found = head.revision
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    finally:
        conn.execute(_Q["set_foreign_keys"].format(enabled=int(foreign_keys)))
    return found


def _create_head(conn: sqlite3.Connection, head: HeadSchema, path: str) -> None:
    """Tables first (created, or rebuilt when their DDL differs), then the missing indexes."""
    existing = {row[1]: row[3] for row in conn.execute(_Q["schema_objects"])}
    for item in head.objects:
        if item.type != "table":
            continue
        if item.name not in existing:
            conn.execute(item.sql)
        elif existing[item.name] != item.sql:
            _check_columns(conn, head, item.name, path)
            _rebuild(conn, head, item)
    present = {row[1] for row in conn.execute(_Q["schema_objects"])}
    for item in head.objects:
        if item.type == "index" and item.name not in present:
            conn.execute(item.sql)


def _rebuild(conn: sqlite3.Connection, head: HeadSchema, table: SchemaObject) -> None:
    """Re-create ``table`` with the head's DDL and keep its rows (new table, copy, drop, rename).

    Only files written before Ruvon had migrations get here: same columns, older declarations
    (INTEGER rather than BOOLEAN, unnamed constraints).
    """
    temporary = f"_ruvon_rebuild_{table.name}"
    prefix = f"CREATE TABLE {table.name} ("
    if not table.sql.startswith(prefix):
        raise ConfigurationError(f"unexpected DDL for {table.name} in the head schema: {table.sql}")
    conn.execute(f'CREATE TABLE "{temporary}" (' + table.sql[len(prefix) :])
    kept = set(_columns(conn, table.name))
    columns = ", ".join(f'"{name}"' for name in head.columns[table.name] if name in kept)
    conn.execute(_Q["copy_table_rows"].format(target=temporary, source=table.name, columns=columns))
    conn.execute(_Q["drop_table"].format(table=table.name))
    conn.execute(_Q["rename_table"].format(table=temporary, new_name=table.name))


def _check_columns(conn: sqlite3.Connection, head: HeadSchema, table: str, path: str) -> None:
    """A Ruvon table already in the file must have exactly the head schema's columns."""
    found = set(_columns(conn, table))
    wanted = set(head.columns[table])
    if found == wanted or found == wanted - _ADDED_SINCE_LEGACY.get(table, frozenset()):
        return
    details = []
    if wanted - found:
        details.append(f"missing {', '.join(sorted(wanted - found))}")
    if found - wanted:
        details.append(f"unexpected {', '.join(sorted(found - wanted))}")
    raise SchemaOutOfDate(
        f"SQLite database '{path}' has a table {table} ({'; '.join(details)}) but no schema "
        f"revision, so Ruvon cannot migrate it to {head.revision}: point db_path at a new file, "
        "or move that table out of the way"
    )
