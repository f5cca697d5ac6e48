"""Keeps asyncpg pool connections checked out between operations, to skip acquire/release.

An ``asyncpg.Pool`` round trip through ``acquire()``/``release()`` costs about 50 µs of CPU
(a proxy object, a shielded release task, queue bookkeeping): a sixth of a whole durable step on
a local server. The provider's operations are single autocommit statements that leave no
session state behind, so a connection can go straight from one operation to the next.

:class:`ConnectionLender` sits in front of the pool: it lends an idle connection it already
holds (no await), or acquires one from the pool when it holds none idle. Returned connections
stay with the lender, except when someone is waiting on the pool (so the pool's ``max_size``
still bounds everything and nobody waits forever), when the connection is suspect (an error
other than an ordinary SQL error: the pool's release then resets, waits out a cancellation, or
discards it), or after :meth:`return_all`. Creating, initializing, replacing and closing
connections remain the pool's job.
"""

from __future__ import annotations

import asyncpg

__all__ = ["ConnectionLender"]


class ConnectionLender:
    """Lends the pool's connections one operation at a time (use from the pool's event loop)."""

    __slots__ = ("_closing", "_idle", "_pool", "_waiting")

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._idle: list[asyncpg.Connection] = []
        self._waiting = 0
        self._closing = False

    async def borrow(self) -> asyncpg.Connection:
        """An idle held connection, else one from the pool (waiting if it is exhausted)."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            try:
                closed = conn.is_closed()
            except asyncpg.InterfaceError:
                # asyncpg already took it back (its server connection broke while we held it
                # idle, e.g. a database restart): the proxy is detached, nothing to release.
                continue
            if not closed:
                return conn
            await self._pool.release(conn)  # the server dropped it while idle: let it be replaced
        self._waiting += 1
        try:
            acquired: asyncpg.Connection = await self._pool.acquire()
        finally:
            self._waiting -= 1
        return acquired

    def keep(self, conn: asyncpg.Connection) -> bool:
        """Take back a healthy connection without a pool round trip; False: :meth:`release` it."""
        if self._waiting or self._closing:
            return False
        self._idle.append(conn)
        return True

    async def release(self, conn: asyncpg.Connection) -> None:
        """Hand a connection back to the pool (which resets, replaces or closes it)."""
        await self._pool.release(conn)

    async def return_all(self) -> None:
        """Give every idle connection back to the pool and stop keeping any (before close)."""
        self._closing = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._pool.release(conn)
