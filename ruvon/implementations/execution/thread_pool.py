"""Run sync step functions on a thread pool so PARALLEL branches and ASYNC steps overlap."""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ruvon.definitions.imports import function_shape
from ruvon.implementations.execution.interrupt import AttemptGuard, await_attempt
from ruvon.implementations.execution.sync import run_async_function, timeout_error
from ruvon.providers.execution import StepCall


class ThreadPoolExecutionProvider:
    """A bounded thread pool; async step functions run on the caller's event loop instead."""

    name = "thread_pool"

    def __init__(self, max_workers: int = 10) -> None:
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="ruvon-step")
        return self._pool

    async def execute(self, call: StepCall) -> Any:
        shape = function_shape(call.function)
        kwargs = shape.select_kwargs(dict(call.kwargs))
        if shape.is_async:
            return await run_async_function(call, kwargs)
        loop = asyncio.get_running_loop()
        if call.timeout is None:
            job = functools.partial(call.function, call.state, call.context, **kwargs)
            return await loop.run_in_executor(self._executor(), job)
        # Interrupted at the timeout and waited for: its retry never overlaps it.
        guard = AttemptGuard()
        job = functools.partial(guard.run, call.function, call.state, call.context, **kwargs)
        future = loop.run_in_executor(self._executor(), job)
        return await await_attempt(future, guard, call.timeout, timeout_error(call))

    def close(self) -> None:
        """Stop accepting work; running steps finish in the background."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
