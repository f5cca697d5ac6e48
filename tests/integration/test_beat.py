"""The beat on real workers and real ``ruvon beat`` processes: timers, approval deadlines,
zombie recovery (re-queue, or FAILED_WORKER_CRASH past the crash budget), lost messages.

The beat runs its sweeps itself: no worker here consumes the old ``ruvon.maintenance`` queue.

Settings are shortened so the sweeps act within seconds: lease 2 s (heartbeat 0.5 s), sweeps
every second, dispatch timeout 2 s. Recovery after a SIGKILL must then take at most
lease + sweep interval + 2 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from ruvon.implementations.execution.broker_lanes import lane_key, queue_keys
from ruvon.models import WorkflowStatus
from ruvon.testing.cluster import LocalCluster, WorkerProcess
from tests.integration.distributed_support import (
    QUEUE,
    WAIT,
    client_of,
    effect_counts,
    fetch,
    redis_list,
    started_cluster,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LEASE = 2.0
SWEEP = 1.0
FAST = {
    "RUVON_STEP_LEASE_SECONDS": str(LEASE),
    "RUVON_HEARTBEAT_SECONDS": "0.5",
    "RUVON_SWEEP_SECONDS": str(SWEEP),
    "RUVON_DISPATCH_TIMEOUT_SECONDS": "2",
    "RUVON_TASK_LOGS": "1",  # the workers' logs show every task they ran (read below)
}
TERMINAL = {status for status in WorkflowStatus if status.is_terminal}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Two workers (the default queue only) and two beats at once (both must be safe)."""
    with started_cluster(FAST, queues=[QUEUE], workers=2) as running:
        for beat in (running.start_beat(), running.start_beat()):
            beat.wait_sweeping()
        yield running


async def test_a_wait_step_is_resumed_by_the_beat(cluster: LocalCluster) -> None:
    async with client_of(cluster) as client:
        record = await client.start("WaitThenWork", {})
        waiting = await client.wait(record.id, timeout=WAIT, until={WorkflowStatus.WAITING_TIMER})
        assert waiting.run_at is not None
        done = await client.wait(record.id, timeout=WAIT, until=TERMINAL)
    assert done.status is WorkflowStatus.COMPLETED, done.error
    assert done.state["counter"] == 1
    timers = await fetch(
        cluster,
        "SELECT count(*) FROM step_runs WHERE workflow_id = $1 AND branch = 'timer'",
        record.id,
    )
    assert timers[0][0] == 1  # two beats, one timer run


async def test_an_unanswered_approval_is_rejected_by_the_beat(cluster: LocalCluster) -> None:
    async with client_of(cluster) as client:
        record = await client.start("ApprovalTimeout", {})
        waiting = await client.wait(record.id, timeout=WAIT)
        assert waiting.status is WorkflowStatus.WAITING_HUMAN
        started = time.monotonic()
        done = await client.wait(record.id, timeout=WAIT, until=TERMINAL)
    assert done.status is WorkflowStatus.COMPLETED, done.error
    assert done.state["approved"] is False
    assert done.state["reason"] == "auto_reject after timeout"
    assert done.state["visited"] == ["ApprovalTimeout"]  # the step after the approval ran once
    assert time.monotonic() - started < 2 + SWEEP + 3


async def test_a_lost_message_is_sent_again(cluster: LocalCluster) -> None:
    async with client_of(cluster) as client:
        record = await client.start("Unserved", {})
        pending = await client.wait(record.id, timeout=WAIT, until={WorkflowStatus.PENDING_ASYNC})
        assert pending.current_step_name == "Never"
        # Its message waits in Redis for a worker on the queue: lose it, like a Redis restart.
        with redis.Redis.from_url(cluster.env["RUVON_BROKER_URL"]) as broker:
            assert broker.delete(lane_key(cluster.key_prefix, "nobody-listens", 0)) == 1
        await asyncio.to_thread(cluster.start_worker, ["nobody-listens"], name="late")
        done = await client.wait(record.id, timeout=WAIT, until=TERMINAL)
    assert done.status is WorkflowStatus.COMPLETED, done.error


