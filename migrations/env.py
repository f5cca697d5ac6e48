"""Alembic environment for Ruvon: PostgreSQL through asyncpg, SQLite through aiosqlite.

The database is ``-x url=...``, else ``sqlalchemy.url`` of the Alembic config, else
``RUVON_DATABASE_URL`` / ``DATABASE_URL``; plain ``postgresql://`` and ``sqlite:///`` URLs get the
async driver. ``ruvon.db_schema.migrations`` runs this file with an open connection in
``config.attributes["connection"]`` instead (its API and ``ruvon db``), so both paths configure
the migration context identically (:func:`ruvon.db_schema.migrations.migration_options`).
Each step also records its revision's ``min_compatible_revision`` in ``ruvon_schema_compat``
(:func:`ruvon.db_schema.compatibility.record_compatibility`), which is how code older than the
revision learns whether it may still run against it.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from ruvon.db_schema import metadata
from ruvon.db_schema.compatibility import record_compatibility
from ruvon.db_schema.migrations import (
    async_url,
    create_migration_engine,
    migration_options,
    resolve_url,
)

config = context.config
target_metadata = metadata

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    """The URL to migrate, by precedence: -x url, sqlalchemy.url, the environment."""
    return resolve_url(
        context.get_x_argument(as_dictionary=True).get("url"),
        config.get_main_option("sqlalchemy.url"),
    )


def run_migrations(connection: Connection) -> None:
    """Run the pending revisions on ``connection`` in one transaction."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        on_version_apply=record_compatibility,
        **migration_options(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Write the SQL to stdout (``alembic upgrade head --sql``) instead of running it."""
    url = async_url(database_url())
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        on_version_apply=record_compatibility,
        **migration_options("sqlite" if url.startswith("sqlite") else "postgresql"),
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations(url: str) -> None:
    """Connect with the async driver and run the migrations on the connection's sync facade."""
    engine = create_migration_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Use the caller's connection when there is one, else open the configured database."""
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
    else:
        asyncio.run(run_async_migrations(database_url()))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
