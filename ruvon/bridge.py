"""The event-loop bridge: *the* way synchronous code reaches Ruvon's async persistence.

Why it exists: asyncpg is asynchronous and a pool is bound to the event loop that created it,
while Celery tasks, the CLI and plain threads are synchronous. An :class:`EventLoopBridge` owns a
daemon thread running one private event loop (uvloop when installed) for the life of the
process; the pool is created on that loop and every sync caller hands it coroutines::

    bridge = EventLoopBridge()
    pool = bridge.run(asyncpg.create_pool(dsn, loop=bridge.loop))
    bridge.on_close(pool.close)                      # closed on the loop, at bridge.close()
    row = bridge.run(pool.fetchrow("SELECT 1"), timeout=5)
    bridge.close()

``loop=bridge.loop`` matters: ``create_pool()`` binds the pool to a loop when it is *called*,
which is in the caller's thread, before the bridge gets it. Objects like that must be given
the bridge loop, or be constructed inside a coroutine that runs on the bridge.

``run`` blocks the calling thread until the coroutine finishes; its exception is re-raised in
the caller with the original type, and a coroutine that outlives ``timeout`` is cancelled and
``TimeoutError`` raised. Any number of threads may call ``run`` at once.

Rules:

* **Create it after fork.** A forked child inherits the parent's memory but not its threads,
  so the loop (and the pool's sockets) would be dead or shared. Every use from a process other
  than the creator raises :class:`~ruvon.errors.BridgeForkError`. In a Celery worker create the
  bridge in ``worker_process_init`` and close it in ``worker_process_shutdown``, or call
  :func:`get_process_bridge`, which does the right thing lazily::

      @worker_process_init.connect
      def open_bridge(**_: object) -> None:
          get_process_bridge()

      @worker_process_shutdown.connect
      def close_bridge(**_: object) -> None:
          close_process_bridge()

* **One per process.** One loop holds one pool; :func:`get_process_bridge` returns the
  process-wide bridge and :func:`close_process_bridge` closes it.
* **Never call run() from inside the loop.** Code already running on the bridge's loop must
  ``await``; blocking the loop's own thread on itself would deadlock, so it raises
  :class:`~ruvon.errors.BridgeError`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import inspect
import logging
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

from ruvon.errors import BridgeClosed, BridgeError, BridgeForkError, ConfigurationError

__all__ = ["EventLoopBridge", "close_process_bridge", "get_process_bridge"]

T = TypeVar("T")

logger = logging.getLogger(__name__)

# How long run() waits, after a timeout, for the cancelled coroutine to unwind (its finally
# blocks, a connection going back to the pool) before raising TimeoutError.
_CANCEL_GRACE_SECONDS = 1.0


class EventLoopBridge:
    """A private event loop on a daemon thread that synchronous code submits coroutines to."""

    def __init__(self, *, name: str = "ruvon-bridge", use_uvloop: bool | None = None) -> None:
        self._name = name
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._closed = False
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._close_timeout = 10.0
        self._loop = _new_event_loop(use_uvloop)
        _live_bridges.add(self)
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), name=name, daemon=True)
        self._thread.start()
        while not started.wait(0.05):
            if not self._thread.is_alive():
                raise BridgeError(f"event-loop bridge {name!r}: the loop thread failed to start")

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<EventLoopBridge {self._name!r} pid={self._pid} {state}>"

    @property
    def name(self) -> str:
        """The bridge's name, also the name of its thread."""
        return self._name

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The bridge's event loop (runs on the bridge thread; don't run it yourself)."""
        return self._loop

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (or the loop stopped, or the process forked)."""
        return self._closed

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``coro`` on the bridge loop and block until it finishes; return its result.

        The coroutine's own exception is re-raised here with its original type. If it runs
        longer than ``timeout`` seconds it is cancelled (and given a moment to unwind) and
        builtin ``TimeoutError`` is raised; if the wait is interrupted (KeyboardInterrupt,
        Celery's SoftTimeLimitExceeded) it is cancelled too. It runs in a copy of the caller's
        contextvars.
        """
        call = self._schedule(coro, "run", from_loop_thread_ok=False)
        try:
            # exception() waits like result() but never raises the coroutine's own error, so a
            # TimeoutError here is the wait running out, not one the coroutine raised.
            call.future.exception(timeout)
        except TimeoutError:
            self._request_cancel(call)
            self._await_cancelled(call)
            raise TimeoutError(
                f"event-loop bridge {self._name!r}: the coroutine did not finish within "
                f"{timeout} s and was cancelled"
            ) from None
        except concurrent.futures.CancelledError:
            if self._closed:
                raise BridgeClosed(
                    f"event-loop bridge {self._name!r} was closed while the call was running"
                ) from None
            raise
        except BaseException:
            # Interrupted while waiting: don't leave the coroutine running unattended.
            self._request_cancel(call)
            raise
        return call.future.result()

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the bridge loop; cancelling the returned future cancels it."""
        call = self._schedule(coro, "submit", from_loop_thread_ok=True)
        call.future.add_done_callback(self._propagate_cancel(call))
        return call.future

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Register an async cleanup (e.g. ``pool.close``) run on the loop at :meth:`close`.

        Closers run in reverse registration order, after pending tasks were cancelled.
        """
        self._check_process("on_close")
        with self._lock:
            if self._closed:
                raise BridgeClosed(f"event-loop bridge {self._name!r} is closed")
            self._closers.append(closer)

    def close(self, timeout: float = 10.0) -> None:
        """Cancel pending work, run the closers, stop the loop and join its thread.

        Idempotent. Closer failures are logged, not raised. In a forked child it only marks
        the bridge closed: the loop and its thread belong to the parent.
        """
        if os.getpid() != self._pid:
            # The instance lock may have been held by a parent thread at fork: don't take it.
            self._closed = True
            return
        if threading.get_ident() == self._thread.ident:
            if self._closed:  # e.g. a closer closing the bridge again: already under way
                return
            raise BridgeError(
                f"event-loop bridge {self._name!r}: close() called from the bridge's own loop "
                "thread would deadlock; call it from another thread"
            )
        with self._lock:
            if self._closed:
                already = True
            else:
                already = False
                self._closed = True
                self._close_timeout = timeout
        if not already:
            # The thread's epilogue (_serve) does the shutdown once run_forever() returns.
            # RuntimeError: the loop is already closed, it stopped by itself.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout + _CANCEL_GRACE_SECONDS)
        _live_bridges.discard(self)
        if self._thread.is_alive():
            logger.warning(
                "event-loop bridge %r did not shut down within %s s; leaving its daemon thread",
                self._name,
                timeout,
            )

    def __enter__(self) -> EventLoopBridge:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _check_process(self, operation: str) -> None:
        if os.getpid() != self._pid:
            raise BridgeForkError(
                f"event-loop bridge {self._name!r} was created in process {self._pid} and "
                f"cannot be used ({operation}) in process {os.getpid()}: its loop thread and "
                "connections do not survive fork. Create the bridge after fork (in Celery, in "
                "the worker_process_init signal) or use ruvon.bridge.get_process_bridge()"
            )

    def _schedule(
        self, awaitable: Awaitable[T], operation: str, *, from_loop_thread_ok: bool
    ) -> _Call[T]:
        coro = _as_coroutine(awaitable)
        try:
            self._check_process(operation)
            if not from_loop_thread_ok and threading.get_ident() == self._thread.ident:
                raise BridgeError(
                    f"event-loop bridge {self._name!r}: {operation}() called from the bridge's "
                    "own loop thread would deadlock; `await` the coroutine there instead"
                )
            call = _Call(coro, contextvars.copy_context())
            # Checking `closed` and scheduling under one lock orders every accepted call
            # before close()'s stop request, so shutdown sees (and cancels) its task.
            with self._lock:
                if self._closed:
                    raise BridgeClosed(f"event-loop bridge {self._name!r} is closed")
                self._loop.call_soon_threadsafe(call.start, self._loop)
        except BaseException:
            coro.close()  # never started: close it so no "was never awaited" warning
            raise
        return call

    def _request_cancel(self, call: _Call[Any]) -> None:
        # Scheduled after call.start (FIFO), so the task exists when this runs.
        # RuntimeError: the loop is closed, and close() cancelled the task already.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(call.cancel)

    def _await_cancelled(self, call: _Call[Any]) -> None:
        # Not concurrent.futures.wait(): it is not woken by a cancelled (never running) future.
        try:
            call.future.exception(_CANCEL_GRACE_SECONDS)
        except concurrent.futures.CancelledError:
            pass
        except TimeoutError:
            logger.warning(
                "event-loop bridge %r: a timed-out coroutine is still running %s s after "
                "cancellation (it ignores cancellation, or the loop is blocked)",
                self._name,
                _CANCEL_GRACE_SECONDS,
            )

    def _propagate_cancel(
        self, call: _Call[Any]
    ) -> Callable[[concurrent.futures.Future[Any]], None]:
        def on_done(future: concurrent.futures.Future[Any]) -> None:
            if future.cancelled() and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError):  # closed between check and call
                    self._loop.call_soon_threadsafe(call.cancel)

        return on_done

    def _serve(self, started: threading.Event) -> None:
        """The bridge thread: run the loop until close(), then shut down on this thread."""
        loop = self._loop
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        crashed = False
        try:
            loop.run_forever()
        except BaseException:
            crashed = True
            logger.exception("event-loop bridge %r: the loop stopped on an error", self._name)
        with self._lock:
            if not self._closed:  # not stopped by close(): refuse new work from now on
                if not crashed:
                    logger.error("event-loop bridge %r: loop stopped without close()", self._name)
                self._closed = True
        try:
            loop.run_until_complete(self._shutdown(self._close_timeout))
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    async def _shutdown(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self._cancel_pending_tasks(deadline)
        for closer in reversed(self._closers):
            # One failing closer must not keep the others (the pool) open.
            try:
                await asyncio.wait_for(closer(), _remaining(deadline))
            except (Exception, asyncio.CancelledError):
                logger.exception("event-loop bridge %r: closer %r failed", self._name, closer)
        self._closers.clear()
        for step in (loop.shutdown_asyncgens, loop.shutdown_default_executor):
            try:
                await asyncio.wait_for(step(), _remaining(deadline))
            except Exception:
                logger.exception("event-loop bridge %r: %s failed", self._name, step.__name__)

    async def _cancel_pending_tasks(self, deadline: float) -> None:
        this = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not this:
                task.cancel()
        # Tasks spawned while those unwind are cleanup (asyncpg sends the server a
        # CancelRequest from one): let them finish rather than cancel them too.
        while tasks := {task for task in asyncio.all_tasks() if task is not this}:
            _, pending = await asyncio.wait(tasks, timeout=_remaining(deadline))
            if pending:
                logger.warning(
                    "event-loop bridge %r: %d task(s) still running at the close deadline: %s",
                    self._name,
                    len(pending),
                    ", ".join(task.get_name() for task in pending),
                )
                for task in pending:
                    task.cancel()
                return


class _Call(Generic[T]):
    """One submitted coroutine: its task on the loop and the future the caller waits on."""

    __slots__ = ("context", "coro", "future", "task")

    def __init__(self, coro: Coroutine[Any, Any, T], context: contextvars.Context) -> None:
        self.coro = coro
        self.context = context
        self.future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self.task: asyncio.Task[T] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop: start the task, unless the caller cancelled first."""
        if self.future.cancelled():
            self.coro.close()
            return
        try:
            self.task = loop.create_task(self.coro, context=self.context)
        except BaseException as exc:
            self.coro.close()
            self._settle_exception(exc)
            return
        self.task.add_done_callback(self._settle)

    def cancel(self) -> None:
        """On the loop: cancel the task (a no-op once it is done)."""
        if self.task is not None:
            self.task.cancel()

    def _settle(self, task: asyncio.Task[T]) -> None:
        if task.cancelled():
            self.future.cancel()
            return
        exc = task.exception()  # retrieving it also silences "exception never retrieved"
        if exc is not None:
            self._settle_exception(exc)
            return
        # InvalidStateError: the caller cancelled the future meanwhile.
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            self.future.set_result(task.result())

    def _settle_exception(self, exc: BaseException) -> None:
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            self.future.set_exception(exc)


def _as_coroutine(awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    if inspect.iscoroutine(awaitable):
        return awaitable
    if not inspect.isawaitable(awaitable):
        hint = " (did you forget to call it?)" if callable(awaitable) else ""
        raise TypeError(f"EventLoopBridge expects an awaitable, got {awaitable!r}{hint}")
    return _await(awaitable)


async def _await(awaitable: Awaitable[T]) -> T:
    # Awaitables that are not coroutines (asyncpg's create_pool() returns a Pool) need a task.
    return await awaitable


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - asyncio.get_running_loop().time())


def _new_event_loop(use_uvloop: bool | None) -> asyncio.AbstractEventLoop:
    if use_uvloop is False:
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:
        if use_uvloop:
            raise ConfigurationError(
                "EventLoopBridge(use_uvloop=True) but uvloop is not installed: "
                "pip install 'ruvon[postgres]' (or pass use_uvloop=None to fall back to asyncio)"
            ) from None
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


# -- the per-process bridge ------------------------------------------------------------------

_process_lock = threading.Lock()
_process_bridge: EventLoopBridge | None = None
# Every open bridge, so a forked child can keep the parent's ones alive (see below).
_live_bridges: weakref.WeakSet[EventLoopBridge] = weakref.WeakSet()
_inherited_bridges: list[EventLoopBridge] = []


def get_process_bridge() -> EventLoopBridge:
    """The bridge of the current process: created on first use, and again after fork or close."""
    global _process_bridge
    with _process_lock:
        bridge = _process_bridge
        if bridge is None or bridge.closed or bridge._pid != os.getpid():
            bridge = _process_bridge = EventLoopBridge(name=f"ruvon-bridge-{os.getpid()}")
        return bridge


def close_process_bridge(timeout: float = 10.0) -> None:
    """Close the current process's bridge, if any (e.g. in ``worker_process_shutdown``)."""
    global _process_bridge
    with _process_lock:
        bridge, _process_bridge = _process_bridge, None
    if bridge is not None:
        bridge.close(timeout)


def _after_fork_in_child() -> None:
    global _process_bridge, _process_lock
    # A parent thread may have held the lock at fork time; in the child it would never be released.
    _process_lock = threading.Lock()
    _process_bridge = None
    # The parent's bridges are unusable here. Keep them reachable anyway: garbage-collecting a
    # loop that still looks "running" (its thread vanished at fork) makes asyncio warn and
    # uvloop log "deallocating a running event loop". Their memory is shared copy-on-write.
    for bridge in list(_live_bridges):
        bridge._closed = True
        _inherited_bridges.append(bridge)
    _live_bridges.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