def _worker_running(cluster: LocalCluster, pid: int) -> WorkerProcess:
    return next(w for w in cluster.workers if pid in w.child_pids())


async def _started_on(cluster: LocalCluster, workflow_id: str) -> int:
    key = f"{cluster.key_prefix}started:{workflow_id}:1"
    with redis.Redis.from_url(cluster.env["RUVON_BROKER_URL"]) as broker:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            value = broker.get(key)
            if value is not None:
                return int(value)
            await asyncio.sleep(0.05)
    raise AssertionError(f"the step of {workflow_id} never started")


@pytest.fixture
def crash_cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    env = {**FAST, "RUVON_CRASH_ATTEMPTS": str(request.param)}
    with started_cluster(env, queues=[QUEUE], workers=2) as running:
        running.start_beat()
        yield running


@pytest.mark.parametrize("crash_cluster", [5], indirect=True)
async def test_a_killed_worker_step_is_recovered_within_lease_plus_sweep(
    crash_cluster: LocalCluster,
) -> None:
    cluster = crash_cluster
    async with client_of(cluster) as client:
        record = await client.start("KilledMidStep", {})
        victim = _worker_running(cluster, await _started_on(cluster, record.id))
        await asyncio.to_thread(victim.kill)
        killed = datetime.now(UTC)
        done = await client.wait(record.id, timeout=WAIT, until=TERMINAL)
    assert done.status is WorkflowStatus.COMPLETED, done.error
    assert done.state["survived_attempt"] == 2
    audit = await fetch(
        cluster,
        "SELECT details, recorded_at FROM workflow_audit_log WHERE workflow_id = $1 AND "
        "event_type = 'WORKER_CRASH_DETECTED'",
        record.id,
    )
    assert [(a[0]["action"], a[0]["attempt"]) for a in audit] == [("requeued", 1)]
    # The promise is detection within lease + sweep (one database and one clock here). The
    # second attempt's run time after that is the machine's speed, not the beat's.
    latency = (audit[0][1] - killed).total_seconds()
    assert latency <= LEASE + SWEEP + 1, f"detected {latency:.2f} s after the kill"
    print(f"zombie detection latency after SIGKILL: {latency:.2f} s")


@pytest.mark.parametrize("crash_cluster", [1], indirect=True)
async def test_past_the_crash_budget_the_workflow_fails_or_rolls_back(
    crash_cluster: LocalCluster,
) -> None:
    cluster = crash_cluster
    async with client_of(cluster) as client:
        started = []
        for workflow_type in ("KilledMidStep", "KilledSaga"):  # one at a time: each kill hits
            record = await client.start(workflow_type, {})  # only its own step
            victim = _worker_running(cluster, await _started_on(cluster, record.id))
            await asyncio.to_thread(victim.kill)
            await asyncio.to_thread(cluster.start_worker, [QUEUE])
            started.append(record)
        plain, saga = started
        failed = await client.wait(plain.id, timeout=WAIT, until=TERMINAL)
        rolled_back = await client.wait(saga.id, timeout=WAIT, until=TERMINAL)
    assert failed.status is WorkflowStatus.FAILED_WORKER_CRASH
    assert "lost its worker 1 times (RUVON_CRASH_ATTEMPTS=1)" in (failed.error or "")
    assert rolled_back.status is WorkflowStatus.FAILED_ROLLED_BACK
    assert redis_list(cluster, f"compensations:{saga.id}") == ["release"]
    for record in (plain, saga):
        audit = await fetch(
            cluster,
            "SELECT details FROM workflow_audit_log WHERE workflow_id = $1 AND "
            "event_type = 'WORKER_CRASH_DETECTED'",
            record.id,
        )
        assert [a[0]["action"] for a in audit] == ["failed"]


