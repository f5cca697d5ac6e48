"""Cluster states for the server's tests: a worker's heartbeat files, and recoveries made by the
beat's own statements (``requeue_crashed``, ``redispatch_lost``) on the server's database."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ruvon.config import Settings
from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider
from ruvon.providers.runs import Lane
from tests.server.conftest import ADMIN, auth

API = "/api/v1"


def write_heartbeat(directory: Path, node: str, *, age: float = 0.0) -> None:
    """A worker's heartbeat files as a worker writes them, ``age`` seconds old."""
    alive = directory / f"{node}.alive"
    alive.write_text(json.dumps({"node": node, "pid": 4242, "queues": ["q"]}), encoding="utf-8")
    (directory / f"{node}.ready").write_text("", encoding="utf-8")
    if age:
        moment = time.time() - age
        for path in (alive, directory / f"{node}.ready"):
            os.utime(path, (moment, moment))


@dataclass(frozen=True)
class Recovered:
    """Two workflows the beat's statements recovered: a dead worker's run, a lost message."""

    crashed: str
    lost: str
    lost_run: int


async def recover_two_runs(
    http: httpx.AsyncClient, settings: Settings, token: str = ADMIN
) -> Recovered:
    """Start two workflows (``token`` may); re-queue the first's run as a dead worker's, re-send
    the second's."""
    crashed = await http.post(f"{API}/workflows", json={"type": "ApiTick"}, headers=auth(token))
    lost = await http.post(f"{API}/workflows", json={"type": "ApiTick"}, headers=auth(token))
    assert crashed.status_code == lost.status_code == 201
    store = PostgresPersistenceProvider(settings.database_url)
    await store.initialize()
    try:
        [crashed_run] = await store.list_step_runs(crashed.json()["id"])
        [lost_run] = await store.list_step_runs(lost.json()["id"])
        # A worker claims the first run with a short lease, then dies: the sweep re-queues it.
        assert await store.claim_run(crashed_run.run_id, "dead-worker@host", 0.05) is not None
        await asyncio.sleep(0.2)
        requeued = await store.requeue_crashed(max_attempts=3, limit=10)
        assert [run.run_id for run in requeued] == [crashed_run.run_id]
        # The second run's message is lost (the broker says none wait): two sweeps re-send it.
        as_of = (await store.unclaimed_queues(0.0)).as_of
        assert as_of is not None
        first = await store.redispatch_lost(0.0, 10, {Lane(settings.default_queue, 0): 0}, as_of)
        assert lost_run.run_id in first.suspected
        as_of = (await store.unclaimed_queues(0.0)).as_of
        assert as_of is not None
        second = await store.redispatch_lost(
            0.0, 10, {Lane(settings.default_queue, 0): 0}, as_of, first.suspected
        )
        assert lost_run.run_id in [run.run_id for run in second.resent]
    finally:
        await store.close()
    return Recovered(crashed.json()["id"], lost.json()["id"], lost_run.run_id)
