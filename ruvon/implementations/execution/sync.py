"""Run step functions inline, in the caller's thread (PARALLEL branches run one by one)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any

from ruvon.definitions.imports import function_shape
from ruvon.errors import StepTimeoutError
from ruvon.implementations.execution.interrupt import AttemptGuard, await_attempt
from ruvon.providers.execution import StepCall


def timeout_error(call: StepCall) -> StepTimeoutError:
    """The error for an attempt that ran past ``call.timeout``."""
    attempt = getattr(call.context, "attempt", 1)
    return StepTimeoutError(
        f"step '{call.step_name}' exceeded its timeout of {call.timeout:g}s (attempt {attempt})",
        step=call.step_name,
    )


async def run_async_function(call: StepCall, kwargs: dict[str, Any]) -> Any:
    """Await an async step function on the current loop, bounded by its timeout."""
    coroutine = call.function(call.state, call.context, **kwargs)
    if call.timeout is None:
        return await coroutine
    try:
        return await asyncio.wait_for(coroutine, call.timeout)
    except TimeoutError:
        raise timeout_error(call) from None


def _run_in_daemon_thread(
    call: StepCall, kwargs: dict[str, Any], guard: AttemptGuard
) -> Future[Any]:
    # A dedicated daemon thread, so a body that ignores its interrupt never blocks interpreter
    # exit; the guard lets the caller stop it at the timeout (see interrupt.py).
    future: Future[Any] = Future()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(guard.run(call.function, call.state, call.context, **kwargs))
        except BaseException as exc:  # directives and the interrupt included: hand them back
            future.set_exception(exc)

    threading.Thread(target=target, name=f"ruvon-step-{call.step_name}", daemon=True).start()
    return future


class SyncExecutionProvider:
    """Runs each step in the calling thread; a step with a ``timeout`` runs in a watched thread,
    interrupted at the timeout and waited for (so its retry never overlaps it)."""

    name = "sync"

    async def execute(self, call: StepCall) -> Any:
        shape = function_shape(call.function)
        kwargs = shape.select_kwargs(dict(call.kwargs))
        if shape.is_async:
            return await run_async_function(call, kwargs)
        if call.timeout is None:
            return call.function(call.state, call.context, **kwargs)
        guard = AttemptGuard()
        future = asyncio.wrap_future(_run_in_daemon_thread(call, kwargs, guard))
        return await await_attempt(future, guard, call.timeout, timeout_error(call))

    def close(self) -> None:
        """Nothing to release."""


SyncExecutor = SyncExecutionProvider
