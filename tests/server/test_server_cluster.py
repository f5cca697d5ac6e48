"""The server as a cluster client: on PostgreSQL with real Celery workers behind it.

Operations are stored and announced (``ruvon.Client``'s Celery path); the workers run the steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from ruvon.server.app import create_app
from ruvon.testing.cluster import LocalCluster
from tests.integration.distributed_support import settings_of, started_cluster
from tests.server.conftest import OPERATOR, TOKENS, VIEWER, auth

API = "/api/v1"
WAIT = 30.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with started_cluster() as running:
        yield running


@pytest.fixture
async def api(cluster: LocalCluster) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_of(cluster), TOKENS)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ruvon.test") as client:
            yield client


async def wait_for(api: httpx.AsyncClient, workflow_id: str, status: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        response = await api.get(f"{API}/workflows/{workflow_id}", headers=auth(VIEWER))
        body: dict[str, Any] = response.json()
        if body["status"] == status:
            return body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_start_and_resume_run_on_the_workers(
    api: httpx.AsyncClient, cluster: LocalCluster
) -> None:
    started = await api.post(
        f"{API}/workflows", json={"type": "HumanReview", "data": {}}, headers=auth(OPERATOR)
    )
    assert started.status_code == 201, started.text
    workflow_id = started.json()["id"]
    await wait_for(api, workflow_id, "WAITING_HUMAN")

    counter = f"{cluster.key_prefix}reviews:{workflow_id}"
    resumed = await api.post(
        f"{API}/workflows/{workflow_id}/resume",
        json={"input": {"verdict": "ok", "counter": counter}},
        headers=auth(OPERATOR),
    )
    assert resumed.status_code == 200, resumed.text
    done = await wait_for(api, workflow_id, "COMPLETED")
    workers = {pid for worker in cluster.workers for pid in worker.child_pids()}
    assert done["state"]["verdict"] == "ok" and done["state"]["finished"] is True
    assert done["state"]["reviewed_by_pid"] in workers  # a worker ran it, not the server

    history = await api.get(f"{API}/workflows/{workflow_id}/history", headers=auth(VIEWER))
    body = history.json()
    actions = [e["details"] for e in body["audit"] if e["event_type"] == "OPERATOR_ACTION"]
    assert actions == [{"action": "start", "by": "otto"}, {"action": "resume", "by": "otto"}]
    assert "Review" in {run["step_name"] for run in body["step_runs"]}  # Finish continues inline


@pytest.mark.slow
async def test_cluster_view_lists_the_workers_that_answer_a_ping(
    api: httpx.AsyncClient, cluster: LocalCluster
) -> None:
    response = await api.get(f"{API}/cluster", params={"ping": "true"}, headers=auth(VIEWER))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "cluster" and body["broker"]["ok"] is True
    assert body["pinged"] == sorted(worker.hostname for worker in cluster.workers)
    assert {w["answered_ping"] for w in body["workers"]} == {True}
    [queue] = [q for q in body["queues"] if q["name"] == cluster.env["RUVON_DEFAULT_QUEUE"]]
    assert queue["depth"] == 0  # the workers keep it empty


@pytest.mark.slow
async def test_history_shows_each_parallel_branch_run_on_the_workers(
    api: httpx.AsyncClient, cluster: LocalCluster
) -> None:
    started = await api.post(
        f"{API}/workflows", json={"type": "FanOut", "data": {"size": 3}}, headers=auth(OPERATOR)
    )
    assert started.status_code == 201, started.text
    workflow_id = started.json()["id"]
    await wait_for(api, workflow_id, "COMPLETED")
    history = await api.get(f"{API}/workflows/{workflow_id}/history", headers=auth(VIEWER))
    [step] = history.json()["parallel"]
    assert step["step_name"] == "Square_All" and step["run_number"] == 1
    assert step["merged"] is True and step["failed"] == {}
    assert (step["branch_count"], step["succeeded"]) == (3, 3)
    branches = step["branches"]
    assert sorted(b["name"] for b in branches) == [f"Square_All[{i}]" for i in range(3)]
    pids = {pid for worker in cluster.workers for pid in worker.child_pids()}
    for branch in branches:
        assert branch["status"] == "DONE" and branch["succeeded"] is True, branch
        assert branch["attempt"] == 1 and branch["queue"] == cluster.env["RUVON_DEFAULT_QUEUE"]
        assert int(branch["worker"].rsplit(":", 1)[1]) in pids, branch  # host:pid of a worker
        assert branch["started_at"] <= branch["finished_at"]


@pytest.mark.slow
async def test_approve_on_the_cluster_continues_on_the_workers(api: httpx.AsyncClient) -> None:
    started = await api.post(
        f"{API}/workflows", json={"type": "ApprovalTimeout", "data": {}}, headers=auth(OPERATOR)
    )
    assert started.status_code == 201, started.text
    workflow_id = started.json()["id"]
    await wait_for(api, workflow_id, "WAITING_HUMAN")
    history = await api.get(f"{API}/workflows/{workflow_id}/history", headers=auth(VIEWER))
    [timer] = history.json()["timers"]
    assert (timer["kind"], timer["step_name"], timer["state"]) == (
        "approval_timeout",
        "Approve",
        "pending",
    )
    approved = await api.post(
        f"{API}/workflows/{workflow_id}/approve", json={"reason": "ok"}, headers=auth(OPERATOR)
    )
    assert approved.status_code == 200, approved.text
    done = await wait_for(api, workflow_id, "COMPLETED")
    assert done["state"]["approved"] is True and done["state"]["approver"] == "otto"
    history = await api.get(f"{API}/workflows/{workflow_id}/history", headers=auth(VIEWER))
    body = history.json()
    actions = [e["details"] for e in body["audit"] if e["event_type"] == "OPERATOR_ACTION"]
    assert actions == [{"action": "start", "by": "otto"}, {"action": "approve", "by": "otto"}]
    assert body["timers"] == []  # decided in time: nothing fired
