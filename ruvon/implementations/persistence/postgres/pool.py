"""The PostgreSQL provider's connections: its asyncpg pool, its lender, the schema check, and
one way to run a statement or a transaction with the driver's errors made Ruvon's.

:class:`PostgresPool` is the base of
:class:`~ruvon.implementations.persistence.postgres.PostgresPersistenceProvider` (and of the
statement mixins beside it, which only call ``_query`` / ``_transaction``). Sessions run with
``TimeZone=UTC``, the configured ``statement_timeout`` and ``application_name``; no operation
leaves session state behind, so the pool skips its reset query on release.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from ruvon.errors import PersistenceError, RuvonError
from ruvon.implementations.persistence.postgres.codecs import register_codecs
from ruvon.implementations.persistence.postgres.connections import ConnectionLender
from ruvon.implementations.persistence.postgres.target import (
    ConnectionTarget,
    is_connection_lost,
)

__all__ = ["DRIVER_ERRORS", "PostgresPool"]

_log = logging.getLogger(__name__)
_CLOSE_TIMEOUT = 10.0
#: What the driver raises besides SQL errors: lost sockets, timeouts, protocol misuse.
DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
T = TypeVar("T")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool ``reset`` hook: skip asyncpg's default reset query on every release.

    The default (``RESET ALL``, ``UNLISTEN *``, unlock advisory locks...) costs a round trip per
    operation, and this provider never changes session state. asyncpg still rolls back an open
    transaction before calling this hook.
    """


