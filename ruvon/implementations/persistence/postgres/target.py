"""Where a PostgreSQL URL points, and errors that name it without ever naming the password."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import asyncpg

from ruvon.errors import ConfigurationError, DatabaseUnavailable, PersistenceError

__all__ = ["SCHEMES", "ConnectionTarget"]

SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg", "postgres+asyncpg")

# SQLSTATE classes that mean "this connection is gone": 08 connection exception, 57P01-57P03
# admin/crash shutdown and cannot-connect-now.
_LOST_STATES = ("08", "57P01", "57P02", "57P03")
_AUTHENTICATION_ERRORS = (
    asyncpg.InvalidPasswordError,
    asyncpg.InvalidAuthorizationSpecificationError,
)


@dataclass(frozen=True)
class ConnectionTarget:
    """Host, port, database and user of a URL: what every error message names.

    ``dsn`` is the URL asyncpg accepts (``postgresql+asyncpg://`` is SQLAlchemy's spelling and
    is rewritten); ``password`` is kept only to scrub it from messages.
    """

    dsn: str
    host: str
    port: int
    database: str
    user: str
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> ConnectionTarget:
        """Parse ``postgresql://user:password@host:port/database?options``."""
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in SCHEMES:
            raise ConfigurationError(
                f"not a PostgreSQL URL: '{scheme}://...' (expected "
                "postgresql://user:password@host:port/database)"
            )
        dsn = f"postgresql://{rest}"
        try:
            parts = urlsplit(dsn)
            port = parts.port or 5432
        except ValueError as exc:
            raise ConfigurationError(f"malformed PostgreSQL URL: {exc}") from None
        user = unquote(parts.username or "") or "postgres"
        database = unquote(parts.path.lstrip("/")) or user
        host = parts.hostname or "localhost"
        password = unquote(parts.password) if parts.password else None
        return cls(dsn, host, port, database, user, password)

    @property
    def where(self) -> str:
        """``PostgreSQL at host:port, database 'name'`` for messages."""
        return f"PostgreSQL at {self.host}:{self.port}, database '{self.database}'"

    def redacted_url(self) -> str:
        """The URL with the password replaced by ``***``."""
        if not self.password:
            return self.dsn
        return self.dsn.replace(f":{self.password}@", ":***@", 1)

    def _scrub(self, text: str) -> str:
        return text.replace(self.password, "***") if self.password else text

    def unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        """A connection attempt failed: say why and what to check."""
        reason, hint = self._diagnose(exc)
        return DatabaseUnavailable(
            self._scrub(f"cannot connect to {self.where} as user '{self.user}': {reason}; {hint}")
        )

    def failed(self, exc: BaseException, operation: str) -> PersistenceError:
        """An operation failed after connecting (lost connection, timeout, server error)."""
        if is_connect_failure(exc):
            return self.unavailable(exc)
        if isinstance(exc, asyncpg.QueryCanceledError):
            detail = (
                "the statement was cancelled (statement_timeout exceeded? raise "
                "RUVON_STATEMENT_TIMEOUT)"
            )
        elif is_connection_lost(exc):
            detail = f"the connection was lost ({type(exc).__name__}: {exc}); retry once it is back"
        else:
            state = getattr(exc, "sqlstate", None)
            detail = f"{type(exc).__name__}{f' [{state}]' if state else ''}: {exc}"
        return PersistenceError(self._scrub(f"{operation} failed on {self.where}: {detail}"))

    def _diagnose(self, exc: BaseException) -> tuple[str, str]:
        if isinstance(exc, asyncpg.InvalidCatalogNameError):
            return (
                f"database '{self.database}' does not exist",
                f"create it (createdb {self.database}) or fix the database in RUVON_DATABASE_URL",
            )
        if isinstance(exc, _AUTHENTICATION_ERRORS):
            return (
                f"authentication failed ({exc})",
                "check the user name and password in RUVON_DATABASE_URL",
            )
        if isinstance(exc, asyncpg.TooManyConnectionsError):
            return (f"the server refuses more connections ({exc})", "lower RUVON_POOL_MAX_SIZE")
        if isinstance(exc, socket.gaierror):
            return (f"host '{self.host}' cannot be resolved ({exc})", "check the host name")
        if isinstance(exc, TimeoutError):
            return ("the connection attempt timed out", "check the host, port and firewall")
        if isinstance(exc, ConnectionRefusedError):
            return (
                "connection refused",
                f"is PostgreSQL running and listening on {self.host}:{self.port}?",
            )
        return (f"{type(exc).__name__}: {exc}", "check RUVON_DATABASE_URL and the server")


def is_connect_failure(exc: BaseException) -> bool:
    """True for errors that mean no connection could be opened at all."""
    return isinstance(
        exc,
        asyncpg.InvalidCatalogNameError
        | asyncpg.InvalidPasswordError
        | asyncpg.InvalidAuthorizationSpecificationError
        | asyncpg.TooManyConnectionsError
        | asyncpg.CannotConnectNowError
        | socket.gaierror
        | ConnectionRefusedError
        | TimeoutError,
    )


def is_connection_lost(exc: BaseException) -> bool:
    """True for errors that mean an open connection broke."""
    if isinstance(exc, asyncpg.ConnectionDoesNotExistError | ConnectionError):
        return True
    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, asyncpg.PostgresError) and state.startswith(_LOST_STATES)
