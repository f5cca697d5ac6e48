"""The beat as a process of its own: how it rides out a failing database, and
``celery -A beat beat`` still hosting it.

Real ``ruvon beat`` (and ``celery beat``) subprocesses, real workers, PostgreSQL and Redis. No
worker consumes the old ``ruvon.maintenance`` queue: the beat sweeps by itself.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time

import asyncpg
import pytest

from ruvon.models import WorkflowStatus
from ruvon.testing.processes import spawn
from tests.integration.distributed_support import QUEUE, WAIT, client_of, started_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SWEEP = 0.5
TIMEOUT = 1.0
FAST = {
    "RUVON_STEP_LEASE_SECONDS": "2",
    "RUVON_HEARTBEAT_SECONDS": "0.5",
    "RUVON_SWEEP_SECONDS": str(SWEEP),
    "RUVON_DISPATCH_TIMEOUT_SECONDS": str(TIMEOUT),
}
TERMINAL = {status for status in WorkflowStatus if status.is_terminal}


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
