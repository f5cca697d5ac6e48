"""Sync step functions run in the Celery task's own thread, while the bridge loop stays free.

A Celery task is synchronous; the runner is a coroutine on the process's bridge loop (asyncpg
lives there). The task thread would otherwise sit blocked in ``bridge.run`` while a sync step
function blocked the loop, starving the lease heartbeat. :class:`TaskThread` turns the waiting
thread into the executor of those calls: the coroutine hands a call over and awaits it, the task
thread runs it and hands the result back. Thread-bound things (Celery's time-limit signals, a
library's thread-locals) behave as in any Celery task.

A run whose calls need none of that may be handed over to a carrier thread
(:mod:`~ruvon.implementations.execution.carriers`): the coroutine asks with :meth:`TaskThread.
hand_over`, and the task thread, if a carrier is free, lets it serve the calls from then on and
returns :data:`HANDED_OVER` at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import queue
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, overload

from ruvon.bridge import EventLoopBridge
from ruvon.implementations.execution.carriers import RunCarriers

__all__ = ["HANDED_OVER", "TaskThread", "current_task_thread"]

T = TypeVar("T")

logger = logging.getLogger("ruvon.worker")

_current: contextvars.ContextVar[TaskThread | None] = contextvars.ContextVar(
    "ruvon_task_thread", default=None
)
_DONE = object()
_HAND_OVER = object()


class _HandedOver:
    """What :meth:`TaskThread.run` returns for a run a carrier thread goes on with."""

    def __repr__(self) -> str:
        return "HANDED_OVER"


HANDED_OVER = _HandedOver()


def current_task_thread() -> TaskThread | None:
    """The task thread serving the coroutine that asks (None outside a worker task)."""
    return _current.get()


class TaskThread:
    """Runs a coroutine on a bridge while serving its sync calls in the calling thread."""

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        #: Whether a carrier thread serves the run now (it was handed over).
        self.carried = False

    @overload
    def run(self, bridge: EventLoopBridge, coro: Coroutine[Any, Any, T]) -> T: ...

    @overload
    def run(
        self, bridge: EventLoopBridge, coro: Coroutine[Any, Any, T], carriers: RunCarriers | None
    ) -> T | _HandedOver: ...

    def run(
        self,
        bridge: EventLoopBridge,
        coro: Coroutine[Any, Any, T],
        carriers: RunCarriers | None = None,
    ) -> T | _HandedOver:
        """Run ``coro`` on ``bridge``; meanwhile execute what it submits with :meth:`call`.

        With ``carriers``, a :meth:`hand_over` request moves the serving to a free carrier
        thread and returns :data:`HANDED_OVER` (without, or with none free, it is ignored).
        """
        future = bridge.submit(self._bound(coro))
        future.add_done_callback(lambda _: self._inbox.put(_DONE))
        if self._serve(carriers, future):
            return HANDED_OVER
        return future.result()

    def _serve(self, carriers: RunCarriers | None, future: concurrent.futures.Future[Any]) -> bool:
        """Execute submitted calls until the coroutine is done (False) or handed over (True)."""
        while True:
            item = self._inbox.get()
            if item is _DONE:
                return False
            if item is _HAND_OVER:
                if carriers is None:
                    continue
                # The carrier runs in a copy of this thread's context: what the task set there
                # (the Celery task's id and name its log records carry) goes on with the run.
                carry = functools.partial(contextvars.copy_context().run, self._carry, future)
                self.carried = True  # before the carrier runs anything
                if carriers.carry(carry):
                    return True
                self.carried = False
                continue
            function, args, loop, waiter = item
            try:
                result = function(*args)
            except BaseException as exc:  # directives included: hand everything back
                loop.call_soon_threadsafe(_settle, waiter, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, waiter, result, None)

    def _carry(self, future: concurrent.futures.Future[Any]) -> None:
        """A carrier thread's part: serve to the end, then report a failure the task would
        have raised (nobody waits for this result any more)."""
        self._serve(None, future)
        if future.cancelled():  # the bridge closed under it: the process is going away
            return
        error = future.exception()
        if error is not None:
            logger.error("carried step run failed: %r", error, exc_info=error)

    def hand_over(self) -> None:
        """Ask for this run's calls to be served by a carrier thread from now on (a request:
        the task thread keeps serving them when it has no carriers, or none is free)."""
        self._inbox.put(_HAND_OVER)

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
