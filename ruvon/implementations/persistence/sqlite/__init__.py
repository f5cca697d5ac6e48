"""SQLite persistence (aiosqlite): the embedded, zero-configuration backend.

``provider`` is the provider, ``schema`` builds and checks its schema from the migrations,
``checkpoint`` runs WAL checkpoints in the background; its named queries are in ``sql/``.
"""

from __future__ import annotations

from ruvon.implementations.persistence.sqlite.provider import SQLitePersistenceProvider

__all__ = ["SQLitePersistenceProvider"]
