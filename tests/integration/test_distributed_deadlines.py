"""Workflow deadlines on real ``celery worker`` subprocesses over PostgreSQL and Redis, with two
beats: a workflow waiting for a person, or for a run no worker takes, is failed by the beat's
deadline sweep (once, though two beats sweep); a step still running at the deadline is stopped
on its worker; saga workflows compensate their completed steps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis

from ruvon.models import WorkflowStatus
from ruvon.records import WorkflowRecord
from ruvon.testing.cluster import LocalCluster
from tests.integration.distributed_support import WAIT, client_of, started_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
ENDED = {
    WorkflowStatus.COMPLETED,
    WorkflowStatus.FAILED,
    WorkflowStatus.FAILED_ROLLED_BACK,
    WorkflowStatus.CANCELLED,
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with started_cluster({"RUVON_SWEEP_SECONDS": "0.5"}) as running:
        # Two beats at once: each deadline is still acted on once.
        for beat in (running.start_beat(), running.start_beat()):
            beat.wait_sweeping()
        yield running


def _store(cluster: LocalCluster) -> redis.Redis:
    return redis.Redis.from_url(cluster.env["RUVON_BROKER_URL"])


def _compensations(cluster: LocalCluster, workflow_id: str) -> list[str]:
    prefix = cluster.env.get("RUVON_BROKER_KEY_PREFIX", "")
    values = _store(cluster).lrange(f"{prefix}compensations:{workflow_id}", 0, -1)
    return [value.decode() for value in values]


def _timed_out(record: WorkflowRecord, timeout: str, step: str) -> None:
    assert (record.error or "").startswith(
        f"WorkflowTimeoutError: workflow '{record.id}' exceeded its timeout of {timeout}s "
        f"(at step '{step}')"
    ), record.error


async def test_a_workflow_waiting_for_a_person_is_failed_and_compensated_by_the_beat(
    cluster: LocalCluster,
) -> None:
    async with client_of(cluster) as client:
        record = await client.start("DeadlineReview", {})
        assert record.deadline_at is not None
        waiting = await client.wait(record.id, timeout=WAIT)
        assert waiting.status is WorkflowStatus.WAITING_HUMAN
        done = await client.wait(record.id, timeout=WAIT, until=ENDED)
        audit = await client.history(record.id)
    assert done.status is WorkflowStatus.FAILED_ROLLED_BACK, done.error
    _timed_out(done, "2", "Review")
    assert done.deadline_at == record.deadline_at
    assert done.completed_at is not None and done.completed_at >= record.deadline_at
    assert _compensations(cluster, record.id) == ["release"]  # once, with two beats sweeping
    events = [e.event_type for e in audit]
    assert events.count("WORKFLOW_TIMED_OUT") == 1 and events.count("WORKFLOW_FAILED") == 1
    # A worker ran the failure, under the deadline sweep's run.
    failed = next(e for e in audit if e.event_type == "STEP_FAILED")
    assert failed.details.get("worker") and failed.details.get("run")


async def test_a_workflow_whose_run_no_worker_takes_is_failed_by_the_beat(
    cluster: LocalCluster,
) -> None:
    async with client_of(cluster) as client:
        record = await client.start("DeadlineUnserved", {})
        done = await client.wait(record.id, timeout=WAIT, until=ENDED)
        audit = await client.history(record.id)
    assert done.status is WorkflowStatus.FAILED, done.error
    _timed_out(done, "1", "Never")
    assert [e.event_type for e in audit].count("WORKFLOW_TIMED_OUT") == 1


async def test_a_step_running_at_the_deadline_is_stopped_on_its_worker(
    cluster: LocalCluster,
) -> None:
    async with client_of(cluster) as client:
        record = await client.start("DeadlineLongStep", {})
        done = await client.wait(record.id, timeout=WAIT, until=ENDED)
        audit = await client.history(record.id)
    assert done.status is WorkflowStatus.FAILED_ROLLED_BACK, done.error
    _timed_out(done, "1.5", "Slow")
    assert _compensations(cluster, record.id) == ["release"]
    assert "finished" not in done.state
    prefix = cluster.env.get("RUVON_BROKER_KEY_PREFIX", "")
    key = f"{prefix}slow:{record.id}:events"
    started = float(_store(cluster).lindex(key, 0).decode().split()[2])
    # Past the moment the 3 s body would have finished had it been abandoned, not stopped.
    await asyncio.sleep(max(0.0, started + 3.5 - time.time()))
    events = _store(cluster).lrange(key, 0, -1)
    # Attempt 1 started and was stopped: it never finished, and no retry started.
    assert [e.decode().split()[:2] for e in events] == [["start", "1"]]
    assert [e.event_type for e in audit].count("WORKFLOW_TIMED_OUT") == 1
    assert "STEP_RETRY" not in [e.event_type for e in audit]
