"""Stopping a sync step body in another thread (ruvon.implementations.execution.interrupt)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ruvon.implementations.execution.interrupt import AttemptGuard, await_attempt
from ruvon.implementations.execution.time_limit import AttemptInterrupted


def _spin(ended: threading.Event, seconds: float = 5.0) -> str:
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sum(range(100))
        return "finished"
    finally:
        ended.set()


async def test_a_body_past_its_timeout_is_interrupted_and_waited_for() -> None:
    guard, ended = AttemptGuard(), threading.Event()
    with ThreadPoolExecutor(1) as pool:
        future = asyncio.get_running_loop().run_in_executor(pool, guard.run, _spin, ended)
        with pytest.raises(TimeoutError, match="too slow"):
            await await_attempt(future, guard, 0.05, TimeoutError("too slow"))
        assert ended.is_set()  # it had returned when the timeout was raised
        assert isinstance(future.exception(), AttemptInterrupted)


async def test_an_interrupt_never_reaches_the_next_job_of_a_pool_thread() -> None:
    guard = AttemptGuard()
    with ThreadPoolExecutor(1) as pool:
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(pool, guard.run, lambda: "quick") == "quick"
        guard.interrupt()  # too late: the body has ended, nothing is sent
        ended = threading.Event()
        assert await loop.run_in_executor(pool, _spin, ended, 0.2) == "finished"


async def test_a_body_interrupted_before_it_starts_never_runs() -> None:
    guard, ran = AttemptGuard(), threading.Event()
    guard.interrupt()
    with ThreadPoolExecutor(1) as pool:
        future = asyncio.get_running_loop().run_in_executor(pool, guard.run, ran.set)
        with pytest.raises(AttemptInterrupted):
            await future
    assert not ran.is_set() and guard.interrupted


async def test_a_cancelled_wait_still_waits_for_the_body_to_end() -> None:
    guard, ended = AttemptGuard(), threading.Event()
    with ThreadPoolExecutor(1) as pool:
        future = asyncio.get_running_loop().run_in_executor(pool, guard.run, _spin, ended)
        waiting = asyncio.ensure_future(await_attempt(future, guard, 60, TimeoutError()))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert ended.is_set()
