"""EventLoopBridge: sync callers, one private loop, exceptions, timeouts, close and fork."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import logging
import os
import signal
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ruvon import bridge as bridge_module
from ruvon.bridge import EventLoopBridge, close_process_bridge, get_process_bridge
from ruvon.errors import (
    BridgeClosed,
    BridgeError,
    BridgeForkError,
    ConcurrencyConflict,
    ConfigurationError,
)


class CustomFailure(Exception):
    """A user-defined exception with a payload, to prove nothing gets re-wrapped."""

    def __init__(self, code: int) -> None:
        super().__init__(f"custom failure {code}")
        self.code = code


@pytest.fixture(params=["asyncio", "uvloop"])
def bridge(request: pytest.FixtureRequest) -> Iterator[EventLoopBridge]:
    """A fresh bridge on each loop implementation, always closed afterwards."""
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    instance = EventLoopBridge(
        name=f"test-bridge-{uuid.uuid4().hex[:8]}", use_uvloop=request.param == "uvloop"
    )
    yield instance
    instance.close()


def bridge_threads(bridge: EventLoopBridge) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == bridge.name]


async def value(result: Any) -> Any:
    return result


def run_in_fork(child: Callable[[], str]) -> str:
    """Run ``child`` in a forked process and return the string it produced (or its error)."""
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a multi-threaded process may deadlock the child; the
        # child here only touches the bridge module and exits with os._exit.
        warnings.filterwarnings(
            "ignore",
            message=r".*use of fork\(\) may lead to deadlocks",
            category=DeprecationWarning,
        )
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.close(read_fd)
            try:
                answer = child()
            except BaseException as exc:
                answer = f"child crashed: {type(exc).__name__}: {exc}"
            os.write(write_fd, answer.encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 4096):
        chunks.append(chunk)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return b"".join(chunks).decode()


# -- results and exceptions ------------------------------------------------------------------


def test_run_returns_the_result_computed_on_the_loop_thread(bridge: EventLoopBridge) -> None:
    async def where() -> tuple[int, bool]:
        return threading.get_ident(), asyncio.get_running_loop() is bridge.loop

    loop_thread, on_bridge_loop = bridge.run(where(), timeout=5)

    assert on_bridge_loop
    assert loop_thread != threading.get_ident()


@pytest.mark.parametrize(
    "error",
    [CustomFailure(7), ValueError("bad value"), ConcurrencyConflict("wf-1", 3)],
    ids=["custom", "ValueError", "RuvonError"],
)
def test_exceptions_cross_threads_with_their_original_type(
    bridge: EventLoopBridge, error: Exception
) -> None:
    async def fail() -> None:
        raise error

    with pytest.raises(type(error)) as info:
        bridge.run(fail(), timeout=5)

    assert type(info.value) is type(error)
    assert info.value is error  # the very object: attributes (code, workflow_id) survive


def test_the_coroutines_own_timeout_error_is_not_mistaken_for_the_bridges(
    bridge: EventLoopBridge,
) -> None:
    async def fail() -> None:
        raise TimeoutError("the coroutine's own")

    with pytest.raises(TimeoutError, match="the coroutine's own"):
        bridge.run(fail(), timeout=5)


def test_non_coroutine_awaitables_are_accepted(bridge: EventLoopBridge) -> None:
    class Pending:  # shaped like asyncpg's Pool: awaitable, not a coroutine
        def __await__(self) -> Any:
            return value(42).__await__()

    assert bridge.run(Pending(), timeout=5) == 42


def test_a_non_awaitable_is_a_type_error(bridge: EventLoopBridge) -> None:
    with pytest.raises(TypeError, match="forget to call it"):
        bridge.run(value, timeout=5)  # type: ignore[arg-type]


def test_the_callers_contextvars_are_visible_to_the_coroutine(bridge: EventLoopBridge) -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
    request_id.set("req-17")

    async def read() -> str:
        return request_id.get()

    assert bridge.run(read(), timeout=5) == "req-17"


# -- timeouts and cancellation ---------------------------------------------------------------


def test_a_timeout_cancels_the_coroutine_and_raises_timeout_error(
    bridge: EventLoopBridge,
) -> None:
    unwound = asyncio.Event()
    saw: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            saw.append("cancelled")
            raise
        finally:
            unwound.set()

    started = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        bridge.run(slow(), timeout=0.1)

    assert type(info.value) is TimeoutError
    assert time.monotonic() - started < 5
    assert saw == ["cancelled"]
    # run() waited for the coroutine to unwind, so its finally already ran.
    assert bridge.run(asyncio.wait_for(unwound.wait(), 1), timeout=5) is True
    assert bridge.run(value("still usable"), timeout=5) == "still usable"


def test_cancelling_a_submitted_future_cancels_the_coroutine(bridge: EventLoopBridge) -> None:
    running = threading.Event()
    unwound = threading.Event()

    async def slow() -> None:
        running.set()
        try:
            await asyncio.sleep(60)
        finally:
            unwound.set()

    future = bridge.submit(slow())
    assert running.wait(5)
    assert future.cancel()

    assert unwound.wait(5)


def test_a_future_cancelled_before_its_task_starts_closes_the_coroutine(
    bridge: EventLoopBridge,
) -> None:
    entered = threading.Event()
    gate = threading.Event()

    async def hold_the_loop() -> None:
        entered.set()
        gate.wait(5)  # deliberately blocks the loop so the next submission cannot start

    bridge.submit(hold_the_loop())
    assert entered.wait(5)
    never_started = value("never")
    future = bridge.submit(never_started)
    assert future.cancel()
    gate.set()

    assert bridge.run(value("flushed"), timeout=5) == "flushed"
    assert inspect.getcoroutinestate(never_started) == inspect.CORO_CLOSED


class Interrupted(Exception):
    """Stands in for Celery's SoftTimeLimitExceeded, raised by a signal handler."""


