"""EventLoopBridge holding a real asyncpg pool: threads share it, close() leaves nothing behind.

Needs PostgreSQL at ``RUVON_TEST_POSTGRES_URL`` (default: the local trust-auth server that
``scripts/services`` starts). The sessions are found in ``pg_stat_activity`` by a unique
``application_name``, checked from a separate connection on a separate loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
import uuid
from urllib.parse import urlsplit

import asyncpg
import pytest

from ruvon.bridge import EventLoopBridge

POSTGRES_URL = os.environ.get(
    "RUVON_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def where() -> str:
    """The server's address without credentials, for failure messages."""
    parts = urlsplit(POSTGRES_URL)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


SESSIONS = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
SLEEPING = SESSIONS + " AND state = 'active' AND query LIKE 'SELECT pg_sleep%'"


async def count_until(query: str, application_name: str, target: int, within: float) -> int:
    """Run a count query from a fresh connection until it returns ``target`` or time is up."""
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        deadline = time.monotonic() + within
        while True:
            count: int = await connection.fetchval(query, application_name)
            if count == target or time.monotonic() >= deadline:
                return count
            await asyncio.sleep(0.05)
    finally:
        await connection.close()


def open_pool(bridge: EventLoopBridge, application_name: str) -> asyncpg.Pool:
    try:
        pool: asyncpg.Pool = bridge.run(
            asyncpg.create_pool(
                POSTGRES_URL,
                min_size=2,
                max_size=4,
                server_settings={"application_name": application_name},
                loop=bridge.loop,  # the pool binds to a loop when constructed, i.e. here
            ),
            timeout=15,
        )
        return pool
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    bridge.close()
    pytest.fail(
        f"PostgreSQL is unreachable at {where()} ({problem}); start it with scripts/services "
        "or point RUVON_TEST_POSTGRES_URL at a server",
        pytrace=False,
    )


@pytest.mark.parametrize("loop_kind", ["uvloop", "asyncio"])
def test_threads_share_one_pool_and_close_leaves_no_sessions_or_tasks(loop_kind: str) -> None:
    if loop_kind == "uvloop":
        pytest.importorskip("uvloop")
    application_name = f"ruvon-bridge-test-{uuid.uuid4().hex[:12]}"
    bridge = EventLoopBridge(name=application_name, use_uvloop=loop_kind == "uvloop")
    pool = open_pool(bridge, application_name)
    bridge.on_close(pool.close)

    def query(number: int) -> int:
        result: int = bridge.run(pool.fetchval("SELECT $1::int * 2", number), timeout=10)
        return result

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as threads:
        results = list(threads.map(query, range(200)))

    assert results == [number * 2 for number in range(200)]
    assert 1 <= asyncio.run(count_until(SESSIONS, application_name, 0, within=0)) <= 4
    # A query still running on the server when the bridge closes: close() must cancel it (and
    # asyncpg must get the server to cancel it) before the pool can close.
    stuck = bridge.submit(pool.fetchval("SELECT pg_sleep(60)"))
    assert asyncio.run(count_until(SLEEPING, application_name, 1, within=5)) == 1

    started = time.monotonic()
    bridge.close(timeout=10)

    assert time.monotonic() - started < 10
    assert stuck.cancelled()
    assert not asyncio.all_tasks(bridge.loop), "tasks left on the bridge loop after close()"
    assert bridge.loop.is_closed()
    leftover = asyncio.run(count_until(SESSIONS, application_name, 0, within=5))
    assert leftover == 0, f"{leftover} session(s) named {application_name} remain after close()"


def test_a_timed_out_query_is_cancelled_on_the_server_and_the_pool_stays_usable() -> None:
    application_name = f"ruvon-bridge-test-{uuid.uuid4().hex[:12]}"
    with EventLoopBridge(name=application_name) as bridge:
        pool = open_pool(bridge, application_name)
        bridge.on_close(pool.close)

        with pytest.raises(TimeoutError):
            bridge.run(pool.fetchval("SELECT pg_sleep(60)"), timeout=0.3)

        assert bridge.run(pool.fetchval("SELECT 1"), timeout=10) == 1
        busy = asyncio.run(count_until(SLEEPING, application_name, 0, within=5))
        assert busy == 0, "the timed-out pg_sleep is still running on the server"

    assert asyncio.run(count_until(SESSIONS, application_name, 0, within=5)) == 0
