"""Ruvon's schema migrations (Alembic) as a Python API: upgrade, downgrade, current, check.

**Where the migrations live.** The Alembic environment (``env.py``) and the revisions
(``versions/``) are the top-level ``migrations/`` directory of the source tree. This module finds
it relative to its own file (:data:`MIGRATIONS_DIR`, ``ruvon/db_schema/../../migrations``), so it
works from a clean clone with an editable install (``pip install -e .``) whatever the working
directory, with no ``alembic.ini``. A wheel carries the same directory as ``ruvon/_migrations``
(looked for first); ``RUVON_MIGRATIONS_DIR`` overrides both. ``alembic.ini`` at the repository
root points at the same directory for people who run Alembic by hand::

    alembic -x url=postgresql://user@host/db upgrade head      # or RUVON_DATABASE_URL=...

The functions here are synchronous: each opens its own connection on its own event loop
(``asyncio.run``, or a helper thread when the caller's thread already runs a loop). URLs may be
plain ``postgresql://`` / ``sqlite:///`` URLs; they are mapped to the async drivers (asyncpg,
aiosqlite) that ``migrations/env.py`` uses. Errors name the host and database, never the
password.

Runtime providers do not run Alembic on the hot path: :data:`SCHEMA_REVISION` (the revision this
code is written for, pinned to the migrations' head by ``tests/migrations``), :data:`VERSION_QUERY`,
:data:`~ruvon.db_schema.compatibility.COMPAT_QUERY` and :func:`assert_schema_compatible` are all
a provider needs to refuse a database it cannot use, and importing this module does not import
SQLAlchemy or Alembic. A database at a later revision that declares itself compatible with this
code is accepted (the compatibility window of :mod:`ruvon.db_schema.compatibility`).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ruvon.db_schema.compatibility import (
    COMPAT_QUERY,
    COMPAT_TABLE,
    include_in_comparisons,
    schema_problem,
)
from ruvon.errors import ConfigurationError, DatabaseUnavailable, SchemaOutOfDate

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "MIGRATIONS_DIR",
    "SCHEMA_REVISION",
    "VERSION_QUERY",
    "alembic_config",
    "assert_schema_compatible",
    "async_url",
    "check",
    "compatibility_problem",
    "create_migration_engine",
    "current_revision",
    "describe_url",
    "downgrade",
    "head_revision",
    "known_revisions",
    "make_sqlite_transactional",
    "migration_options",
    "read_schema",
    "resolve_url",
    "upgrade",
    "upgrade_connection",
]

T = TypeVar("T")

#: The revision this Ruvon's code is written for; tests pin it to the head of migrations/.
SCHEMA_REVISION = "0012_partial_indexes"

#: How a provider reads a database's revision (the table is Alembic's).
VERSION_QUERY = "SELECT version_num FROM alembic_version"


def _find_migrations_dir() -> Path:
    override = os.environ.get("RUVON_MIGRATIONS_DIR")
    if override:
        return Path(override)
    package = Path(__file__).resolve().parents[1]
    if (package / "_migrations" / "env.py").is_file():  # a wheel (pyproject's force-include)
        return package / "_migrations"
    return package.parent / "migrations"  # the source tree: a clone, an editable install


#: Alembic's script location: env.py and versions/.
MIGRATIONS_DIR = _find_migrations_dir()

_CONNECT_TIMEOUT_S = 10.0
_ASYNC_SCHEMES = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}


# -- configuration ---------------------------------------------------------------------------


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` for Ruvon's migrations, built without an ini file."""
    from alembic.config import Config

    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise ConfigurationError(
            f"Ruvon's migrations are not at {MIGRATIONS_DIR} (a source tree has them in "
            "migrations/, a wheel in ruvon/_migrations): reinstall Ruvon, or point "
            "RUVON_MIGRATIONS_DIR at them"
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _for_dialect(dialect_name: str) -> Callable[..., bool]:
    """Alembic's ``include_object``: leave out what the metadata builds on another dialect only.

    An index declared ``.ddl_if(dialect="postgresql")`` is not created on SQLite, so a
    comparison there must not report it missing.
    """

    def include(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
        only_on = getattr(getattr(obj, "_ddl_if", None), "dialect", None)
        return reflected or only_on is None or only_on == dialect_name

    return include


def migration_options(dialect_name: str) -> dict[str, Any]:
    """``context.configure`` options shared by env.py and :func:`check`, so both compare alike."""
    sqlite = dialect_name == "sqlite"
    options: dict[str, Any] = {
        "compare_type": True,
        "include_name": include_in_comparisons,  # ruvon_schema_compat is bookkeeping
        "include_object": _for_dialect(dialect_name),
        # SQLite cannot ALTER most things: autogenerate writes move-and-copy batch operations.
        "render_as_batch": sqlite,
    }
    if sqlite:
        # With make_sqlite_transactional, SQLite DDL is transactional: one transaction per run,
        # as on PostgreSQL, instead of Alembic's SQLite default of one per revision.
        options["transactional_ddl"] = True
    return options


def resolve_url(
    x_url: str | None = None,
    config_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """The database to migrate: ``-x url=``, else ``sqlalchemy.url``, else the environment."""
    env = os.environ if env is None else env
    url = x_url or config_url or env.get("RUVON_DATABASE_URL") or env.get("DATABASE_URL")
    if not url:
        raise ConfigurationError(
            "no database URL: pass -x url=..., set sqlalchemy.url, or set RUVON_DATABASE_URL"
        )
    return url


def async_url(url: str) -> str:
    """``url`` with the async driver: postgresql+asyncpg:// or sqlite+aiosqlite://."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _ASYNC_SCHEMES:
        raise ConfigurationError(
            f"cannot migrate a '{scheme or url}' database: migrations run on PostgreSQL "
            "(postgresql://...) and SQLite (sqlite:///FILE)"
        )
    return f"{_ASYNC_SCHEMES[scheme]}://{rest}"


def describe_url(url: str) -> str:
    """Which database ``url`` names, for messages: never includes the password."""
    from sqlalchemy.engine import make_url

    parsed = make_url(async_url(url))
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite database '{parsed.database or ':memory:'}'"
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    user = f" as user '{parsed.username}'" if parsed.username else ""
    return f"PostgreSQL database '{parsed.database or ''}' on {where}{user}"


# -- revisions -------------------------------------------------------------------------------


@cache
def head_revision() -> str:
    """The newest revision in ``migrations/versions``."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise ConfigurationError(f"{MIGRATIONS_DIR / 'versions'} holds no revision")
    return head


@cache
def known_revisions() -> frozenset[str]:
    """Every revision id in ``migrations/versions``."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return frozenset(revision.revision for revision in script.walk_revisions())


def compatibility_problem(
    found: str | None,
    declared: Mapping[str, str] | None = None,
    *,
    database: str = "the database",
) -> str | None:
    """Why this code cannot run against a schema at ``found``; None when it can.

    ``found`` is the database's revision (:data:`VERSION_QUERY`; None without Ruvon's tables),
    ``declared`` its compatibility declarations (:data:`~ruvon.db_schema.compatibility.
    COMPAT_QUERY`, revision -> min_compatible_revision; needed only when ``found`` is not
    :data:`SCHEMA_REVISION`), ``database`` names it in the message (e.g. :func:`describe_url`).
    The rule is :func:`ruvon.db_schema.compatibility.schema_problem`'s.
    """
    if found == SCHEMA_REVISION:
        return None
    return schema_problem(
        found,
        declared or {},
        code_revision=SCHEMA_REVISION,
        code_lineage=known_revisions(),
        database=database,
    )


def assert_schema_compatible(
    found: str | None,
    declared: Mapping[str, str] | None = None,
    *,
    database: str = "the database",
) -> None:
    """Raise :class:`SchemaOutOfDate` (with :func:`compatibility_problem`'s reason) unless this
    code may run against a schema at ``found``."""
    problem = compatibility_problem(found, declared, database=database)
    if problem is not None:
        raise SchemaOutOfDate(problem)


# -- commands --------------------------------------------------------------------------------


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (creating Ruvon's tables if needed)."""
    from alembic import command

    _with_connection(url, lambda config: _migrate(config, url, command.upgrade, revision))


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``base`` drops every table)."""
    from alembic import command

    _with_connection(url, lambda config: _migrate(config, url, command.downgrade, revision))


def current_revision(url: str) -> str | None:
    """The revision the database is at; None when it has no Ruvon schema (or does not exist)."""
    if _missing_sqlite_file(url) is not None:
        return None
    return _with_connection(url, _current)


def read_schema(url: str) -> tuple[str | None, dict[str, str]]:
    """The database's revision and its declarations, for :func:`compatibility_problem`.

    The declarations are read only when the revision is not this code's (they are not needed
    then); a database without a Ruvon schema (or a missing SQLite file) is ``(None, {})``.
    """
    if _missing_sqlite_file(url) is not None:
        return None, {}
    return _with_connection(url, _schema)


def check(url: str) -> list[str]:
    """Differences between the live database and ``ruvon.db_schema``; empty when none.

    A database that is not at the migrations' head is reported first, then every difference
    Alembic's autogenerate comparison finds (with the same options as ``alembic check``).
    """
    missing = _missing_sqlite_file(url)
    if missing is not None:
        return [f"database file {missing} does not exist (run `ruvon db upgrade` to create it)"]
    return _with_connection(url, _compare)


def upgrade_connection(connection: Connection, revision: str = "head") -> None:
    """Run the migrations on an open (synchronous) SQLAlchemy connection; the caller commits."""
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


# -- running Alembic on a connection ---------------------------------------------------------


def _migrate(config: Config, url: str, step: Callable[[Config, str], None], revision: str) -> None:
    """Run ``alembic upgrade|downgrade`` with Ruvon's errors instead of Alembic's."""
    from alembic import command
    from alembic.util import CommandError

    found = _current(config)
    if found is not None and found not in known_revisions():
        where = describe_url(url)
        assert_schema_compatible(found, _declarations(config), database=where)
        if step is command.upgrade and revision == "head":
            return  # newer than this code's head and compatible with it: nothing to add
        raise SchemaOutOfDate(
            f"cannot migrate {where} to '{revision}': it is at revision {found}, which a newer "
            "Ruvon wrote and this one has no migration for (it runs against it unchanged): "
            "migrate it with the newer Ruvon"
        )
    try:
        step(config, revision)
    except CommandError as exc:  # e.g. a revision that does not exist
        known = ", ".join(sorted(known_revisions()))
        raise ConfigurationError(
            f"cannot migrate {describe_url(url)} to '{revision}': {exc} (known revisions: "
            f"{known}; also head, base, and relative ones like -1)"
        ) from None


def _current(config: Config) -> str | None:
    from alembic.runtime.migration import MigrationContext

    connection: Connection = config.attributes["connection"]
    return MigrationContext.configure(connection).get_current_revision()


def _declarations(config: Config) -> dict[str, str]:
    """The database's ``ruvon_schema_compat`` rows; empty when a migration never wrote one."""
    from sqlalchemy import inspect

    connection: Connection = config.attributes["connection"]
    if not inspect(connection).has_table(COMPAT_TABLE):
        return {}
    rows = connection.exec_driver_sql(COMPAT_QUERY).all()
    return {str(revision): str(compatible) for revision, compatible in rows}


def _schema(config: Config) -> tuple[str | None, dict[str, str]]:
    found = _current(config)
    return found, ({} if found in (None, SCHEMA_REVISION) else _declarations(config))


def _compare(config: Config) -> list[str]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from ruvon.db_schema import metadata
    from ruvon.db_schema.drift import describe_diff

    connection: Connection = config.attributes["connection"]
    options = migration_options(connection.dialect.name)
    context = MigrationContext.configure(connection, opts=options)
    drift: list[str] = []
    found, head = context.get_current_revision(), head_revision()
    if found != head:
        at = f"revision {found}" if found else "no revision (no Ruvon schema)"
        drift.append(f"database is at {at}, migrations head is {head}: run `ruvon db upgrade`")
    dialect = connection.dialect
    drift += [describe_diff(diff, dialect) for diff in compare_metadata(context, metadata)]
    return drift


def _with_connection(url: str, action: Callable[[Config], T]) -> T:
    """Open ``url``, run ``action(config)`` with the connection in ``config.attributes``, commit."""

    async def run() -> T:
        config = alembic_config()

        def on_connection(sync_connection: Connection) -> T:
            config.attributes["connection"] = sync_connection
            return action(config)

        engine = create_migration_engine(url)
        try:
            connection = engine.connect()
            try:
                await connection.start()
            except Exception as exc:
                raise _unavailable(url, exc) from None
            try:
                result = await connection.run_sync(on_connection)
                await connection.commit()
                return result
            finally:
                await connection.close()
        finally:
            await engine.dispose()

    return _run_blocking(run)


def create_migration_engine(url: str) -> AsyncEngine:
    """An async engine for migrating ``url``: no pool, bounded connect, transactional DDL."""
    from sqlalchemy import pool
    from sqlalchemy.ext.asyncio import create_async_engine

    driver_url = async_url(url)
    if driver_url.startswith("sqlite"):
        engine = create_async_engine(driver_url, poolclass=pool.NullPool)
        make_sqlite_transactional(engine.sync_engine)
        return engine
    return create_async_engine(
        driver_url, poolclass=pool.NullPool, connect_args={"timeout": _CONNECT_TIMEOUT_S}
    )


def make_sqlite_transactional(engine: Engine) -> None:
    """Make a SQLite engine run each migration run in one real transaction.

    Python's sqlite3 does not BEGIN before DDL, so each CREATE / ALTER would commit on its own
    and a failed migration would leave a half-migrated file. SQLAlchemy's documented recipe:
    take BEGIN over from the driver. Foreign keys stay off while migrating (SQLite's default,
    stated explicitly): batch mode recreates tables, and dropping a parent table with
    ``foreign_keys=ON`` would cascade-delete its children's rows.
    """
    from sqlalchemy import event

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = OFF")

    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)


def _unavailable(url: str, exc: BaseException) -> DatabaseUnavailable:
    """A one-line connection error naming host and database, with any password scrubbed."""
    from sqlalchemy.engine import make_url

    cause: BaseException = getattr(exc, "orig", None) or exc
    reason = " ".join(str(cause).split()) or type(cause).__name__
    password = make_url(async_url(url)).password
    if password:
        reason = reason.replace(str(password), "***")
    if url.startswith("sqlite"):
        hint = "check that the directory exists and is writable"
    else:
        hint = "check the host, port, user, password and database name in --db / RUVON_DATABASE_URL"
    return DatabaseUnavailable(f"cannot connect to {describe_url(url)}: {reason} ({hint})")


def _missing_sqlite_file(url: str) -> Path | None:
    """The file a ``sqlite:///FILE`` URL names when it does not exist (so as not to create it)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(async_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def _run_blocking(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    # asyncio.run refuses to nest: run the coroutine on a private loop in a helper thread.
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = asyncio.run(factory())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="ruvon-migrations")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    result: T = outcome["result"]
    return result
