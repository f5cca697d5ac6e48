"""Locust users that drive ``ruvon.Client`` against a running cluster (``scripts/loadtest``).

Every task starts a workflow, waits until it settles and reports one Locust request of type
``workflow`` named after its scenario, whose response time is the end-to-end latency::

    eval "$(scripts/cluster env)"
    .venv/bin/locust -f loadtests/locustfile.py --headless -u 20 -r 5 -t 1m ShortAsync FanOut50

Scenarios (user classes, also selectable with ``--tags``):

* ``ShortAsync`` (``short``): BenchAsync3, three ASYNC steps in a row.
* ``FanOut50`` (``fanout``): BenchFanOut50, one PARALLEL step of 50 branches.
* ``ResumeStorm`` (``human``): start ``RUVON_LOADTEST_STORM_SIZE`` BenchHumanResume workflows,
  wait until all pause at their HUMAN_IN_LOOP step, resume them all at once; one request per
  workflow, timed from the resume to completion.
* ``SagaRollback`` (``saga``): BenchSaga, whose last step fails; a success when it ends
  FAILED_ROLLED_BACK, as it should.

Settings (environment): ``RUVON_DATABASE_URL``, ``RUVON_BROKER_URL``,
``RUVON_BROKER_KEY_PREFIX`` as ``scripts/cluster env`` prints them. The workflow types always
come from ``loadtests/workflows/workflow_registry.yaml`` (the workers need not know them: a
workflow runs from the definition snapshot stored when it starts, and the workers import the
step functions from the checkout on their ``PYTHONPATH``). ``RUVON_LOADTEST_TIMEOUT`` (seconds,
default 60) bounds each wait.

Why a loop thread: Locust runs users as gevent greenlets, while the client is asyncio (asyncpg).
Each Locust process runs one asyncio loop (uvloop) with one shared client in a native thread;
a user hands it coroutines and polls for the outcome with ``gevent.sleep``, so the hub keeps
serving the other users meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import gevent
import gevent.event
import gevent.monkey
import uvloop
from locust import User, between, events, tag, task

from ruvon.builder import WorkflowBuilder
from ruvon.client import Client
from ruvon.config import Settings
from ruvon.models import WorkflowStatus

T = TypeVar("T")

REGISTRY = Path(__file__).resolve().parent / "workflows" / "workflow_registry.yaml"
TIMEOUT = float(os.environ.get("RUVON_LOADTEST_TIMEOUT", "60"))
STORM_SIZE = int(os.environ.get("RUVON_LOADTEST_STORM_SIZE", "20"))
_POLL = 0.005


class ScenarioFailed(Exception):
    """A workflow did not end as its scenario expects (Locust records it as the failure)."""


class _Pending:
    """The outcome of a coroutine run on the loop thread, read by a greenlet that polls it.

    Plain attributes rather than a ``concurrent.futures.Future``: gevent patches the locks such a
    future waits on, and those must not be shared between the hub and a foreign thread.
    """

    def __init__(self) -> None:
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None

    async def capture(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            self.result = await coro
        except BaseException as exc:  # handed to the greenlet, which re-raises it
            self.error = exc
        finally:
            self.done = True


class ClientLoop:
    """One asyncio loop in a native thread, with one ``Client`` on it, for a Locust process."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        started = gevent.monkey.get_original("_thread", "start_new_thread")
        started(self.loop.run_forever, ())
        settings = Settings.from_env()
        builder = WorkflowBuilder(REGISTRY, settings=settings)
        self.client = Client(builder, settings=settings)
        self.run(self.client.connect())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop; the calling greenlet yields until it finishes."""
        pending = _Pending()
        self.loop.call_soon_threadsafe(self.loop.create_task, pending.capture(coro))
        deadline = None if timeout is None else time.monotonic() + timeout
        while not pending.done:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"no answer from the client loop within {timeout:g}s")
            gevent.sleep(_POLL)
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[no-any-return]

    def close(self) -> None:
        self.run(self.client.close(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)


_shared: ClientLoop | None = None
_shared_lock = threading.Lock()


def client_loop() -> ClientLoop:
    """The process's loop and client, created on first use (after Locust forked its workers)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ClientLoop()
        return _shared


