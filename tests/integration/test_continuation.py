"""Continue on the worker: the commit that finishes a step claims the workflow's next run for the
same worker, which runs it in the same task (no broker message), within its budget.

Real ``celery worker`` subprocesses, PostgreSQL and Redis. A run taken by the committing worker
is inserted already claimed, so its ``started_at`` is its ``created_at`` (the same statement);
a run that went through the broker is claimed later, by whichever worker got the message.
"""

from __future__ import annotations

import asyncio

import pytest

from ruvon.models import WorkflowStatus
from ruvon.testing.cluster import LocalCluster
from tests.integration.distributed_support import WAIT, client_of, fetch, started_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

_RUNS = """
SELECT step_name, kind, attempt, status, lease_owner, started_at = created_at AS continued
FROM step_runs WHERE workflow_id = $1 ORDER BY id
"""


async def _chain(cluster: LocalCluster) -> list[tuple[object, ...]]:
    """Run the 3-ASYNC-step chain to completion; its step runs as stored."""
    async with client_of(cluster) as client:
        record = await client.start("AsyncChain", {"counter": 0})
        done = await client.wait(record.id, timeout=WAIT)
    assert done.status is WorkflowStatus.COMPLETED, done.error
    assert done.state["counter"] == 12 and done.state["finished"] is True
    return [tuple(row) for row in await fetch(cluster, _RUNS, done.id)]


def test_a_worker_carries_an_async_chain_on_without_the_broker() -> None:
    with started_cluster(concurrency=1) as cluster:
        runs = asyncio.run(_chain(cluster))
    names = [(name, kind, attempt, status) for name, kind, attempt, status, _, _ in runs]
    assert names == [
        ("First", "step", 1, "DONE"),
        ("Second", "step", 1, "DONE"),
        ("Third", "step", 1, "DONE"),
    ]
    first, *rest = runs
    assert first[5] is False  # announced with the workflow's creation, claimed from a message
    assert [run[5] for run in rest] == [True, True]  # claimed by the commit before them
    assert {run[4] for run in runs} == {first[4]}  # all by the worker that took the first


def test_the_budget_sends_the_rest_of_a_chain_through_the_broker() -> None:
    with started_cluster({"RUVON_CONTINUE_STEPS": "1"}, concurrency=1) as cluster:
        runs = asyncio.run(_chain(cluster))
    assert [(run[0], run[5]) for run in runs] == [
        ("First", False),
        ("Second", True),  # the one continuation the budget allows
        ("Third", False),  # announced, claimed from its message
    ]


def test_no_budget_means_every_run_goes_through_the_broker() -> None:
    with started_cluster({"RUVON_CONTINUE_STEPS": "0"}, concurrency=1) as cluster:
        runs = asyncio.run(_chain(cluster))
    assert [run[5] for run in runs] == [False, False, False]
