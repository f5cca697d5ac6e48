"""Carrier threads on real ``celery worker`` subprocesses: one pool process, several runs.

A run of a workflow without step timeouts is handed over to a carrier thread after its claim,
so one prefork pool process carries up to ``RUVON_PROCESS_RUNS`` of them at once; a run that
may need the time-limit signal stays on the task thread, one at a time; a pool process that
exits (a warm shutdown) lets its carried runs finish first.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ruvon.models import WorkflowStatus
from ruvon.testing.cluster import LocalCluster
from tests.integration.distributed_support import (
    WAIT,
    client_of,
    fetch,
    started_cluster,
)
from tests.integration.test_distributed_flow_control import _calls, _peak

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TERMINAL = {status for status in WorkflowStatus if status.is_terminal}


def _start_all(cluster: LocalCluster, workflow_type: str, customer: str, n: int) -> list[object]:
    async def scenario() -> list[object]:
        async with client_of(cluster) as client:
            started = [await client.start(workflow_type, {"customer": customer, "hold": 0.5})
                       for _ in range(n)]  # fmt: skip
            return [await client.wait(r.id, timeout=WAIT, until=TERMINAL) for r in started]

    return asyncio.run(scenario())


def test_one_pool_process_carries_several_runs_but_timed_ones_one_at_a_time() -> None:
    with started_cluster(workers=1, concurrency=1, env={"RUVON_PROCESS_RUNS": "3"}) as cluster:
        (worker,) = cluster.workers
        (pid,) = worker.child_pids()
        open_done = _start_all(cluster, "OpenCalls", "open", 6)
        timed_done = _start_all(cluster, "TimedCalls", "timed", 3)
        runs = asyncio.run(
            fetch(cluster, "SELECT attempt, status FROM step_runs WHERE kind = 'step'")
        )
        assert worker.child_pids() == [pid]  # the same process ran all of them
        open_calls, timed_calls = _calls(cluster, "open"), _calls(cluster, "timed")
    assert all(d.status is WorkflowStatus.COMPLETED for d in [*open_done, *timed_done])  # type: ignore[attr-defined]
    assert len(open_calls) == 6 and len(timed_calls) == 3
    assert _peak(open_calls) == 3  # the task thread's own and two carried
    assert _peak(timed_calls) == 1  # SIGALRM reaches only the task thread
    assert {tuple(r) for r in runs} == {(1, "DONE")}


def test_one_run_at_a_time_when_asked() -> None:
    with started_cluster(workers=1, concurrency=1, env={"RUVON_PROCESS_RUNS": "1"}) as cluster:
        done = _start_all(cluster, "OpenCalls", "one", 3)
        calls = _calls(cluster, "one")
    assert all(d.status is WorkflowStatus.COMPLETED for d in done)  # type: ignore[attr-defined]
    assert len(calls) == 3 and _peak(calls) == 1


def test_a_warm_shutdown_lets_the_carried_runs_finish() -> None:
    # Four runs a process: three carriers, so the three runs are all carried and the task
    # thread is idle when the shutdown comes (Celery itself waits only for a running task).
    with started_cluster(workers=1, concurrency=1, env={"RUVON_PROCESS_RUNS": "4"}) as cluster:
        (worker,) = cluster.workers

        async def scenario() -> list[str]:
            async with client_of(cluster) as client:
                ids = [(await client.start("OpenCalls", {"customer": "warm", "hold": 1.5})).id
                       for _ in range(3)]  # fmt: skip
                deadline = time.monotonic() + WAIT
                while len(await fetch(cluster, _RUNNING)) < 3:  # all three carried
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                return ids

        ids = asyncio.run(scenario())
        assert worker.stop() == 0  # warm shutdown (SIGTERM): finish, then exit
        rows = asyncio.run(
            fetch(cluster, "SELECT status FROM workflow_executions WHERE id = ANY($1)", ids)
        )
        calls = _calls(cluster, "warm")
    assert [r[0] for r in rows] == ["COMPLETED"] * 3  # no lease had to lapse
    assert len(calls) == 3 and _peak(calls) == 3


_RUNNING = "SELECT id FROM step_runs WHERE kind = 'step' AND status = 'RUNNING'"