@events.test_start.add_listener
def _drop_users_without_tasks(environment: Any, **_: object) -> None:
    """Keep only the scenarios ``--tags`` selected: Locust would spawn the others, task-less."""
    selected = [user for user in environment.user_classes if user.tasks]
    if selected:
        environment.user_classes[:] = selected


@events.quitting.add_listener
def _close_client_loop(**_: object) -> None:
    if _shared is not None:
        _shared.close()


async def start_and_wait(
    client: Client, workflow_type: str, expected: WorkflowStatus, data: dict[str, Any]
) -> None:
    """Start one workflow and wait until it settles in ``expected`` (else ScenarioFailed)."""
    record = await client.start(workflow_type, data, check_broker=False)
    done = await client.wait(record.id, timeout=TIMEOUT)
    if done.status is not expected:
        raise ScenarioFailed(
            f"{workflow_type} {record.id} ended {done.status}, expected {expected}: {done.error}"
        )


class WorkflowUser(User):
    """A base for the scenarios: ``report`` times a workflow and fires the Locust request."""

    abstract = True
    wait_time = between(0.0, 0.1)

    def report(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            client_loop().run(coro, timeout=TIMEOUT + 10)
        except Exception as exc:
            error = exc
        self.environment.events.request.fire(
            request_type="workflow",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=error,
            context={},
        )


class ShortAsync(WorkflowUser):
    """Three ASYNC steps in a row: the per-step dispatch cost under load."""

    @tag("short")
    @task
    def short_async(self) -> None:
        client = client_loop().client
        self.report(
            "short_async_3",
            start_and_wait(client, "BenchAsync3", WorkflowStatus.COMPLETED, {}),
        )


class FanOut50(WorkflowUser):
    """One PARALLEL step of 50 branches: the join under concurrent branch completions."""

    @tag("fanout")
    @task
    def fan_out_50(self) -> None:
        client = client_loop().client
        self.report(
            "fan_out_50", start_and_wait(client, "BenchFanOut50", WorkflowStatus.COMPLETED, {})
        )


class SagaRollback(WorkflowUser):
    """A saga whose last step fails: compensation is the expected outcome."""

    @tag("saga")
    @task
    def saga_rollback(self) -> None:
        client = client_loop().client
        self.report(
            "saga_rollback",
            start_and_wait(client, "BenchSaga", WorkflowStatus.FAILED_ROLLED_BACK, {}),
        )


class ResumeStorm(WorkflowUser):
    """Many workflows paused for a person, all resumed at once."""

    @tag("human")
    @task
    def resume_storm(self) -> None:
        loop = client_loop()
        try:
            ids = loop.run(_start_paused(loop.client, STORM_SIZE), timeout=TIMEOUT + 10)
        except Exception as exc:
            self.environment.events.request.fire(
                request_type="workflow",
                name="resume_storm_setup",
                response_time=0,
                response_length=0,
                exception=exc,
                context={},
            )
            return
        # One greenlet per workflow, released together: the resumes hit the cluster at once.
        gate = gevent.event.Event()

        def resume_one(workflow_id: str) -> None:
            gate.wait()
            self.report("resume_storm", _resume_and_wait(loop.client, workflow_id))

        greenlets = [gevent.spawn(resume_one, workflow_id) for workflow_id in ids]
        gate.set()
        gevent.joinall(greenlets)


async def _start_paused(client: Client, count: int) -> list[str]:
    """Start ``count`` BenchHumanResume workflows and wait until every one waits for a person."""
    records = await asyncio.gather(
        *(client.start("BenchHumanResume", {}, check_broker=False) for _ in range(count))
    )
    waiting = await asyncio.gather(*(client.wait(r.id, timeout=TIMEOUT) for r in records))
    for record in waiting:
        if record.status is not WorkflowStatus.WAITING_HUMAN:
            raise ScenarioFailed(f"BenchHumanResume {record.id} is {record.status}, not waiting")
    return [record.id for record in waiting]


async def _resume_and_wait(client: Client, workflow_id: str) -> None:
    await client.resume(workflow_id, {"approved": True})
    done = await client.wait(workflow_id, timeout=TIMEOUT)
    if done.status is not WorkflowStatus.COMPLETED:
        raise ScenarioFailed(f"BenchHumanResume {workflow_id} ended {done.status}: {done.error}")
