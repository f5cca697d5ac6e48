"""One thread that owns one ``sqlite3`` connection and runs whole transactions on it.

``sqlite3`` blocks, so the provider must not wait on the event loop; handing every statement
to a thread would cost one thread hop (~25 µs) per statement. Instead a caller hands over a
*job*, a plain function ``job(connection, *args)`` that runs a whole transaction synchronously,
and awaits its result: at most one hop per transaction.

A short job may also run **inline**, on the caller's thread, when nothing else is using the
connection: in WAL mode with ``synchronous=NORMAL`` a commit does not fsync (the background
checkpointer does), so a one-row transaction costs microseconds, less than the two thread
wake-ups a hop costs. What could block the caller is waiting for another connection's lock,
so the connection's busy timeout is 0 while it rests: an inline job that finds the database
locked fails with SQLITE_BUSY before it has written anything (it is one transaction) and is
handed to the thread, which waits for the lock with the configured timeout. Jobs never
interleave on the connection (a lock is held around each), and a job handed to the thread is
never overtaken by an inline one.

The thread is started by :meth:`ConnectionThread.open` and ended by :meth:`close`. It is a
daemon thread: a provider its owner forgot to close does not keep the interpreter alive (SQLite
rolls back whatever was not committed when the process ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ruvon.errors import PersistenceError

__all__ = ["ConnectionThread"]

_T = TypeVar("_T")
_NO_WAIT = "PRAGMA busy_timeout = 0"
# A job, its arguments, and the future (with its loop) waiting for the outcome; None stops.
_Item = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Hand a job's outcome to its future (on the future's loop), unless the caller gave up."""
    if future.done():  # cancelled while the job ran
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class ConnectionThread:
    """A ``sqlite3.Connection`` and the one thread that waits on it; see the module docstring."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._in_use = threading.Lock()  # held by whoever runs a job on the connection
        # Jobs handed to the thread and jobs it finished: each counter has one writer, so
        # comparing them needs no lock. While they differ, inline jobs queue behind.
        self._handed = self._finished = 0
        self._wait_pragmas = ("", "")
        self._pid = os.getpid()

    @property
    def is_open(self) -> bool:
        """True from :meth:`open` until :meth:`close`."""
        return self._thread is not None

    async def open(self, path: str, timeout: float) -> None:
        """Connect to ``path`` on a new thread.

        ``timeout`` is how long (seconds) a job on the thread waits for another connection's
        lock; inline jobs never wait. Raises what ``sqlite3.connect`` raised, with the thread
        ended.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already open")
        self._pid = os.getpid()
        self._wait_pragmas = (f"PRAGMA busy_timeout = {int(timeout * 1000)}", _NO_WAIT)
        loop = asyncio.get_running_loop()
        connected: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(
            target=self._serve, args=(path, loop, connected), name=self._name, daemon=True
        )
        self._thread.start()
        try:
            await connected
        except BaseException:
            await self.close()
            raise

    def run(self, job: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """Queue ``job(connection, *args)`` for the thread; the future gets its outcome.

        Cancelling the future does not stop a job that has started: its transaction commits or
        rolls back as it would have, only the outcome is dropped.
        """
        self._check_usable()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._handed += 1
        self._jobs.put((loop, future, job, args))
        return future

    async def call(self, job: Callable[..., _T], *args: Any, inline: bool = False) -> _T:
        """``job(connection, *args)``'s result: inline if allowed and possible, else on the thread.

        ``inline`` is for short jobs that are one transaction (or one statement): they run on
        the caller's thread when the connection is idle and unlocked, and go to the thread
        when the database is busy (see the module docstring).
        """
        self._check_usable()
        if inline and self._handed == self._finished and self._in_use.acquire(blocking=False):
            try:
                conn = self._conn
                if conn is not None:
                    return job(conn, *args)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # extended codes too
                    raise
                # Locked by another connection: nothing was written; wait on the thread.
            finally:
                self._in_use.release()
        return await self.run(job, *args)

    async def close(self) -> None:
        """Let the queued jobs finish, close the connection and end the thread (idempotent)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(thread.join)

    def _check_usable(self) -> None:
        if self._thread is None:
            raise RuntimeError(f"{self._name} is not open")
        if self._pid != os.getpid():  # a forked child has the object but not the thread
            raise PersistenceError(
                f"{self._name} was opened in process {self._pid} and cannot be used in its "
                f"forked child {os.getpid()}: open a new SQLite provider in the child"
            )

    # -- on the thread ---------------------------------------------------------------------------

    def _serve(
        self, path: str, loop: asyncio.AbstractEventLoop, connected: asyncio.Future[None]
    ) -> None:
        try:
            # timeout=0: resting, the connection never waits for a lock (inline jobs run on the
            # caller's thread); jobs run here wait, with the busy timeout set around each.
            conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        except BaseException as exc:  # reported to open(), which ends the thread
            _reply(loop, connected, None, exc)
            return
        self._conn = conn
        _reply(loop, connected, None, None)
        wait, no_wait = self._wait_pragmas
        try:
            while (item := self._jobs.get()) is not None:
                loop, future, job, args = item
                result: Any = None
                error: BaseException | None = None
                with self._in_use:
                    try:
                        conn.execute(wait)
                        try:
                            result = job(conn, *args)
                        finally:
                            conn.execute(no_wait)
                    except BaseException as exc:  # delivered to the awaiting task
                        error = exc
                self._finished += 1
                # Only now, with the connection free and counted idle: the task this wakes may
                # run its next short job inline at once instead of queueing behind nothing.
                _reply(loop, future, result, error)
                del item, future, job, args, result, error  # release them while the thread waits
        finally:
            with self._in_use:
                self._conn = None
                conn.close()


def _reply(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    result: Any,
    error: BaseException | None,
) -> None:
    """Settle ``future`` on its loop, from the connection's thread."""
    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
        loop.call_soon_threadsafe(_settle, future, result, error)
