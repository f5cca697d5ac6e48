"""Stop a sync step function that overran its timeout in a thread, and wait until it has.

Embedded, a sync step with a ``timeout`` runs in another thread (the sync provider's watched
daemon thread, a pool thread), and the caller waits for it at most ``timeout`` seconds. A
thread cannot be killed; abandoned, its body would keep running while the retry (or the next
step, or a compensation) starts: two attempts of one step at once. So at the timeout

1. the body is **interrupted**: :class:`~ruvon.implementations.execution.time_limit.
   AttemptInterrupted` (a ``BaseException``, which ``except Exception`` does not swallow) is
   raised in its thread with ``PyThreadState_SetAsyncExc``. That reaches Python code at its
   next bytecode; a body blocked inside C (``time.sleep``, a socket read, a C extension) sees it
   only once the C call returns;
2. the caller **waits until the thread has returned** before it reports the timeout: nothing
   else of that workflow starts while the attempt still runs. A body blocked in C for good (or
   one that catches ``BaseException`` and carries on) keeps its workflow waiting: the
   documented limit (README, "Timeouts").
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ruvon.implementations.execution.time_limit import AttemptInterrupted

__all__ = ["AttemptGuard", "await_attempt"]

T = TypeVar("T")


def _raise_in_thread(thread_id: int, exc_type: type[BaseException] | None) -> None:
    # ``None`` clears an exception that was set but not raised yet.
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )


class AttemptGuard:
    """One attempt's body, run in some thread, that another thread may interrupt once.

    The interrupt is sent only while the body runs (never to a pool thread that has moved on
    to other work), at most once, and a sent interrupt that the body did not raise before it
    ended is withdrawn before the thread leaves :meth:`run`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread_id: int | None = None
        self._ended = False
        self._sent = False
        self._abandoned = False  # interrupted before it started: the body never runs

    @property
    def interrupted(self) -> bool:
        """Whether :meth:`interrupt` was called."""
        return self._sent or self._abandoned

    def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` in the calling thread, interruptible by another."""
        with self._lock:
            if self._abandoned:
                raise AttemptInterrupted
            self._thread_id = threading.get_ident()
        try:
            return function(*args, **kwargs)
        finally:
            self._end()

    def _end(self) -> None:
        with self._lock:
            self._ended = True
            if self._sent and self._thread_id is not None:
                _raise_in_thread(self._thread_id, None)

    def interrupt(self) -> None:
        """Raise AttemptInterrupted in the body's thread (or keep the body from starting)."""
        with self._lock:
            if self._ended or self.interrupted:
                return
            if self._thread_id is None:
                self._abandoned = True
                return
            self._sent = True
            _raise_in_thread(self._thread_id, AttemptInterrupted)


async def await_attempt(
    future: asyncio.Future[T], guard: AttemptGuard, timeout: float, on_timeout: BaseException
) -> T:
    """The result of ``future`` (a body run by ``guard``) within ``timeout`` seconds.

    Past the timeout the body is interrupted and, once its thread has returned, ``on_timeout``
    is raised. Cancelled meanwhile (a sibling PARALLEL branch failed, the caller gave up), the
    body is interrupted too and the cancellation goes on once it has returned: whatever
    follows (a compensation, another attempt) never runs beside it.
    """
    try:
        done, _ = await asyncio.wait({future}, timeout=timeout)
    except asyncio.CancelledError:
        guard.interrupt()
        await _until_ended(future)
        raise
    if done:
        return future.result()
    guard.interrupt()
    # Whatever the body does now (stop, finish, swallow the interrupt), its outcome no longer
    # counts: only its end does.
    if await _until_ended(future):
        raise asyncio.CancelledError
    raise on_timeout


async def _until_ended(future: asyncio.Future[Any]) -> bool:
    """Wait until ``future`` is done, through cancellations (whether one came meanwhile); its
    outcome is dropped."""
    cancelled = False
    while not future.done():
        try:
            await asyncio.wait({future})  # never cancels what it waits for
        except asyncio.CancelledError:
            cancelled = True
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not report it as never retrieved
    return cancelled