class PostgresPool:
    """An asyncpg pool on one database, opened by :meth:`initialize` (see the module)."""

    def __init__(
        self,
        db_url: str,
        pool_min_size: int = 2,
        pool_max_size: int = 10,
        *,
        statement_timeout: float | None = 30.0,
        max_state_bytes: int | None = None,
        application_name: str = "ruvon",
        connect_timeout: float = 10.0,
    ) -> None:
        self.target = ConnectionTarget.from_url(db_url)
        self.pool_min_size = pool_min_size
        self.pool_max_size = max(pool_max_size, pool_min_size, 1)
        self.statement_timeout = statement_timeout
        self.max_state_bytes = max_state_bytes
        self.application_name = application_name
        self.connect_timeout = connect_timeout
        self._pool: asyncpg.Pool | None = None
        self._lender: ConnectionLender | None = None
        self._closed = False
        self._lifecycle: asyncio.Lock | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Open the pool and check the schema revision (idempotent)."""
        if self._lifecycle is None:
            self._lifecycle = asyncio.Lock()
        async with self._lifecycle:
            self._closed = False
            if self._pool is None:
                self._pool = await self._open_pool()
                self._lender = ConnectionLender(self._pool)

    async def close(self) -> None:
        """Close the pool, waiting up to 10 s for connections in use (idempotent)."""
        self._closed = True
        pool, self._pool = self._pool, None
        lender, self._lender = self._lender, None
        if pool is None:
            return
        if lender is not None:
            await lender.return_all()
        try:
            await asyncio.wait_for(pool.close(), _CLOSE_TIMEOUT)
        except TimeoutError:
            pool.terminate()

    # -- connection ----------------------------------------------------------------------------

    async def _transaction(
        self, operation: str, body: Callable[[asyncpg.Connection], Awaitable[T]]
    ) -> T:
        """Run ``body(conn)`` in a transaction on one lent connection (rolled back if it raises)."""

        async def in_transaction(conn: asyncpg.Connection) -> T:
            async with conn.transaction():
                return await body(conn)

        return await self._on_connection(operation, in_transaction)

    async def _fetchval(self, operation: str, sql: str, *args: Any) -> Any:
        return await self._query(operation, "fetchval", sql, args)

    async def _fetchrow(self, operation: str, sql: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._query(operation, "fetchrow", sql, args)
        return row

    async def _fetch(self, operation: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._query(operation, "fetch", sql, args)
        return rows

    async def _execute(self, operation: str, sql: str, *args: Any) -> str:
        status: str = await self._query(operation, "execute", sql, args)
        return status

    async def _query(self, operation: str, method: str, sql: str, args: tuple[Any, ...]) -> Any:
        """Run one statement on a lent connection (see :meth:`_on_connection`)."""
        return await self._on_connection(operation, lambda conn: getattr(conn, method)(sql, *args))

    async def _on_connection(
        self, operation: str, body: Callable[[asyncpg.Connection], Awaitable[T]]
    ) -> T:
        """Run ``body`` on a lent connection; integrity errors and Ruvon's own (a lost claim, a
        conflict) pass through untranslated, driver errors become ``PersistenceError`` s.

        The connection goes back to the lender unless the error leaves it suspect (lost,
        cancelled, protocol state unknown), in which case the pool's release sorts it out.
        """
        lender = self._lender or await self._open_lazily()
        try:
            conn = await lender.borrow()
        except DRIVER_ERRORS as exc:
            raise self.target.failed(exc, operation) from exc
        healthy = False
        try:
            result = await body(conn)
            healthy = True
            return result
        except (asyncpg.IntegrityConstraintViolationError, RuvonError):
            healthy = True
            raise
        except DRIVER_ERRORS as exc:
            healthy = isinstance(exc, asyncpg.PostgresError) and not is_connection_lost(exc)
            raise self.target.failed(exc, operation) from exc
        finally:
            if not (healthy and lender.keep(conn)):
                await lender.release(conn)

    async def _open_lazily(self) -> ConnectionLender:
        if self._closed:
            raise PersistenceError(
                f"PostgreSQL provider for {self.target.where} is closed "
                "(call initialize() to reopen)"
            )
        await self.initialize()
        assert self._lender is not None
        return self._lender

    def _server_settings(self) -> dict[str, str]:
        settings = {"application_name": self.application_name, "TimeZone": "UTC"}
        if self.statement_timeout is not None:
            settings["statement_timeout"] = str(max(int(self.statement_timeout * 1000), 0))
        return settings

    async def _open_pool(self) -> asyncpg.Pool:
        try:
            pool = await asyncpg.create_pool(
                self.target.dsn,
                min_size=self.pool_min_size,
                max_size=self.pool_max_size,
                init=register_codecs,
                reset=_keep_session,
                timeout=self.connect_timeout,
                server_settings=self._server_settings(),
            )
        except DRIVER_ERRORS as exc:
            raise self.target.unavailable(exc) from exc
        try:
            await self._check_schema(pool)
        except BaseException:
            pool.terminate()
            raise
        return pool

    async def _check_schema(self, pool: asyncpg.Pool) -> None:
        """Refuse a database whose schema this code cannot run against (db_schema.compatibility).

        At the code's revision that is one query; at another, the revisions' declarations too.
        """
        from ruvon.db_schema import compatibility, migrations

        declared: dict[str, str] = {}
        try:
            found = await pool.fetchval(migrations.VERSION_QUERY)
            if found is not None and found != migrations.SCHEMA_REVISION:
                declared = await _declarations(pool, compatibility.COMPAT_QUERY)
        except asyncpg.UndefinedTableError:
            found = None
        except DRIVER_ERRORS as exc:
            raise self.target.failed(exc, "check the schema revision") from exc
        migrations.assert_schema_compatible(found, declared, database=self.target.where)
        if found != migrations.SCHEMA_REVISION:
            _log.info(
                "%s is at schema revision %s, newer than this code's %s and declared compatible "
                "with it",
                self.target.where,
                found,
                migrations.SCHEMA_REVISION,
            )


async def _declarations(pool: asyncpg.Pool, query: str) -> dict[str, str]:
    """``ruvon_schema_compat`` as revision -> min_compatible_revision; empty without the table."""
    try:
        rows = await pool.fetch(query)
    except asyncpg.UndefinedTableError:
        return {}
    return {str(row[0]): str(row[1]) for row in rows}
