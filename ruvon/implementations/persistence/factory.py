"""Pick a persistence provider from a database URL."""

from __future__ import annotations

from ruvon.config import Settings
from ruvon.errors import ConfigurationError
from ruvon.providers.persistence import PersistenceProvider

_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg", "postgres+asyncpg")


def persistence_from_url(
    url: str, *, max_state_bytes: int | None = None, settings: Settings | None = None
) -> PersistenceProvider:
    """The provider for ``url``; nothing is opened until it is initialized.

    ``postgresql://`` / ``postgres://`` (PostgreSQL; pool sizes and statement timeout from
    ``settings``, by default from the environment), ``redis://`` / ``rediss://`` (Redis),
    ``sqlite:///path`` (or ``sqlite:///:memory:``, ``sqlite://``; ``sqlite+aiosqlite://`` too, as
    SQLAlchemy spells it) and ``memory://``.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.lower()
    if scheme in _POSTGRES_SCHEMES:
        from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider

        settings = settings or Settings.from_env()
        return PostgresPersistenceProvider(
            url,
            settings.pool_min_size,
            settings.pool_max_size,
            statement_timeout=settings.statement_timeout,
            max_state_bytes=max_state_bytes,
        )
    if scheme in ("redis", "rediss"):
        from ruvon.implementations.persistence.redis import RedisPersistenceProvider

        return RedisPersistenceProvider(url, max_state_bytes=max_state_bytes)
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider

        # The provider reads the URL itself (database_path): one parser for both entry points.
        return SQLitePersistenceProvider(url, max_state_bytes=max_state_bytes)
    if url.startswith("memory://") or url == "memory":
        from ruvon.implementations.persistence.memory import MemoryPersistenceProvider

        return MemoryPersistenceProvider(max_state_bytes=max_state_bytes)
    raise ConfigurationError(
        f"unsupported database URL scheme '{scheme}' in RUVON_DATABASE_URL (use "
        "postgresql://user:password@host:port/database, redis://host:port/db, sqlite:///FILE "
        "or memory://)"
    )
