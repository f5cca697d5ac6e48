"""Concurrency keys and rate limits on real ``celery worker`` subprocesses over PostgreSQL.

A worker that may not run a gated step gives its run back unspent: parked until the holder
that frees a slot wakes it, or due at its rate-limit turn. A slot is bound to its holder's run
lease, so a SIGKILLed worker's slot frees when its lease lapses and the beat wakes the next.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from ruvon.models import WorkflowStatus
from ruvon.testing.cluster import LocalCluster
from tests.integration.distributed_support import (
    WAIT,
    client_of,
    fetch,
    redis_list,
    started_cluster,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TERMINAL = {status for status in WorkflowStatus if status.is_terminal}
LEASE = 2.0


def _calls(cluster: LocalCluster, customer: object) -> list[tuple[float, float]]:
    return [
        (float(a), float(b))
        for a, _, b in (item.partition(":") for item in redis_list(cluster, f"calls:{customer}"))
    ]


def _peak(calls: list[tuple[float, float]]) -> int:
    """The most calls that were open at one instant."""
    edges = sorted([(start, 1) for start, _ in calls] + [(end, -1) for _, end in calls])
    running = peak = 0
    for _, step in edges:  # an end sorts before a start at the same instant (-1 < 1)
        running += step
        peak = max(peak, running)
    return peak


def test_a_step_key_caps_its_calls_cluster_wide_and_the_rest_wait_unspent() -> None:
    with started_cluster(workers=2, concurrency=3) as cluster:

        async def scenario() -> list[object]:
            async with client_of(cluster) as client:
                ones = [await client.start("CappedCalls", {"customer": 1, "hold": 0.4})
                        for _ in range(6)]  # fmt: skip
                twos = [await client.start("CappedCalls", {"customer": 2, "hold": 0.4})
                        for _ in range(2)]  # fmt: skip
                return [await client.wait(r.id, timeout=WAIT, until=TERMINAL)
                        for r in [*ones, *twos]]  # fmt: skip

        done = asyncio.run(scenario())
        assert all(d.status is WorkflowStatus.COMPLETED for d in done), done  # type: ignore[attr-defined]
        ones, twos = _calls(cluster, 1), _calls(cluster, 2)
        runs = asyncio.run(
            fetch(cluster, "SELECT attempt, status FROM step_runs WHERE kind = 'step'")
        )
        slots = asyncio.run(fetch(cluster, "SELECT count(*) FROM concurrency_slots"))
    assert len(ones) == 6 and len(twos) == 2
    assert _peak(ones) == 2  # six calls, 6 worker processes, never more than two at once
    assert _peak(twos) == 2  # another key is not held back by the first
    # Each waited its turn, parked, without spending an attempt; nothing is left held.
    assert {tuple(r) for r in runs} == {(1, "DONE")}
    assert slots[0][0] == 0


def test_an_inline_step_after_saves_hands_over_to_an_advance_run_and_keeps_the_limit() -> None:
    with started_cluster(workers=1, concurrency=3) as cluster:

        async def scenario() -> list[object]:
            async with client_of(cluster) as client:
                started = [await client.start("SoloCall", {"customer": 5, "hold": 0.3})
                           for _ in range(3)]  # fmt: skip
                return [await client.wait(r.id, timeout=WAIT, until=TERMINAL) for r in started]

        done = asyncio.run(scenario())
        advances = asyncio.run(fetch(
            cluster, "SELECT count(*) FROM step_runs WHERE kind = 'advance' AND branch LIKE 'v%'"
        ))  # fmt: skip
        calls = _calls(cluster, 5)
    assert all(d.status is WorkflowStatus.COMPLETED for d in done), done  # type: ignore[attr-defined]
    assert len(calls) == 3 and _peak(calls) == 1
    assert advances[0][0] >= 1  # at least one waited in an advance run of its own


def test_a_killed_holders_slot_frees_with_its_lease_and_the_beat_wakes_the_next() -> None:
    """Two calls hang holding both slots of their key; the others park. SIGKILL the worker:
    the hung runs' leases lapse, so do their slots, and the beat's sweeps re-queue the runs
    and wake the parked ones (nobody released anything)."""
    env = {"RUVON_STEP_LEASE_SECONDS": str(LEASE), "RUVON_HEARTBEAT_SECONDS": "0.5",
           "RUVON_SWEEP_SECONDS": "0.5"}  # fmt: skip
    with started_cluster(env, workers=1, concurrency=4) as cluster:
        cluster.start_beat()

        async def scenario() -> tuple[list[object], float, list[object]]:
            async with client_of(cluster) as client:
                hang = {"customer": 9, "hold": 0.1, "hang_first": True}
                stuck = [await client.start("CappedCalls", hang) for _ in range(2)]
                for record in stuck:
                    await _started(cluster, record.id)
                others = [await client.start("CappedCalls", {"customer": 9, "hold": 0.1})
                          for _ in range(3)]  # fmt: skip
                await asyncio.sleep(1.0)
                parked = await fetch(
                    cluster, "SELECT state, count(*) FROM concurrency_slots GROUP BY state"
                )
                killed_at = time.time()
                await asyncio.to_thread(cluster.workers[0].kill)
                await asyncio.to_thread(cluster.start_worker, name="second")
                done = [await client.wait(r.id, timeout=WAIT, until=TERMINAL)
                        for r in [*stuck, *others]]  # fmt: skip
                return done, killed_at, [tuple(r) for r in parked]

        done, killed_at, parked = asyncio.run(scenario())
        calls = _calls(cluster, 9)
        slots = asyncio.run(fetch(cluster, "SELECT count(*) FROM concurrency_slots"))
    assert all(d.status is WorkflowStatus.COMPLETED for d in done), done  # type: ignore[attr-defined]
    assert sorted(parked) == [("HOLDING", 2), ("WAITING", 3)]
    assert len(calls) == 5 and _peak(calls) <= 2
    assert all(start > killed_at for start, _ in calls)  # nobody ran beside the hung pair
    assert slots[0][0] == 0  # nothing leaked


def test_a_workflow_key_admits_the_next_workflow_when_the_first_ends() -> None:
    with started_cluster({"RUVON_SWEEP_SECONDS": "0.5"}, workers=1, concurrency=2) as cluster:
        cluster.start_beat()

        async def scenario() -> None:
            async with client_of(cluster) as client:
                first = await client.start("OnePerTenant", {"customer": 3})
                await client.wait(first.id, timeout=WAIT, until={WorkflowStatus.WAITING_HUMAN})
                second = await client.start("OnePerTenant", {"customer": 3})
                third = await client.start("OnePerTenant", {"customer": 3})
                await asyncio.sleep(1.0)
                line = await fetch(
                    cluster, "SELECT holder, state FROM concurrency_slots ORDER BY since"
                )
                assert [tuple(r) for r in line] == [
                    (first.id, "HOLDING"), (second.id, "WAITING"), (third.id, "WAITING")
                ]  # fmt: skip
                assert (await client.get(second.id)).status is WorkflowStatus.ACTIVE
                # A waiter cancelled leaves the line; its parked run is closed, not kept.
                await client.cancel(third.id, reason="changed my mind")
                await _until_no_open_runs(cluster, third.id)
                await client.cancel(first.id, reason="make room")
                later = await client.wait(
                    second.id, timeout=WAIT, until={WorkflowStatus.WAITING_HUMAN}
                )
                assert later.status is WorkflowStatus.WAITING_HUMAN
                holders = await fetch(
                    cluster, "SELECT holder, state FROM concurrency_slots ORDER BY holder"
                )
                assert [tuple(r) for r in holders] == [(second.id, "HOLDING")]

        asyncio.run(scenario())


async def _until_no_open_runs(cluster: LocalCluster, workflow_id: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        open_runs = await fetch(
            cluster,
            "SELECT count(*) FROM step_runs WHERE workflow_id = $1 AND status <> 'SKIPPED'"
            " AND status <> 'DONE'",
            workflow_id,
        )
        if open_runs[0][0] == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the parked run of {workflow_id} was never closed")


def test_a_rate_limit_spaces_calls_cluster_wide() -> None:
    asked = 0.0
    with started_cluster(workers=2, concurrency=2) as cluster:

        async def scenario() -> list[object]:
            async with client_of(cluster) as client:
                nonlocal asked
                asked = time.time()
                started = [await client.start("RatedCalls", {"hold": 0}) for _ in range(24)]
                return [await client.wait(r.id, timeout=WAIT, until=TERMINAL) for r in started]

        done = asyncio.run(scenario())
        starts = sorted(start for start, _ in _calls(cluster, "all"))
        runs = asyncio.run(fetch(cluster, "SELECT attempt, reserved_step FROM step_runs"))
    assert all(d.status is WorkflowStatus.COMPLETED for d in done), done  # type: ignore[attr-defined]
    assert len(starts) == 24
    # burst 2, then 10 a second: the k-th (from 0) no sooner than k - 1 intervals after the
    # first was asked for, and no window much fuller than the limit (a call's process may start
    # it a little late: the bench measures the window on an idle machine)
    for k, start in enumerate(starts):
        assert start - asked >= max(k - 1, 0) * 0.1 - 0.01, (k, start - asked)
    for i in range(len(starts)):
        for j in range(i + 1, len(starts)):
            assert j - i + 1 <= 2 + 10 * (starts[j] - starts[i]) + 1, (i, j)
    assert {r[0] for r in runs} == {1}  # deferred to their turn, no attempt spent
    assert any(r[1] == "Call" for r in runs)  # and those were marked reserved


async def _started(cluster: LocalCluster, workflow_id: str) -> None:
    client = redis.Redis.from_url(cluster.env["RUVON_BROKER_URL"])
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline:
            if client.get(f"{cluster.key_prefix}started:{workflow_id}:1") is not None:
                return
            await asyncio.sleep(0.05)
    finally:
        client.close()
    raise AssertionError(f"{workflow_id} never started")
