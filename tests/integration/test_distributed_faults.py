"""Faults on real workers: every message delivered twice, and a worker SIGKILLed mid-step.

* Duplicate delivery (the ``RUVON_DUPLICATE_MESSAGES`` hook, in the client and the workers):
  final states equal the embedded run's, each step's result is committed once, each join fires
  once, and no step function runs twice.
* A worker killed with SIGKILL while a step runs: after its lease expires the run is re-queued
  (what the beat's zombie sweep does, triggered here directly), re-claimed as attempt 2 by
  another worker, and the workflow completes.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import redis

from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider
from ruvon.models import WorkflowStatus
from ruvon.testing.cluster import LocalCluster
from tests.integration.distributed_support import (
    WAIT,
    client_of,
    effect_counts,
    fetch,
    run_embedded,
    started_cluster,
    without,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LEASE = 2.0


@pytest.fixture(scope="module")
def doubling_cluster() -> Iterator[LocalCluster]:
    # Task lines on: the test reads what each copy's task returned ('duplicate').
    with started_cluster({"RUVON_DUPLICATE_MESSAGES": "1", "RUVON_TASK_LOGS": "1"}) as running:
        yield running


async def test_every_message_twice_changes_nothing(doubling_cluster: LocalCluster) -> None:
    cluster = doubling_cluster
    cases = {
        "AsyncChain": {"counter": 0},
        "FanOut": {"size": 20},
        "NestLevel1": {"size": 4},
        "OrderFulfillment": {},
    }
    async with client_of(cluster) as client:
        assert client._execution.copies == 2  # the hook is on in the client too
        started = {t: await client.start(t, data) for t, data in cases.items()}
        done = {t: await client.wait(r.id, timeout=WAIT) for t, r in started.items()}
    for workflow_type, record in done.items():
        assert record.status is WorkflowStatus.COMPLETED, (workflow_type, record.error)
        embedded = (await run_embedded(workflow_type, cases[workflow_type])).state_dict()
        volatile = ("payment_id", "pids", "sub_workflow_results")
        assert without(record.state, *volatile) == without(embedded, *volatile), workflow_type

    ids = [r.id for r in done.values()]
    tree = await fetch(
        cluster,
        "WITH RECURSIVE t AS (SELECT id FROM workflow_executions WHERE id = ANY($1::text[]) "
        "UNION ALL SELECT w.id FROM workflow_executions w JOIN t ON w.parent_execution_id = t.id)"
        " SELECT id FROM t",
        ids,
    )
    all_ids = [row[0] for row in tree]
    assert len(all_ids) == len(ids) + 2  # NestLevel1's child and grandchild
    completed = await fetch(
        cluster,
        "SELECT workflow_id, step_name FROM workflow_audit_log WHERE workflow_id = ANY($1) "
        "AND event_type = 'STEP_COMPLETED'",
        all_ids,
    )
    once = Counter((row[0], row[1]) for row in completed)
    assert once and set(once.values()) == {1}, once  # every step's result committed once
    joins = await fetch(
        cluster,
        "SELECT workflow_id, step_name, count(*) FROM step_runs WHERE kind = 'join' "
        "AND workflow_id = ANY($1) GROUP BY 1, 2",
        all_ids,
    )
    merged = await fetch(
        cluster,
        "SELECT workflow_id, step_name, count(*) FROM workflow_audit_log WHERE "
        "event_type = 'PARALLEL_TASKS_MERGED' AND workflow_id = ANY($1) GROUP BY 1, 2",
        all_ids,
    )
    assert len(joins) == 3  # FanOut, OrderFulfillment's risk checks, NestLevel3
    assert {r[2] for r in joins} == {1} and {r[2] for r in merged} == {1}
    assert sorted((r[0], r[1]) for r in joins) == sorted((r[0], r[1]) for r in merged)
    for workflow_id in all_ids:  # the step functions ran once per step run
        assert set(effect_counts(cluster, workflow_id).values()) <= {1}
    logs = "".join(worker.log() for worker in cluster.workers)
    assert "'duplicate'" in logs  # the second copies did arrive, and were dropped


@pytest.fixture
def short_lease_cluster() -> Iterator[LocalCluster]:
    env = {"RUVON_STEP_LEASE_SECONDS": str(LEASE), "RUVON_HEARTBEAT_SECONDS": "0.5"}
    with started_cluster(env) as running:
        yield running


@pytest.mark.parametrize("target", ["whole worker", "pool child"])
async def test_a_step_killed_mid_run_is_reclaimed_as_attempt_2(
    short_lease_cluster: LocalCluster, target: str
) -> None:
    cluster = short_lease_cluster
    first = cluster.workers[0]
    async with client_of(cluster) as client:
        record = await client.start("KilledMidStep", {})
        pid = await _wait_for_start(cluster, record.id, attempt=1)
        if target == "whole worker":
            await asyncio.to_thread(first.kill)
        else:
            assert pid in first.child_pids()
            import os
            import signal

            os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(cluster.start_worker, name="second")
        running = await fetch(
            cluster, "SELECT status, attempt FROM step_runs WHERE workflow_id = $1 AND "
            "kind = 'step'", record.id,
        )  # fmt: skip
        assert tuple(running[0]) == ("RUNNING", 1)  # nobody renews the lease any more
        provider = PostgresPersistenceProvider(cluster.database_url, 1, 1)
        try:
            requeued = []
            deadline = time.monotonic() + LEASE + 10
            while not requeued and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                requeued = await provider.requeue_crashed(max_attempts=3, limit=10)
                client._execution.dispatch(requeued)
        finally:
            await provider.close()
        assert [r.workflow_id for r in requeued] == [record.id]
        done = await client.wait(record.id, timeout=WAIT)
    assert done.status is WorkflowStatus.COMPLETED, done.error
    assert done.state["survived_attempt"] == 2
    run = await fetch(
        cluster,
        "SELECT status, attempt FROM step_runs WHERE workflow_id = $1 AND kind = 'step'",
        record.id,
    )
    assert tuple(run[0]) == ("DONE", 2)
    assert effect_counts(cluster, record.id) == {
        "Hang_Once:1:attempt1": 1,
        "Hang_Once:1:attempt2": 1,
    }


async def _wait_for_start(cluster: LocalCluster, workflow_id: str, attempt: int) -> int:
    key = f"{cluster.key_prefix}started:{workflow_id}:{attempt}"
    with redis.Redis.from_url(cluster.env["RUVON_BROKER_URL"]) as client:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            value = client.get(key)
            if value is not None:
                return int(value)
            await asyncio.sleep(0.05)
    raise AssertionError(f"the step of {workflow_id} never started")
