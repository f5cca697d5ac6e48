"""SQLite persistence (plain ``sqlite3``): the embedded, zero-configuration backend.

``provider`` is the provider, ``connection_thread`` the thread its connection lives on,
``schema`` builds and checks its schema from the migrations, ``checkpoint`` runs WAL checkpoints
in the background; its named queries are in ``sql/``.
"""

from __future__ import annotations

from ruvon.implementations.persistence.sqlite.provider import SQLitePersistenceProvider

__all__ = ["SQLitePersistenceProvider"]
