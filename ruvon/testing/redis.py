"""Redis providers for tests: each one under a private key prefix, wiped when it closes.

The server comes from ``RUVON_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``;
``scripts/services`` starts one). Tests never share keys, so they may run in parallel against
one server; an unreachable server fails the test with ``DatabaseUnavailable`` rather than
skipping it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from redis.asyncio import Redis

from ruvon.errors import DatabaseUnavailable
from ruvon.implementations.persistence.redis import RedisPersistenceProvider
from ruvon.implementations.persistence.redis.keys import RedisKeys

__all__ = [
    "DEFAULT_TEST_REDIS_URL",
    "TestRedisPersistenceProvider",
    "delete_keys_with_prefix",
    "make_test_redis_provider",
    "new_test_redis_provider",
    "redis_url_for_tests",
]

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"
_SCAN_COUNT = 1000


def redis_url_for_tests() -> str:
    """The server tests use: ``RUVON_TEST_REDIS_URL`` or the local default."""
    return os.environ.get("RUVON_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)


async def delete_keys_with_prefix(client: Redis, prefix: str) -> int:
    """Delete every key starting with ``prefix`` (SCAN + UNLINK); return how many."""
    deleted = 0
    batch: list[bytes] = []
    async for key in client.scan_iter(match=RedisKeys(prefix).scan_pattern(), count=_SCAN_COUNT):
        batch.append(key)
        if len(batch) >= _SCAN_COUNT:
            deleted += await client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += await client.unlink(*batch)
    return deleted


class TestRedisPersistenceProvider(RedisPersistenceProvider):
    """A provider whose ``close()`` first deletes every key under its (unique) prefix."""

    __test__ = False  # a provider, not a test class

    async def close(self) -> None:
        """Delete this provider's keys, then close the connection (idempotent)."""
        scripts = self._scripts
        try:
            if scripts is not None:
                await self._guard(delete_keys_with_prefix(scripts.client, self.key_prefix))
        finally:
            await super().close()


def new_test_redis_provider(
    *, redis_url: str | None = None, max_state_bytes: int | None = None
) -> TestRedisPersistenceProvider:
    """An uninitialized test provider under a fresh ``ruvon:test:<uuid hex>:`` prefix."""
    return TestRedisPersistenceProvider(
        redis_url or redis_url_for_tests(),
        key_prefix=f"ruvon:test:{uuid.uuid4().hex}:",
        max_state_bytes=max_state_bytes,
    )


async def make_test_redis_provider(
    tmp_dir: Path, *, max_state_bytes: int | None = None
) -> TestRedisPersistenceProvider:
    """An initialized test provider (``tmp_dir`` is unused: the data lives in Redis)."""
    provider = new_test_redis_provider(max_state_bytes=max_state_bytes)
    try:
        await provider.initialize()
    except DatabaseUnavailable as exc:
        raise DatabaseUnavailable(
            f"{exc}. Tests need a Redis server: run scripts/services or set RUVON_TEST_REDIS_URL"
        ) from exc
    return provider
