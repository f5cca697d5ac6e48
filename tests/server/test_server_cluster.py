"""The server as a cluster client: on PostgreSQL with real Celery workers behind it.

Operations are stored and announced (``ruvon.Client``'s Celery path); the workers run the steps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from ruvon.server.app import create_app
from ruvon.testing.cluster import LocalCluster
from tests.integration.distributed_support import settings_of, started_cluster
from tests.server.conftest import OPERATOR, TOKENS, VIEWER, auth
from tests.server.ui_support import csrf_of, log_in

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
async def test_the_ui_resumes_on_the_workers_and_shows_their_step_runs(
    api: httpx.AsyncClient, cluster: LocalCluster
) -> None:
    started = await api.post(
        f"{API}/workflows", json={"type": "HumanReview", "data": {}}, headers=auth(OPERATOR)
    )
    workflow_id = started.json()["id"]
    await wait_for(api, workflow_id, "WAITING_HUMAN")
    await log_in(api, OPERATOR)
    page = await api.get(f"/ui/workflows/{workflow_id}")
    assert 'name="input_json"' in page.text  # no input model: a JSON object
    counter = f"{cluster.key_prefix}reviews:{workflow_id}"
    answer = json.dumps({"verdict": "fine", "counter": counter})
    resumed = await api.post(
        f"/ui/workflows/{workflow_id}/resume",
        data={"csrf": csrf_of(page.text), "input_json": answer},
    )
    assert resumed.status_code == 303, resumed.text
    done = await wait_for(api, workflow_id, "COMPLETED")
    assert done["state"]["verdict"] == "fine"
    history = (await api.get(f"{API}/workflows/{workflow_id}/history", headers=auth(VIEWER))).json()
    workers = {run["worker"] for run in history["step_runs"] if run["worker"]}
    assert workers
    page = await api.get(f"/ui/workflows/{workflow_id}")
    assert "from the step runs" in page.text
    assert all(worker in page.text for worker in workers)  # the timeline names them
