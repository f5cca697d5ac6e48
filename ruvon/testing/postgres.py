"""PostgreSQL for tests: a private database per test, cloned from a migrated template.

Running the migrations takes seconds; copying a database takes tens of milliseconds. So the
first test on a server builds ``ruvon_template_<head revision>_<hash>`` once (``CREATE DATABASE``,
:func:`ruvon.db_schema.migrations.upgrade`, then marked ``IS_TEMPLATE`` and closed to
connections), and every test gets ``CREATE DATABASE ruvon_t_<hex> TEMPLATE ruvon_template_...``,
dropped (``WITH (FORCE)``) when its provider closes. The template is reused across runs and
processes; concurrent test processes serialize its build with an advisory lock, so it is built
exactly once per head revision. The hash of the migration scripts in its name gives a revision
edited in place (during development) a new template too; old templates stay until dropped by
hand (``ALTER DATABASE ... IS_TEMPLATE false; DROP DATABASE ...``).

The server comes from ``RUVON_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``); the user must be allowed to create
databases. An unreachable server fails the test with a message saying so: there is no skip.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from ruvon.errors import ConfigurationError, DatabaseUnavailable
from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider
from ruvon.implementations.persistence.postgres.target import ConnectionTarget
from ruvon.implementations.persistence.queries import load_queries
from ruvon.providers.persistence import PersistenceProvider

__all__ = [
    "DEFAULT_SERVER_URL",
    "TestPostgresProvider",
    "create_database",
    "database_url",
    "drop_database",
    "ensure_template",
    "make_test_postgres_provider",
    "new_test_postgres_provider",
    "server_url",
]

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TEST_DATABASE_PREFIX = "ruvon_t_"
TEMPLATE_PREFIX = "ruvon_template_"

_Q = load_queries(Path(__file__).with_name("sql") / "postgres_admin.sql")
_TEMPLATE_LOCK_KEY = 0x7275766F6E  # b"ruvon": one lock for every template build on the server
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_ready_templates: set[tuple[str, str]] = set()  # (server dsn, template) known ready here


def server_url() -> str:
    """The maintenance database URL of the test server (``RUVON_TEST_POSTGRES_URL``)."""
    return os.environ.get("RUVON_TEST_POSTGRES_URL") or DEFAULT_SERVER_URL


def database_url(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def _identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ConfigurationError(f"'{name}' is not a safe database name for tests")
    return f'"{name}"'


def template_name(revision: str, fingerprint: str = "") -> str:
    """``ruvon_template_<revision>[_<fingerprint>]`` as a safe identifier (<= 63 characters)."""
    cleaned = re.sub(r"[^a-z0-9_]", "_", revision.lower())[: 63 - len(TEMPLATE_PREFIX) - 9]
    return TEMPLATE_PREFIX + cleaned + (f"_{fingerprint[:8]}" if fingerprint else "")


def migrations_fingerprint(directory: Path) -> str:
    """A hash of the migration scripts, so editing a revision in place gets a fresh template.

    Revisions are immutable once released, but during development a revision is edited and
    re-run under the same id; a template named by the id alone would then be silently stale.
    """
    digest = hashlib.sha256()
    for path in sorted([directory / "env.py", *directory.glob("versions/*.py")]):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


async def _admin_connection(server: ConnectionTarget) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(server.dsn, timeout=10)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        error = server.unavailable(exc)
        raise DatabaseUnavailable(
            f"the PostgreSQL test server is unreachable: {error} (start it with scripts/services, "
            "or point RUVON_TEST_POSTGRES_URL at a server where this user may create databases)"
        ) from exc


async def ensure_template(url: str | None = None) -> str:
    """The name of the migrated template database for the code's head revision; build it once."""
    from ruvon.db_schema import migrations

    url = url or server_url()
    server = ConnectionTarget.from_url(url)
    name = template_name(
        migrations.head_revision(), migrations_fingerprint(migrations.MIGRATIONS_DIR)
    )
    if (server.dsn, name) in _ready_templates:
        return name
    conn = await _admin_connection(server)
    try:
        if not await conn.fetchval(_Q["database_state"], name):
            await conn.fetchval(_Q["lock_templates"], _TEMPLATE_LOCK_KEY)
            try:
                await _build_template(conn, url, name)
            finally:
                await conn.fetchval(_Q["unlock_templates"], _TEMPLATE_LOCK_KEY)
    finally:
        await conn.close()
    _ready_templates.add((server.dsn, name))
    return name


