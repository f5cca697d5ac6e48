"""Chaos on a real cluster: kill -9 workers, restart PostgreSQL and Redis, run two beats,
freeze a worker past its lease, skew a worker's clock by an hour, keep Redis down for seconds
with no supervisor to restart what dies; then check the invariants of
DESIGN.md's correctness model (see :mod:`tests.chaos.invariants`) and print the figures.

Each scenario runs the kitchen-sink workflow (ASYNC steps, a PARALLEL join, a child workflow,
a saga, an idempotent side effect; one in five fails at its end and rolls back) on its own
cluster: prefork workers and a beat on a private PostgreSQL and Redis (restartable, see
:mod:`tests.chaos.servers`), with a 2 s lease and 1 s sweeps.

The quick form (30 workflows per scenario) runs in the default suite; ``RUVON_CHAOS_LONG=1``
(``scripts/chaos --long``) runs the long form (200 or more, and more faults).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ruvon.testing.cluster import LocalCluster, WorkerProcess
from tests.chaos.driver import (
    LEASE,
    LONG,
    ChaosRun,
    Servers,
    chaos_cluster,
    freeze_busy_worker,
    kill_busy_child,
    kill_busy_worker,
    probe_workers,
    queued_messages,
    start_probed_worker,
    workers_frozen,
)
from tests.chaos.invariants import ChaosReport
from tests.chaos.servers import PrivatePostgres, PrivateRedis, libfaketime_path

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(900 if LONG else 240)]

WORKFLOWS = 200 if LONG else 30
SPREAD = 40.0 if LONG else 8.0  # seconds over which the workflows are started


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    """A private PostgreSQL and Redis for the module (restarted by S2 and S3)."""
    postgres, redis = PrivatePostgres(), PrivateRedis()
    try:
        postgres.start()
        redis.start()
        yield Servers(postgres, redis)
    finally:
        redis.stop()
        postgres.stop()


def _assert_holds(report: ChaosReport) -> None:
    print("\n" + report.figures())
    assert not report.violations(), "\n".join(report.violations())


def _assert_survived(cluster: LocalCluster, run: ChaosRun) -> None:
    dead = [w.hostname for w in run.all_workers() if w.process.poll() is not None]
    assert not dead, f"workers died: {dead}"
    assert all(b.process.poll() is None for b in cluster.beats), "a beat died"


def test_s1_sigkill_pool_children_and_workers(servers: Servers, tmp_path: Path) -> None:
    """S1: SIGKILL busy pool children, and every third time a whole worker (restarted)."""
    kills = 24 if LONG else 8

    async def inject(run: ChaosRun) -> None:
        await run.until_progress(0.1)
        done = 0
        while done < kills and run.loading:
            await asyncio.sleep(SPREAD / kills * 0.6)
            strike = kill_busy_worker if done % 3 == 2 else kill_busy_child
            done += await strike(run)

    with chaos_cluster(servers, tmp_path, workers=3) as cluster:
        cluster.start_beat()
        run = ChaosRun(cluster, "S1 SIGKILL", workflows=WORKFLOWS, spread=SPREAD)
        report = asyncio.run(run.run(inject))
        _assert_holds(report)
        assert report.faults >= kills // 2
        assert report.crash_detections > 0  # the kills did land mid-step
        assert not report.unexplained_detections


def test_s2_postgres_restarted_mid_run(servers: Servers, tmp_path: Path) -> None:
    """S2: ``pg_ctl stop -m immediate``, 2 s down, start: workers and beat ride it out."""

    async def inject(run: ChaosRun) -> None:
        for progress in (0.4, 0.8) if LONG else (0.4,):
            await run.until_progress(progress)
            run.fault("postgres down")
            await asyncio.to_thread(servers.postgres.crash)
            await asyncio.sleep(2.0)
            await asyncio.to_thread(servers.postgres.start)
            run.fault("postgres up")

    with chaos_cluster(servers, tmp_path, workers=2) as cluster:
        cluster.start_beat()
        run = ChaosRun(cluster, "S2 PostgreSQL restart", workflows=WORKFLOWS, spread=SPREAD)
        report = asyncio.run(run.run(inject))
        _assert_holds(report)
        _assert_survived(cluster, run)


def test_s3_redis_restarted_without_persistence(servers: Servers, tmp_path: Path) -> None:
    """S3: Redis killed and started empty: queued messages vanish, redispatch_lost re-sends,
    and every worker rides it out by itself (no replacement is started; S7 keeps Redis down
    for seconds)."""

    async def inject(run: ChaosRun) -> None:
        lost = 0
        for progress in (0.4, 0.8) if LONG else (0.5,):
            await run.until_progress(progress)
            # Workers held still (for less than a lease) so that messages wait in Redis.
            async with workers_frozen(run):
                deadline = time.monotonic() + 1.5
                while queued_messages(run) < 3 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                lost += queued_messages(run)
                run.fault("redis restarted empty")
                await asyncio.to_thread(servers.redis.restart)
            await asyncio.sleep(2.0)  # reconnect
        run.notes["queued messages lost in the restarts"] = lost

    with chaos_cluster(servers, tmp_path, workers=2) as cluster:
        cluster.start_beat()
        run = ChaosRun(cluster, "S3 Redis restart", workflows=WORKFLOWS, spread=SPREAD)
        report = asyncio.run(run.run(inject))
        _assert_holds(report)
        _assert_survived(cluster, run)
        sweeps = report.notes["sweep work (runs)"]
        assert isinstance(sweeps, dict)
        if report.notes["queued messages lost in the restarts"]:
            assert sweeps.get("redispatch_lost", 0) > 0  # the beat re-sent what Redis lost


def test_s4_two_beats_for_the_whole_run(servers: Servers, tmp_path: Path) -> None:
    """S4: two beats at once while pool children are killed: every sweep acts once."""
    kills = 12 if LONG else 4

    async def inject(run: ChaosRun) -> None:
        await run.until_progress(0.1)
        done = 0
        while done < kills and run.loading:
            await asyncio.sleep(SPREAD / kills * 0.6)
            done += await kill_busy_child(run)

    with chaos_cluster(servers, tmp_path, workers=2) as cluster:
        cluster.start_beat()
        cluster.start_beat()
        run = ChaosRun(cluster, "S4 two beats", workflows=WORKFLOWS, spread=SPREAD)
        report = asyncio.run(run.run(inject))
        _assert_holds(report)
        assert report.crash_detections > 0
        _assert_survived(cluster, run)


def test_s5_frozen_worker_late_write_is_rejected(servers: Servers, tmp_path: Path) -> None:
    """S5: SIGSTOP a busy worker for 2.5 leases, then SIGCONT: its late commits are refused."""
    freezes = 4 if LONG else 2

    async def inject(run: ChaosRun) -> None:
        await run.until_progress(0.2)
        done = 0
        while done < freezes and run.loading:
            done += await freeze_busy_worker(run, 2.5 * LEASE)
            await asyncio.sleep(0.5)

    with chaos_cluster(servers, tmp_path, workers=3) as cluster:
        cluster.start_beat()
        run = ChaosRun(cluster, "S5 SIGSTOP past the lease", workflows=WORKFLOWS, spread=SPREAD)
        report = asyncio.run(run.run(inject))
        outcomes = report.notes["task outcomes"]
        assert isinstance(outcomes, dict)
        report.notes["thawed attempts reported as claim-lost / conflict"] = outcomes.get(
            "claim-lost", 0
        ) + outcomes.get("conflict", 0)
        # The thawed worker's late commits were refused: no step committed twice, no effect
        # applied twice, each rollback's audit once (asserted by the invariants).
        _assert_holds(report)
        assert report.crash_detections > 0  # the frozen runs were taken over
        _assert_survived(cluster, run)


def test_s8_sigkill_inside_a_continued_chain(servers: Servers, tmp_path: Path) -> None:
    """S8: SIGKILL pool children while they run a step their own last commit claimed (a
    continuation, no message behind it): the lease alone brings it back, once."""
    kills = 12 if LONG else 4

    async def inject(run: ChaosRun) -> None:
        await run.until_progress(0.1)
        done = 0
        while done < kills and run.loading:
            done += await kill_busy_child(run, continued=True)
            await asyncio.sleep(SPREAD / kills * 0.4)

    with chaos_cluster(servers, tmp_path, workers=2) as cluster:
        cluster.start_beat()
        run = ChaosRun(cluster, "S8 SIGKILL in a continuation", workflows=WORKFLOWS, spread=SPREAD)
        report = asyncio.run(run.run(inject))
        _assert_holds(report)
        assert report.faults >= kills // 2  # the chains were there to strike
        assert report.crash_detections > 0
        assert not report.unexplained_detections
        _assert_survived(cluster, run)


def test_s9_frozen_inside_a_continued_chain(servers: Servers, tmp_path: Path) -> None:
    """S9: SIGSTOP a worker inside a continued chain past its lease, then SIGCONT: another
    worker took the run over; the thawed chain's late commits are refused."""
    freezes = 4 if LONG else 2

    async def inject(run: ChaosRun) -> None:
        await run.until_progress(0.2)
        done = 0
        while done < freezes and run.loading:
            done += await freeze_busy_worker(run, 2.5 * LEASE, continued=True)
            await asyncio.sleep(0.5)

    with chaos_cluster(servers, tmp_path, workers=3) as cluster:
        cluster.start_beat()
        run = ChaosRun(cluster, "S9 SIGSTOP in a continuation", workflows=WORKFLOWS, spread=SPREAD)
        report = asyncio.run(run.run(inject))
        _assert_holds(report)
        assert report.faults >= 1
        assert report.crash_detections > 0  # the frozen chain's run was taken over
        _assert_survived(cluster, run)


