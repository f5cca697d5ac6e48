"""Sync step functions run in the Celery task's own thread, while the bridge loop stays free.

A Celery task is synchronous; the runner is a coroutine on the process's bridge loop (asyncpg
lives there). The task thread would otherwise sit blocked in ``bridge.run`` while a sync step
function blocked the loop, starving the lease heartbeat. :class:`TaskThread` turns the waiting
thread into the executor of those calls: the coroutine hands a call over and awaits it, the task
thread runs it and hands the result back. Thread-bound things (Celery's time-limit signals, a
library's thread-locals) behave as in any Celery task.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ruvon.bridge import EventLoopBridge

__all__ = ["TaskThread", "current_task_thread"]

T = TypeVar("T")

_current: contextvars.ContextVar[TaskThread | None] = contextvars.ContextVar(
    "ruvon_task_thread", default=None
)
_DONE = object()


def current_task_thread() -> TaskThread | None:
    """The task thread serving the coroutine that asks (None outside a worker task)."""
    return _current.get()


class TaskThread:
    """Runs a coroutine on a bridge while serving its sync calls in the calling thread."""

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def run(self, bridge: EventLoopBridge, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on ``bridge``; meanwhile execute what it submits with :meth:`call`."""
        future = bridge.submit(self._bound(coro))
        future.add_done_callback(lambda _: self._inbox.put(_DONE))
        while True:
            item = self._inbox.get()
            if item is _DONE:
                return future.result()
            function, args, loop, waiter = item
            try:
                result = function(*args)
            except BaseException as exc:  # directives included: hand everything back
                loop.call_soon_threadsafe(_settle, waiter, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, waiter, result, None)

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` in the task thread; await its result on the loop."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        self._inbox.put((function, args, loop, waiter))
        return await waiter

    async def _bound(self, coro: Coroutine[Any, Any, T]) -> T:
        token = _current.set(self)
        try:
            return await coro
        finally:
            _current.reset(token)


def _settle(waiter: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if waiter.done():  # the awaiting coroutine was cancelled meanwhile
        return
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(result)