async def test_a_one_second_schedule_starts_one_workflow_per_tick_with_two_beats(
    cluster: LocalCluster,
) -> None:
    """Both beats poll every second for ~10 s: every tick due before the pause starts exactly
    once, in order and without a gap, and none due after it starts. The expected ticks come from
    the measured window, not from the sleep, so a slow machine cannot make the count drift."""
    from ruvon.clock import utc_now
    from ruvon.cluster.schedule_spec import ScheduleSpec
    from ruvon.cluster.schedules import set_schedule_enabled
    from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider
    from ruvon.records import ScheduleRecord

    store = PostgresPersistenceProvider(cluster.database_url, 1, 1)
    await store.initialize()
    try:
        name = "every-second"
        first = utc_now()
        await store.save_schedule(
            ScheduleRecord(
                name=name,
                workflow_type="AsyncChain",
                cron="@every 1s",
                initial_data={"counter": 0},
                next_run_at=first,
            )
        )
        await asyncio.sleep(10)  # both beats poll every second meanwhile
        await set_schedule_enabled(store, name, False)
        paused = utc_now()  # the pause committed at or before this moment
        await asyncio.sleep(1.5)  # a poll that claimed its tick just before the pause ends
        started = await fetch(
            cluster,
            "SELECT idempotency_key FROM workflow_executions WHERE idempotency_key LIKE $1",
            f"schedule:{name}:%",
        )
    finally:
        await store.close()
    keys = [row[0] for row in started]
    assert len(keys) == len(set(keys))  # each tick once
    spec = ScheduleSpec.stored("@every 1s", schedule=name)
    due = [first]
    while (following := spec.next_after(due[-1])) <= paused:
        due.append(following)
    expected = [f"schedule:{name}:{tick.isoformat()}" for tick in due]
    ticks = sorted(keys, key=lambda key: datetime.fromisoformat(key.split(":", 2)[2]))
    assert ticks == expected[: len(ticks)], (ticks, expected)  # no gap, nothing after the pause
    # a poll is due every second, so at most the last tick or two before the pause can be missed
    assert len(ticks) >= len(expected) - 2, (ticks, expected)


async def test_a_step_longer_than_its_lease_keeps_it_by_heartbeat(cluster: LocalCluster) -> None:
    """A 5 s step under a 2 s lease: its heartbeat (started once it ran an interval) keeps the
    lease, so the beats never take the run away and the step runs once."""
    async with client_of(cluster) as client:
        record = await client.start("LongStep", {})
        done = await client.wait(record.id, timeout=WAIT, until=TERMINAL)
    assert done.status is WorkflowStatus.COMPLETED, done.error
    runs = await fetch(
        cluster, "SELECT attempt, status FROM step_runs WHERE workflow_id = $1", record.id
    )
    assert [tuple(r) for r in runs] == [(1, "DONE")]
    crashes = await fetch(
        cluster,
        "SELECT count(*) FROM workflow_audit_log WHERE workflow_id = $1 AND "
        "event_type = 'WORKER_CRASH_DETECTED'",
        record.id,
    )
    assert crashes[0][0] == 0
    assert effect_counts(cluster, record.id) == {"Long:1": 1}


def test_the_beats_sent_no_maintenance_task(cluster: LocalCluster) -> None:
    """Two beats swept for this whole module, and sent nothing to the old maintenance queue."""
    assert all(beat.process.poll() is None for beat in cluster.beats)
    assert all("sweeps started: " in beat.log() for beat in cluster.beats)
    with redis.Redis.from_url(cluster.env["RUVON_BROKER_URL"]) as broker:
        assert broker.exists(*queue_keys(cluster.key_prefix, "ruvon.maintenance")) == 0
    for worker in cluster.workers:
        assert "Task ruvon.maintenance." not in worker.log()  # none received, none run