def test_an_interrupted_run_cancels_its_coroutine(bridge: EventLoopBridge) -> None:
    unwound = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            unwound.set()

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, interrupt)
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR1))
    try:
        timer.start()
        with pytest.raises(Interrupted):
            bridge.run(slow(), timeout=30)
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)

    assert unwound.wait(5)


def test_submit_returns_a_future_with_the_result(bridge: EventLoopBridge) -> None:
    assert bridge.submit(value("submitted")).result(timeout=5) == "submitted"


# -- concurrency -----------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_a_thousand_concurrent_runs_from_sixteen_threads(bridge: EventLoopBridge) -> None:
    in_flight = 0
    most_in_flight = 0

    async def double(number: int) -> int:
        nonlocal in_flight, most_in_flight  # only touched on the loop thread
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        try:
            await asyncio.sleep(0.002 if number % 10 == 0 else 0)
            return number * 2
        finally:
            in_flight -= 1

    def call(number: int) -> tuple[int, int]:
        return number, bridge.run(double(number), timeout=5)

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(1000)))

    assert results == [(number, number * 2) for number in range(1000)]
    assert most_in_flight > 1  # the calls really overlapped on the loop


# -- misuse ----------------------------------------------------------------------------------


def test_run_from_the_loop_thread_raises_bridge_error(bridge: EventLoopBridge) -> None:
    async def reenter() -> BaseException | None:
        inner = value(1)
        try:
            bridge.run(inner)
        except BaseException as exc:
            assert inspect.getcoroutinestate(inner) == inspect.CORO_CLOSED
            return exc
        return None

    error = bridge.run(reenter(), timeout=5)

    assert type(error) is BridgeError
    assert "await" in str(error)


def test_close_from_the_loop_thread_raises_bridge_error(bridge: EventLoopBridge) -> None:
    async def close_from_inside() -> BaseException | None:
        try:
            bridge.close()
        except BaseException as exc:
            return exc
        return None

    error = bridge.run(close_from_inside(), timeout=5)

    assert type(error) is BridgeError
    assert not bridge.closed


def test_use_after_close_raises_bridge_closed(bridge: EventLoopBridge) -> None:
    bridge.close()
    rejected = value(1)

    with pytest.raises(BridgeClosed):
        bridge.run(rejected, timeout=5)
    with pytest.raises(BridgeClosed):
        bridge.submit(value(2))
    with pytest.raises(BridgeClosed):
        bridge.on_close(lambda: value(None))

    assert inspect.getcoroutinestate(rejected) == inspect.CORO_CLOSED  # no "never awaited"


# -- close -----------------------------------------------------------------------------------


def test_close_cancels_pending_tasks_then_runs_closers_in_reverse_order(
    bridge: EventLoopBridge,
) -> None:
    events: list[str] = []
    sleeping = threading.Event()

    async def long_sleep() -> None:
        sleeping.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            events.append("sleep cancelled")
            raise

    def closer(name: str) -> Callable[[], Any]:
        async def close() -> None:
            events.append(f"closer {name}")

        return close

    pending = bridge.submit(long_sleep())
    for name in ("pool", "cache", "metrics"):
        bridge.on_close(closer(name))
    assert sleeping.wait(5)

    bridge.close()

    assert events == ["sleep cancelled", "closer metrics", "closer cache", "closer pool"]
    assert pending.cancelled()
    assert not asyncio.all_tasks(bridge.loop)


def test_a_run_blocked_at_close_raises_bridge_closed(bridge: EventLoopBridge) -> None:
    sleeping = threading.Event()
    outcome: list[BaseException] = []

    async def long_sleep() -> None:
        sleeping.set()
        await asyncio.sleep(3600)

    def caller() -> None:
        try:
            bridge.run(long_sleep())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=caller)
    thread.start()
    assert sleeping.wait(5)
    bridge.close()
    thread.join(5)

    assert [type(exc) for exc in outcome] == [BridgeClosed]


