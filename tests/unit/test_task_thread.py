"""TaskThread and its carriers: sync calls served by the task's thread, or handed over."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Iterator

import pytest

from ruvon.bridge import EventLoopBridge
from ruvon.definitions.definition import WorkflowDefinition
from ruvon.definitions.schema import WorkflowFile
from ruvon.implementations.execution.carriers import RunCarriers
from ruvon.implementations.execution.task_thread import (
    HANDED_OVER,
    TaskThread,
    current_task_thread,
)


@pytest.fixture
def bridge() -> Iterator[EventLoopBridge]:
    bridge = EventLoopBridge(name="task-thread-test")
    yield bridge
    bridge.close()


def _thread_name() -> str:
    return threading.current_thread().name


async def _run(calls: int, hand_over_after: int | None, log: list[str]) -> str:
    """Make ``calls`` sync calls, asking for a hand-over before call ``hand_over_after``."""
    thread = current_task_thread()
    assert thread is not None
    for i in range(calls):
        if i == hand_over_after:
            thread.hand_over()
        log.append(await thread.call(_thread_name))
    return "done"


async def _held(release: threading.Event) -> None:
    """A run that asks to be handed over, then waits in a sync call until ``release``."""
    thread = current_task_thread()
    assert thread is not None
    thread.hand_over()
    await thread.call(release.wait, 5)


def test_without_carriers_every_call_runs_in_the_task_thread(bridge: EventLoopBridge) -> None:
    log: list[str] = []
    assert TaskThread().run(bridge, _run(3, 1, log)) == "done"
    assert log == [threading.current_thread().name] * 3  # the request is ignored


def test_a_hand_over_moves_the_rest_of_the_run_to_a_carrier(bridge: EventLoopBridge) -> None:
    carriers = RunCarriers(1)
    log: list[str] = []
    assert TaskThread().run(bridge, _run(4, 2, log), carriers) is HANDED_OVER
    assert carriers.drain(5)
    me = threading.current_thread().name
    assert log == [me, me, "ruvon-run-carrier", "ruvon-run-carrier"]
    assert carriers.busy == 0


def test_with_every_carrier_busy_the_task_thread_keeps_its_run(bridge: EventLoopBridge) -> None:
    carriers = RunCarriers(1)
    release = threading.Event()
    assert TaskThread().run(bridge, _held(release), carriers) is HANDED_OVER
    assert carriers.busy == 1
    log: list[str] = []
    assert TaskThread().run(bridge, _run(2, 0, log), carriers) == "done"
    assert log == [threading.current_thread().name] * 2
    release.set()
    assert carriers.drain(5) and carriers.busy == 0


def test_drain_waits_for_carried_runs_and_gives_up_at_its_timeout(
    bridge: EventLoopBridge,
) -> None:
    carriers = RunCarriers(2)
    release = threading.Event()
    assert TaskThread().run(bridge, _held(release), carriers) is HANDED_OVER
    started = time.monotonic()
    assert not carriers.drain(0.2)  # still carried: the caller leaves it to its lease
    assert time.monotonic() - started >= 0.2
    release.set()
    assert carriers.drain(5)


def test_a_carried_run_that_fails_is_logged(
    bridge: EventLoopBridge, caplog: pytest.LogCaptureFixture
) -> None:
    carriers = RunCarriers(1)

    async def failing() -> None:
        thread = current_task_thread()
        assert thread is not None
        thread.hand_over()
        await thread.call(_thread_name)
        await asyncio.sleep(0)
        raise ValueError("the step's own failure")

    with caplog.at_level(logging.ERROR, logger="ruvon.worker"):
        assert TaskThread().run(bridge, failing(), carriers) is HANDED_OVER
        assert carriers.drain(5)
    assert any("the step's own failure" in r.getMessage() for r in caplog.records)


def test_carriers_need_at_least_one_thread() -> None:
    with pytest.raises(ValueError, match="at least one carrier"):
        RunCarriers(0)


def _definition(steps: list[dict[str, object]]) -> WorkflowDefinition:
    spec = WorkflowFile.model_validate({"workflow_type": "T", "steps": steps})
    return WorkflowDefinition.build(spec, state_model=dict, source_file=None)


@pytest.mark.parametrize(
    ("steps", "times_out"),
    [
        ([{"name": "A", "function": "m.f"}], False),
        ([{"name": "A", "function": "m.f", "timeout": 2}], True),
        (
            [{"name": "P", "type": "PARALLEL", "tasks": [
                {"name": "b", "function": "m.f", "timeout": 1}]}],
            True,
        ),
        (
            [{"name": "L", "type": "LOOP", "mode": "ITERATE", "iterate_over": "items",
              "loop_body": [{"name": "Body", "function": "m.f", "timeout": 1}]}],
            True,
        ),
        (
            [{"name": "A", "function": "m.f", "dynamic_injection": {"rules": [
                {"condition_key": "x", "value_match": 1, "action": "INSERT_AFTER_CURRENT",
                 "steps_to_insert": [{"name": "Extra", "function": "m.f", "timeout": 1}]}]}}],
            True,
        ),
        ([{"name": "H", "type": "HTTP", "http_config": {"url": "http://x", "timeout": 5}}], False),
    ],
)  # fmt: skip
def test_a_definition_knows_whether_any_step_has_a_timeout(
    steps: list[dict[str, object]], times_out: bool
) -> None:
    assert _definition(steps).has_step_timeouts is times_out


_TASK: contextvars.ContextVar[str] = contextvars.ContextVar("test_task", default="none")


def test_a_carried_run_keeps_the_task_threads_context(bridge: EventLoopBridge) -> None:
    """What the task set in its thread's context (Celery's task id for the log records) is
    what the carrier's calls see too."""
    carriers = RunCarriers(1)
    seen: list[str] = []

    async def carried() -> None:
        thread = current_task_thread()
        assert thread is not None
        thread.hand_over()
        seen.append(await thread.call(_TASK.get))

    token = _TASK.set("task-42")
    try:
        assert TaskThread().run(bridge, carried(), carriers) is HANDED_OVER
    finally:
        _TASK.reset(token)
    assert carriers.drain(5)
    assert seen == ["task-42"]


def test_carrier_threads_are_started_once_and_reused(bridge: EventLoopBridge) -> None:
    carriers = RunCarriers(2)
    idents: list[int] = []

    async def carried() -> None:
        thread = current_task_thread()
        assert thread is not None
        thread.hand_over()
        idents.append(await thread.call(threading.get_ident))

    for _ in range(4):
        assert TaskThread().run(bridge, carried(), carriers) is HANDED_OVER
        assert carriers.drain(5)
    assert len(idents) == 4 and len(set(idents)) == 1  # one at a time: the first thread each time
    assert threading.get_ident() not in idents


def test_a_run_knows_once_a_carrier_serves_it(bridge: EventLoopBridge) -> None:
    carriers = RunCarriers(1)
    seen: list[bool] = []

    async def run() -> None:
        thread = current_task_thread()
        assert thread is not None
        await thread.call(_thread_name)
        seen.append(thread.carried)
        thread.hand_over()
        await thread.call(_thread_name)
        seen.append(thread.carried)

    assert TaskThread().run(bridge, run(), carriers) is HANDED_OVER
    assert carriers.drain(5)
    assert seen == [False, True]
