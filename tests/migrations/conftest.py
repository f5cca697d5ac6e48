"""Databases for the migration tests: a fresh SQLite file, or a fresh PostgreSQL database.

PostgreSQL databases are created (and dropped with FORCE afterwards) on the server named by
``RUVON_TEST_POSTGRES_URL`` through its maintenance database. An unreachable server fails the
test with the reason: these tests are never skipped (``scripts/test`` starts the services).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

SERVER_URL = os.environ.get(
    "RUVON_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DATABASE_PREFIX = "ruvon_mig_"


async def _admin(statement: str) -> None:
    try:
        conn = await asyncpg.connect(SERVER_URL, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
    else:
        reason = None
    if reason is not None:
        server = make_url(SERVER_URL)
        pytest.fail(
            f"PostgreSQL test server {server.host}:{server.port or 5432} is unreachable "
            f"({reason}); start it with scripts/services or point RUVON_TEST_POSTGRES_URL at "
            "a server where this user may create databases",
            pytrace=False,
        )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def create_postgres_database() -> str:
    """A new, empty database on the test server; returns its URL."""
    name = f"{DATABASE_PREFIX}{uuid.uuid4().hex}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    return make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    """Drop a database made by :func:`create_postgres_database` (even with connections left)."""
    name = make_url(url).database
    assert name is not None and name.startswith(DATABASE_PREFIX), name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of an empty PostgreSQL database, dropped after the test."""
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'ruvon.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each dialect."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)