def test_a_failing_closer_is_logged_and_the_others_still_run(
    bridge: EventLoopBridge, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    async def good() -> None:
        ran.append("good")

    async def bad() -> None:
        raise RuntimeError("closer exploded")

    bridge.on_close(good)
    bridge.on_close(bad)
    with caplog.at_level(logging.ERROR, logger="ruvon.bridge"):
        bridge.close()

    assert ran == ["good"]
    assert "closer exploded" in caplog.text


def test_close_is_idempotent_and_stops_the_thread(bridge: EventLoopBridge) -> None:
    closes: list[int] = []

    async def count() -> None:
        closes.append(1)

    bridge.on_close(count)
    [thread] = bridge_threads(bridge)
    assert thread.is_alive() and thread.daemon

    bridge.close()
    bridge.close()
    with bridge:
        pass  # __exit__ closes a third time

    assert closes == [1]
    assert bridge.closed
    assert not thread.is_alive()
    assert bridge.loop.is_closed()


def test_a_loop_stopped_behind_the_bridges_back_closes_it(
    bridge: EventLoopBridge, caplog: pytest.LogCaptureFixture
) -> None:
    [thread] = bridge_threads(bridge)
    with caplog.at_level(logging.ERROR, logger="ruvon.bridge"):
        bridge.loop.call_soon_threadsafe(bridge.loop.stop)
        thread.join(5)

    assert not thread.is_alive()
    assert bridge.closed
    assert "without close()" in caplog.text
    with pytest.raises(BridgeClosed):
        bridge.run(value(1), timeout=5)


def test_context_manager_closes(bridge: EventLoopBridge) -> None:
    with bridge as entered:
        assert entered.run(value("in"), timeout=5) == "in"
    assert bridge.closed


def test_use_uvloop_false_gives_a_plain_asyncio_loop() -> None:
    with EventLoopBridge(name="test-plain-asyncio", use_uvloop=False) as plain:
        assert type(plain.loop).__module__.startswith("asyncio")


def test_uvloop_is_the_default_when_installed() -> None:
    uvloop = pytest.importorskip("uvloop")
    with EventLoopBridge(name="test-default-loop") as default:
        assert isinstance(default.loop, uvloop.Loop)


def test_without_uvloop_the_default_falls_back_and_requiring_it_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail

    with EventLoopBridge(name="test-no-uvloop") as fallback:
        assert type(fallback.loop).__module__.startswith("asyncio")
    with pytest.raises(ConfigurationError, match="uvloop is not installed"):
        EventLoopBridge(name="test-uvloop-required", use_uvloop=True)


# -- fork ------------------------------------------------------------------------------------


def test_use_in_a_forked_child_raises_bridge_fork_error(bridge: EventLoopBridge) -> None:
    assert bridge.run(value("parent before"), timeout=5) == "parent before"

    def child() -> str:
        try:
            bridge.run(value("child"), timeout=5)
        except BaseException as exc:
            error = exc
        else:
            return "no error"
        bridge.close()  # must not touch the parent's loop, nor raise
        hint = "worker_process_init" in str(error)
        return f"{type(error).__name__} hint={hint} closed={bridge.closed}"

    assert run_in_fork(child) == "BridgeForkError hint=True closed=True"
    assert issubclass(BridgeForkError, BridgeError)
    # The parent's bridge is untouched by the child.
    assert bridge.run(value("parent after"), timeout=5) == "parent after"


@pytest.fixture
def no_process_bridge() -> Iterator[None]:
    close_process_bridge()
    yield
    close_process_bridge()


@pytest.mark.usefixtures("no_process_bridge")
def test_get_process_bridge_is_one_per_process_and_renewed_after_fork() -> None:
    first = get_process_bridge()
    assert get_process_bridge() is first

    def child() -> str:
        renewed = get_process_bridge()
        answer = (
            f"new={renewed is not first} same={get_process_bridge() is renewed} "
            f"works={renewed.run(value(os.getpid()), timeout=5) == os.getpid()} "
            f"inherited_closed={first.closed}"
        )
        close_process_bridge()
        return answer

    assert run_in_fork(child) == "new=True same=True works=True inherited_closed=True"
    assert get_process_bridge() is first and not first.closed

    close_process_bridge()
    assert first.closed
    assert get_process_bridge() is not first


@pytest.mark.usefixtures("no_process_bridge")
def test_get_process_bridge_is_thread_safe() -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        bridges = list(pool.map(lambda _: get_process_bridge(), range(32)))
    assert len({id(instance) for instance in bridges}) == 1


def test_the_module_exports_the_documented_api() -> None:
    assert bridge_module.__all__ == [
        "EventLoopBridge",
        "close_process_bridge",
        "get_process_bridge",
    ]
