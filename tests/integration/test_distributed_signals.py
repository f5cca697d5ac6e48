"""Signals on real ``celery worker`` subprocesses over PostgreSQL and Redis: the same YAML as
embedded; a signal to a waiting workflow hands it back to the workers, one sent early is taken
on a worker when the workflow arrives, racing duplicates are applied once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ruvon.errors import InvalidWorkflowOperation
from ruvon.models import WorkflowStatus
from ruvon.signals import SignalOutcome
from ruvon.testing.cluster import LocalCluster
from tests.integration.distributed_support import WAIT, client_of, started_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
DONE = {WorkflowStatus.COMPLETED, WorkflowStatus.FAILED}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with started_cluster({"RUVON_SWEEP_SECONDS": "0.5"}) as running:
        running.start_beat().wait_sweeping()  # it fires the WAIT_FOR_EVENT deadlines
        yield running


async def test_a_signal_to_a_waiting_workflow_hands_it_back_to_the_workers(
    cluster: LocalCluster,
) -> None:
    async with client_of(cluster) as first, client_of(cluster) as second:
        record = await first.start("EventWait", {})
        waiting = await first.wait(record.id, timeout=WAIT)
        assert (waiting.status, waiting.current_step_name) == (
            WorkflowStatus.WAITING_HUMAN,
            "Await_Go",
        )
        # Two clients send the same event at once: one stores and delivers it, the other's
        # insert finds the event id taken.
        outcomes = await asyncio.gather(
            first.signal(record.id, "go", {"go": 1}, event_id="go-1", actor="ops"),
            second.signal(record.id, "go", {"go": 2}, event_id="go-1", actor="ops"),
            return_exceptions=True,
        )
        sent = sorted(str(o.outcome) if not isinstance(o, BaseException) else repr(o)
                      for o in outcomes)  # fmt: skip
        assert sent == ["delivered", "duplicate"], outcomes
        done = await first.wait(record.id, timeout=WAIT, until=DONE)
        audit = await first.history(record.id)
    assert done.status is WorkflowStatus.COMPLETED, done.error
    assert done.state["go"] == 1 and done.state["finished"] is True
    assert done.runtime["signals_consumed"] == ["go-1"]
    assert [e.event_type for e in audit].count("EVENT_RECEIVED") == 1


async def test_a_signal_sent_early_is_taken_on_a_worker_when_the_workflow_arrives(
    cluster: LocalCluster,
) -> None:
    async with client_of(cluster) as client:
        record = await client.start("EventWait", {})
        sent = await client.signal(record.id, "go", {"early": True}, actor="ops")
        assert sent.outcome is SignalOutcome.STORED  # Warm_Up is still on a worker
        done = await client.wait(record.id, timeout=WAIT, until=DONE)
        audit = await client.history(record.id)
    assert done.status is WorkflowStatus.COMPLETED, done.error
    assert done.state["early"] is True and done.state["warm"] is True
    assert WorkflowStatus.WAITING_HUMAN not in {e.new_status for e in audit}  # it never waited
    received = [e for e in audit if e.event_type == "EVENT_RECEIVED"]
    assert [e.details["sent_by"] for e in received] == ["ops"]


async def test_refusals_on_the_cluster_are_typed(cluster: LocalCluster) -> None:
    async with client_of(cluster) as client:
        record = await client.start("EventWait", {})
        with pytest.raises(InvalidWorkflowOperation, match="no WAIT_FOR_EVENT step for the event"):
            await client.signal(record.id, "stop", {})
        await client.cancel(record.id)
        with pytest.raises(InvalidWorkflowOperation, match="CANCELLED"):
            await client.signal(record.id, "go", {})


async def test_the_beat_applies_on_timeout_when_no_event_comes(cluster: LocalCluster) -> None:
    async with client_of(cluster) as client:
        record = await client.start("EventTimeout", {})
        waiting = await client.wait(record.id, timeout=WAIT)
        assert waiting.status is WorkflowStatus.WAITING_HUMAN and waiting.run_at is not None
        done = await client.wait(record.id, timeout=WAIT, until=DONE)
        audit = await client.history(record.id)
    assert done.status is WorkflowStatus.COMPLETED, done.error
    assert done.state["timed_out"] is True and done.state["finished"] is True
    assert "EVENT_TIMED_OUT" in [e.event_type for e in audit]
