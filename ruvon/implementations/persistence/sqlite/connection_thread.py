"""One thread that owns one ``sqlite3`` connection and runs whole transactions on it.

``sqlite3`` blocks, so the provider must not call it on the event loop; handing every statement
to a thread would cost one thread hop (~25 µs) per statement. Instead a caller hands over a
*job*, a plain function ``job(connection, *args)`` that runs a whole transaction synchronously,
and awaits its result: one hop per transaction. Jobs run one at a time in the order they were
submitted, so transactions on the connection never interleave and need no lock.

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
    """A ``sqlite3.Connection`` and the one thread that uses it; see the module docstring."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    @property
    def is_open(self) -> bool:
        """True from :meth:`open` until :meth:`close`."""
        return self._thread is not None

    async def open(self, path: str, timeout: float) -> None:
        """Start the thread and connect to ``path`` on it (autocommit mode: BEGIN is explicit).

        ``timeout`` is the connection's busy timeout in seconds. Raises what ``sqlite3.connect``
        raised, with the thread ended.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already open")
        self._pid = os.getpid()
        loop = asyncio.get_running_loop()
        connected: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(
            target=self._serve, args=(path, timeout, loop, connected), name=self._name, daemon=True
        )
        self._thread.start()
        try:
            await connected
        except BaseException:
            await self.close()
            raise

    def run(self, job: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """Queue ``job(connection, *args)``; the future gets its result or its exception.

        Cancelling the future does not stop a job that has started: its transaction commits or
        rolls back as it would have, only the outcome is dropped.
        """
        if self._thread is None:
            raise RuntimeError(f"{self._name} is not open")
        if self._pid != os.getpid():  # a forked child has the object but not the thread
            raise PersistenceError(
                f"{self._name} was opened in process {self._pid} and cannot be used in its "
                f"forked child {os.getpid()}: open a new SQLite provider in the child"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._jobs.put((loop, future, job, args))
        return future

    async def close(self) -> None:
        """Let the queued jobs finish, close the connection and end the thread (idempotent)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(thread.join)

    # -- on the thread ---------------------------------------------------------------------------

    def _serve(
        self,
        path: str,
        timeout: float,
        loop: asyncio.AbstractEventLoop,
        connected: asyncio.Future[None],
    ) -> None:
        try:
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        except BaseException as exc:  # reported to open(), which ends the thread
            _reply(loop, connected, None, exc)
            return
        _reply(loop, connected, None, None)
        try:
            while (item := self._jobs.get()) is not None:
                loop, future, job, args = item
                try:
                    result = job(conn, *args)
                except BaseException as exc:  # delivered to the awaiting task
                    _reply(loop, future, None, exc)
                else:
                    _reply(loop, future, result, None)
                del item, future, job, args  # release them while the thread waits
        finally:
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
