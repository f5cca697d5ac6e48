"""The beat as a process of its own: what it re-sends under a backlog, how it rides out a failing
database, and ``celery -A beat beat`` still hosting it.

Real ``ruvon beat`` (and ``celery beat``) subprocesses, real workers, PostgreSQL and Redis. No
worker consumes the old ``ruvon.maintenance`` queue: the beat sweeps by itself.
"""

from __future__ import annotations

import ast
import asyncio
import re
import signal
import sys
import time

import asyncpg
import pytest
import redis

from ruvon.implementations.execution.broker_lanes import lane_key
from ruvon.models import WorkflowStatus
from ruvon.testing.cluster import LocalCluster
from ruvon.testing.processes import spawn
from tests.integration.distributed_support import QUEUE, WAIT, client_of, fetch, started_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SWEEP = 0.5
TIMEOUT = 1.0
FAST = {
    "RUVON_STEP_LEASE_SECONDS": "2",
    "RUVON_HEARTBEAT_SECONDS": "0.5",
    "RUVON_SWEEP_SECONDS": str(SWEEP),
    "RUVON_DISPATCH_TIMEOUT_SECONDS": str(TIMEOUT),
}
BACKLOG = 300
TERMINAL = {status for status in WorkflowStatus if status.is_terminal}
_SWEPT = re.compile(r"beat sweep (\w+): (\{[^}]*\})")


def resent(log: str) -> int:
    """Runs the beat's logged lost-message sweeps sent again."""
    return sum(
        ast.literal_eval(fields)["sent"]
        for sweep, fields in _SWEPT.findall(log)
        if sweep == "redispatch_lost"
    )


async def _queued_on(cluster: LocalCluster, queue: str, count: int) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        rows = await fetch(
            cluster,
            "SELECT count(*) FROM step_runs WHERE queue = $1 AND status = 'QUEUED'",
            queue,
        )
        if rows[0][0] >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} runs never queued on {queue}")


def test_a_backlog_is_not_sent_again_but_a_lost_message_is() -> None:
    """300 runs wait in Redis behind each other, first for a worker, then for one slow one: the
    beat re-sends none of them, and re-sends the one whose message Redis lost."""
    with started_cluster(FAST, queues=[QUEUE], workers=1) as cluster:
        beat = cluster.start_beat()
        beat.wait_sweeping()
        backlog = lane_key(cluster.key_prefix, "backlog", 0)

        async def scenario() -> list[str]:
            async with client_of(cluster) as client:
                lost = await client.start("Backlog", {})
                await _queued_on(cluster, "backlog", 1)
                with redis.Redis.from_url(cluster.env["RUVON_BROKER_URL"]) as broker:
                    assert broker.delete(backlog) == 1  # its message is gone, like a restart's
                    records = [await client.start("Backlog", {}) for _ in range(BACKLOG)]
                    await _queued_on(cluster, "backlog", BACKLOG + 1)
                    # Nobody consumes the queue for a while: a dispatch timeout and more.
                    await asyncio.sleep(2 * TIMEOUT + 2 * SWEEP)
                    waiting = broker.llen(backlog)
                assert waiting == BACKLOG + 1  # the backlog's messages, and the lost one again
                await asyncio.to_thread(cluster.start_worker, ["backlog"], concurrency=1)
                for record in [lost, *records]:
                    done = await client.wait(record.id, timeout=WAIT, until=TERMINAL)
                    assert done.status is WorkflowStatus.COMPLETED, done.error
                return [lost.id, *(r.id for r in records)]

        asyncio.run(scenario())
        slow = cluster.workers[-1].log()
        sent, duplicates = resent(beat.log()), slow.count("'duplicate'")
        print(f"re-sent during a backlog of {BACKLOG}: {sent}; duplicates delivered: {duplicates}")
        assert 1 <= sent <= 2  # the lost run (a second only if a sweep's reading raced badly)
        assert duplicates <= sent - 1


def test_a_sweep_that_fails_is_logged_and_the_next_one_runs() -> None:
    """step_runs held locked past the beat's statement timeout: the sweeps fail meanwhile (a
    timer falls due then), the beat says so and carries on; once the lock goes, the next run of
    each sweep works and the timer fires."""
    env = {**FAST, "RUVON_STATEMENT_TIMEOUT": "1"}
    with started_cluster(env, queues=[QUEUE], workers=1) as cluster:
        beat = cluster.start_beat()
        beat.wait_sweeping()

        async def scenario() -> WorkflowStatus:
            async with client_of(cluster) as client:
                record = await client.start("WaitThenWork", {})
                await client.wait(record.id, timeout=WAIT, until={WorkflowStatus.WAITING_TIMER})
                connection = await asyncpg.connect(cluster.database_url)
                try:
                    async with connection.transaction():
                        await connection.execute("LOCK TABLE step_runs IN ACCESS EXCLUSIVE MODE")
                        await asyncio.sleep(4.0)  # the 1 s timer falls due meanwhile
                finally:
                    await connection.close()
                done = await client.wait(record.id, timeout=WAIT, until=TERMINAL)
                return done.status

        assert asyncio.run(scenario()) is WorkflowStatus.COMPLETED
        log = beat.log()
        failed = set(re.findall(r"beat sweep (\w+) failed; it runs again at its next turn", log))
        assert failed, log
        assert "canceling statement due to statement timeout" in log  # with its traceback
        assert re.search(r"beat sweep \w+ failed again \(\d+ in a row\): ", log)  # one line
        recovered = set(re.findall(r"beat sweep (\w+) works again after \d+ failed run", log))
        assert recovered == failed
        assert beat.process.poll() is None


def test_celery_beat_still_hosts_the_beat(tmp_path_factory: pytest.TempPathFactory) -> None:
    """``celery -A beat beat``, as deployments ran it: the sweeps run in it (a timer fires)."""
    with started_cluster(FAST, queues=[QUEUE], workers=1) as cluster:
        log_path = tmp_path_factory.mktemp("celery-beat") / "beat.log"
        command = [sys.executable, "-m", "celery", "-A", "beat", "beat", "--loglevel", "INFO"]
        command += ["--schedule", str(log_path.with_suffix(".schedule"))]
        process = spawn(command, cluster.env, log_path)
        try:
            deadline = time.monotonic() + WAIT
            while "sweeps started: " not in log_path.read_text(errors="replace"):
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)

            async def timer() -> WorkflowStatus:
                async with client_of(cluster) as client:
                    record = await client.start("WaitThenWork", {})
                    done = await client.wait(record.id, timeout=WAIT, until=TERMINAL)
                    return done.status

            assert asyncio.run(timer()) is WorkflowStatus.COMPLETED
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(30)
        log = log_path.read_text()
        assert "only hosts the Ruvon beat now" in log
        assert code == 0, log
        assert "the beat stopped" in log
