"""Redis persistence: every atomic write is one Lua script (``scripts.lua``).

``provider`` is the provider, ``keys`` the key layout, ``codec`` converts records to Redis values
and back, ``scripts`` loads the Lua.
"""

from __future__ import annotations

from ruvon.implementations.persistence.redis.provider import (
    RedisPersistenceProvider,
    describe_server,
)

__all__ = ["RedisPersistenceProvider", "describe_server"]
