"""PostgreSQL persistence (asyncpg): the cluster's single source of truth.

``provider`` is the provider, composed of the step-run ledger (``runs``), the beat's sweeps
(``maintenance``) and schedule claims (``schedules``); its named queries are in ``sql/``.
"""

from __future__ import annotations

from ruvon.implementations.persistence.postgres.provider import PostgresPersistenceProvider

__all__ = ["PostgresPersistenceProvider"]
