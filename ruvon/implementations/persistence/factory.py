"""Pick a persistence provider from a database URL."""

from __future__ import annotations

from ruvon.errors import ConfigurationError
from ruvon.providers.persistence import PersistenceProvider


def persistence_from_url(url: str, *, max_state_bytes: int | None = None) -> PersistenceProvider:
    """``sqlite:///path`` (or ``sqlite:///:memory:``) and ``memory://`` are built in."""
    if url.startswith("sqlite://"):
        from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider

        path = url.removeprefix("sqlite:///").removeprefix("sqlite://") or ":memory:"
        return SQLitePersistenceProvider(path, max_state_bytes=max_state_bytes)
    if url.startswith("memory://") or url == "memory":
        from ruvon.implementations.persistence.memory import MemoryPersistenceProvider

        return MemoryPersistenceProvider(max_state_bytes=max_state_bytes)
    scheme = url.split(":", 1)[0]
    raise ConfigurationError(
        f"unsupported database URL scheme '{scheme}' in RUVON_DATABASE_URL (use sqlite:///FILE "
        "or memory://)"
    )