def test_s6_clock_skewed_worker_is_no_zombie(servers: Servers, tmp_path: Path) -> None:
    """S6: one of three workers runs an hour ahead (libfaketime): leases use the database's
    clock, so none of its healthy runs is taken for a zombie."""
    library = libfaketime_path()
    if library is None:
        pytest.fail("libfaketime is not installed: run scripts/services (it installs faketime)")
    with chaos_cluster(servers, tmp_path, workers=2) as cluster, contextlib.ExitStack() as stack:
        cluster.start_beat()
        skewed = _start_skewed_worker(cluster, library, "+1h")
        stack.callback(skewed.stop)
        run = ChaosRun(cluster, "S6 clock skew +1h", workflows=WORKFLOWS, spread=SPREAD)
        run.extra_workers.append(skewed)

        async def inject(run: ChaosRun) -> None:
            pass

        report = asyncio.run(run.run(inject))
        done_by_skewed = asyncio.run(run.runs_done_by(set(skewed.child_pids())))
        report.notes["runs done by the skewed worker"] = done_by_skewed
        _assert_holds(report)
        assert report.crash_detections == 0, "a healthy run was taken for a zombie"
        assert done_by_skewed, "the skewed worker did no work"
        _assert_survived(cluster, run)


def test_s7_redis_down_for_seconds_workers_recover_alone(servers: Servers, tmp_path: Path) -> None:
    """S7: Redis stopped mid-run, started empty on the same port a few seconds later, twice:
    with no supervisor, every worker stays alive and consumes again (a probe task on a queue
    of its own, sent after the restart, runs) within 30 s of Redis being back."""
    down = 3.0
    recovery: list[float] = []
    not_consuming: list[str] = []

    with chaos_cluster(servers, tmp_path, workers=0) as cluster:
        probes = dict(start_probed_worker(cluster, f"w{i}") for i in (1, 2, 3))
        for worker in probes:
            worker.wait_ready(cluster.ready_timeout)
        cluster.start_beat()

        async def inject(run: ChaosRun) -> None:
            for progress in (0.2, 0.5, 0.8) if LONG else (0.25, 0.6):
                await run.until_progress(progress)
                run.fault("redis stopped")
                await asyncio.to_thread(servers.redis.kill)
                await asyncio.sleep(down)
                await asyncio.to_thread(servers.redis.start)
                run.fault("redis started empty")
                answered = await probe_workers(run, probes, since=time.monotonic())
                recovery.extend(t for t in answered.values() if t is not None)
                not_consuming.extend(h for h, t in answered.items() if t is None)
            run.notes["seconds from Redis back to each worker consuming"] = [
                round(t, 2) for t in recovery
            ]
            run.notes["workers not consuming 30 s after a restart"] = not_consuming

        run = ChaosRun(cluster, "S7 Redis down for seconds", workflows=WORKFLOWS, spread=SPREAD)
        report = asyncio.run(run.run(inject))
        print("\n" + report.figures())
        _assert_survived(cluster, run)
        assert not not_consuming, f"alive but not consuming after a restart: {not_consuming}"
        assert not report.violations(), "\n".join(report.violations())


def _start_skewed_worker(cluster: LocalCluster, library: str, offset: str) -> WorkerProcess:
    """A worker under libfaketime. Celery's remote control ignores it (its pidbox messages
    carry the sender's expiry, an hour in its past), so readiness comes from its log."""
    assert cluster.log_dir is not None
    env = {**cluster.env, "LD_PRELOAD": library, "FAKETIME": offset}
    worker = WorkerProcess.start(
        env,
        ["default"],
        log_path=cluster.log_dir / "worker-skewed.log",
        name=f"ruvon-test-{cluster.run_id}-skewed",
        client=cluster.client,
    )
    deadline = time.monotonic() + 60
    while " ready." not in worker.log():
        if worker.process.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            raise RuntimeError(f"the skewed worker did not start:\n{worker.log_tail()}")
        time.sleep(0.1)
    return worker