async def _build_template(conn: asyncpg.Connection, url: str, name: str) -> None:
    """Under the lock: build the template unless another process finished it meanwhile."""
    from ruvon.db_schema import migrations

    state = await conn.fetchval(_Q["database_state"], name)
    if state:
        return
    quoted = _identifier(name)
    if state is not None:  # a build that died half-way: start over
        await conn.execute(_Q["drop_database"].format(name=quoted))
    await conn.execute(_Q["create_database"].format(name=quoted))
    try:
        # upgrade() is synchronous (it runs its own loop): keep this loop free meanwhile.
        await asyncio.to_thread(migrations.upgrade, database_url(url, name))
        await conn.fetchval(_Q["disconnect_database"], name)
        await conn.execute(_Q["mark_template"].format(name=quoted))
    except BaseException:
        await conn.execute(_Q["drop_database"].format(name=quoted))
        raise


async def create_database(url: str | None = None, *, from_template: bool = True) -> str:
    """Create a fresh ``ruvon_t_<hex>`` database on the server ``url``; return its URL.

    It is a copy of the migrated template, or empty with ``from_template=False``.
    """
    url = url or server_url()
    name = f"{TEST_DATABASE_PREFIX}{uuid.uuid4().hex}"
    query = _Q["create_database"].format(name=_identifier(name))
    if from_template:
        template = await ensure_template(url)
        query = _Q["create_database_from_template"].format(
            name=_identifier(name), template=_identifier(template)
        )
    conn = await _admin_connection(ConnectionTarget.from_url(url))
    try:
        await conn.execute(query)
    finally:
        await conn.close()
    return database_url(url, name)


async def drop_database(url: str, server: str | None = None) -> None:
    """Drop the test database ``url`` names (made by :func:`create_database`), even if in use."""
    name = ConnectionTarget.from_url(url).database
    if not name.startswith(TEST_DATABASE_PREFIX):
        raise ConfigurationError(
            f"refusing to drop '{name}': not a {TEST_DATABASE_PREFIX}* database"
        )
    conn = await _admin_connection(ConnectionTarget.from_url(server or server_url()))
    try:
        await conn.execute(_Q["drop_database"].format(name=_identifier(name)))
    finally:
        await conn.close()


class TestPostgresProvider(PostgresPersistenceProvider):
    """A provider on a private database: created at first use, dropped by :meth:`close`.

    ``initialize()`` (or the first operation) creates the database from the template, so the
    constructor does no I/O and may be called outside an event loop. Options are those of
    :class:`PostgresPersistenceProvider`; the pool is small by default (tests make many).
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, server: str | None = None, **options: Any) -> None:
        self.server_url = server or server_url()
        options.setdefault("pool_min_size", 1)
        options.setdefault("pool_max_size", 5)
        options.setdefault("application_name", "ruvon-tests")
        # The server's URL stands in until initialize() creates the private database.
        super().__init__(self.server_url, **options)
        self._database_url: str | None = None
        self._creating = asyncio.Lock()

    async def initialize(self) -> None:
        """Create the private database (first time only), then open the pool on it."""
        async with self._creating:  # two first uses at once must not create two databases
            if self._database_url is None:
                self._database_url = await create_database(self.server_url)
                self.target = ConnectionTarget.from_url(self._database_url)
        await super().initialize()

    async def close(self) -> None:
        """Close the pool and drop the private database (idempotent)."""
        try:
            await super().close()
        finally:
            url, self._database_url = self._database_url, None
            if url is not None:
                await drop_database(url, self.server_url)

    @property
    def database_url(self) -> str | None:
        """The private database's URL (None before initialize or after close)."""
        return self._database_url


def new_test_postgres_provider(**options: Any) -> TestPostgresProvider:
    """A provider whose private database is created by ``initialize()`` (or its first use)."""
    return TestPostgresProvider(**options)


async def make_test_postgres_provider(tmp_dir: Path, **options: Any) -> PersistenceProvider:
    """An initialized provider on a fresh database cloned from the template (dropped on close).

    ``tmp_dir`` is accepted for the factory signature of :mod:`ruvon.testing.providers`.
    """
    provider = new_test_postgres_provider(**options)
    try:
        await provider.initialize()
    except BaseException:
        await provider.close()  # drops the database if it was created
        raise
    return provider
