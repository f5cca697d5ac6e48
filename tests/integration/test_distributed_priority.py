"""Priority on real ``celery worker`` subprocesses: a backlog of low-priority runs waits in its
Redis lane while runs of a higher priority, stored later, are taken first."""

from __future__ import annotations

import asyncio
import time

import pytest

from ruvon.models import WorkflowStatus
from ruvon.testing.cluster import LocalCluster
from tests.integration.distributed_support import QUEUE, WAIT, client_of, fetch, started_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

LOW, HIGH, MIDDLE = 24, 8, 4
TERMINAL = {status for status in WorkflowStatus if status.is_terminal}


async def _queued_on(cluster: LocalCluster, queue: str, count: int) -> list[tuple[int, int]]:
    """Wait until ``count`` runs are QUEUED on ``queue``; their (priority, count) rows."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        rows = await fetch(
            cluster,
            "SELECT priority, count(*) FROM step_runs WHERE queue = $1 AND status = 'QUEUED'"
            " GROUP BY priority ORDER BY priority",
            queue,
        )
        if sum(row[1] for row in rows) >= count:
            return [(row[0], row[1]) for row in rows]
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} runs never queued on {queue}")


def test_runs_of_a_higher_priority_overtake_a_backlog() -> None:
    with started_cluster(queues=[QUEUE], workers=1) as cluster:

        async def scenario() -> dict[int, list[float]]:
            async with client_of(cluster) as client:
                # Nobody consumes `backlog` yet: every run of it waits in Redis.
                low = [await client.start("Backlog", {}) for _ in range(LOW)]
                high = [await client.start("Backlog", {}, priority=9) for _ in range(HIGH)]
                middle = [await client.start("Backlog", {}, priority=4) for _ in range(MIDDLE)]
                lanes = await _queued_on(cluster, "backlog", LOW + HIGH + MIDDLE)
                assert lanes == [(0, LOW), (4, MIDDLE), (9, HIGH)]  # the runs carry it
                await asyncio.to_thread(cluster.start_worker, ["backlog"], concurrency=1)
                finished: dict[int, list[float]] = {0: [], 4: [], 9: []}
                for record in [*low, *high, *middle]:
                    done = await client.wait(record.id, timeout=WAIT, until=TERMINAL)
                    assert done.status is WorkflowStatus.COMPLETED, done.error
                    assert done.priority == record.priority
                    assert done.completed_at is not None
                    finished[done.priority].append(done.completed_at.timestamp())
                return finished

        finished = asyncio.run(scenario())
    # One worker process, all messages waiting when it starts: it pops the urgent lane dry
    # first, then the middle one, then the backlog, whatever the order they were sent in.
    assert max(finished[9]) < min(finished[4])
    assert max(finished[4]) < min(finished[0])


def test_a_chain_of_low_priority_steps_yields_to_more_urgent_messages() -> None:
    """One worker process carries a 30-step chain on in one task (its budget allows 10 s): once
    urgent workflows wait in its queue, the chain stops continuing and announces its next step
    in its own lane, so the urgent ones run first."""
    # One run at a time: the chain holds the process's only place (with carrier threads the
    # task thread would take the urgent messages beside the chain, and nothing would wait).
    env = {
        "RUVON_CONTINUE_SECONDS": "10",
        "RUVON_WORKER_PREFETCH": "1",
        "RUVON_PROCESS_RUNS": "1",
    }
    with started_cluster(env, queues=[QUEUE], workers=1, concurrency=1) as cluster:

        async def scenario() -> tuple[float, list[float], list[bool]]:
            async with client_of(cluster) as client:
                chain = await client.start("LongChain", {})
                await _step_done(cluster, chain.id, "Nap_2")
                urgent = [
                    await client.start("AsyncChain", {"counter": 0}, priority=9) for _ in range(4)
                ]
                done = [
                    await client.wait(record.id, timeout=WAIT, until=TERMINAL)
                    for record in [chain, *urgent]
                ]
                continued = await fetch(
                    cluster,
                    "SELECT started_at = created_at FROM step_runs WHERE workflow_id = $1"
                    " ORDER BY id",
                    chain.id,
                )
            assert all(d.status is WorkflowStatus.COMPLETED for d in done), done
            stamps = [d.completed_at.timestamp() for d in done if d.completed_at is not None]
            return stamps[0], stamps[1:], [bool(row[0]) for row in continued]

        chain_done, urgent_done, continued = asyncio.run(scenario())
    assert max(urgent_done) < chain_done
    assert continued.count(False) >= 2  # its first message, and at least one step after yielding


async def _step_done(cluster: LocalCluster, workflow_id: str, step: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        rows = await fetch(
            cluster,
            "SELECT 1 FROM step_runs WHERE workflow_id = $1 AND step_name = $2 AND status = 'DONE'",
            workflow_id,
            step,
        )
        if rows:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{step} of {workflow_id} never finished")
