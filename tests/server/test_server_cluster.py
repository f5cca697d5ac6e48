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
from tests.server.conftest import ADMIN, OPERATOR, TOKENS, VIEWER, auth
from tests.server.ui_support import csrf_of, log_in, row_cells

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


@pytest.mark.slow
async def test_bulk_cancel_runs_on_the_workers(
    api: httpx.AsyncClient, cluster: LocalCluster
) -> None:
    """ruvon.BulkOperation is in no worker's registry: they run it from its stored snapshot."""
    waiting = []
    for _ in range(3):
        started = await api.post(
            f"{API}/workflows", json={"type": "HumanReview", "data": {}}, headers=auth(OPERATOR)
        )
        waiting.append(started.json()["id"])
    for workflow_id in waiting:
        await wait_for(api, workflow_id, "WAITING_HUMAN")
    await api.post(f"{API}/workflows/{waiting[0]}/cancel", headers=auth(OPERATOR))

    body = {"filter": {"type": "HumanReview"}, "max_count": 10, "reason": "cleanup"}
    accepted = await api.post(f"{API}/bulk/cancel", json=body, headers=auth(ADMIN))
    assert accepted.status_code == 202, accepted.text
    bulk_id = accepted.json()["id"]
    done = await wait_for(api, bulk_id, "COMPLETED")
    outcomes = {o["id"]: o["outcome"] for o in done["state"]["outcomes"]}
    assert {workflow_id: outcomes.get(workflow_id) for workflow_id in waiting} == {
        waiting[0]: "skipped",  # already CANCELLED
        waiting[1]: "ok",
        waiting[2]: "ok",
    }
    for workflow_id in waiting[1:]:
        cancelled = await wait_for(api, workflow_id, "CANCELLED")
        assert cancelled["error"] == "cleanup"

    history = await api.get(f"{API}/workflows/{bulk_id}/history", headers=auth(VIEWER))
    runs = history.json()["step_runs"]
    pids = {str(pid) for worker in cluster.workers for pid in worker.child_pids()}
    assert runs and all(run["worker"].rsplit(":", 1)[-1] in pids for run in runs)
    cancels = [
        e["details"]
        for e in (
            await api.get(f"{API}/workflows/{waiting[1]}/history", headers=auth(VIEWER))
        ).json()["audit"]
        if e["event_type"] == "OPERATOR_ACTION"
    ]
    assert {"action": "cancel", "by": "ada"} in cancels


@pytest.mark.slow
async def test_bulk_retry_on_the_workers_enqueues_the_failed_step_again(
    api: httpx.AsyncClient,
) -> None:
    started = await api.post(
        f"{API}/workflows", json={"type": "StepTimeout", "data": {}}, headers=auth(OPERATOR)
    )
    workflow_id = started.json()["id"]
    await wait_for(api, workflow_id, "FAILED")

    body = {"filter": {"type": "StepTimeout", "status": "FAILED"}, "max_count": 5}
    accepted = await api.post(f"{API}/bulk/retry", json=body, headers=auth(ADMIN))
    assert accepted.status_code == 202, accepted.text
    done = await wait_for(api, accepted.json()["id"], "COMPLETED")
    assert [(o["id"], o["outcome"]) for o in done["state"]["outcomes"]] == [(workflow_id, "ok")]

    deadline = asyncio.get_running_loop().time() + WAIT
    while True:  # a worker runs the step again (and it times out again)
        history = (
            await api.get(f"{API}/workflows/{workflow_id}/history", headers=auth(VIEWER))
        ).json()
        attempts = [run for run in history["step_runs"] if run["step_name"] == "Too_Slow"]
        if len(attempts) >= 2 and all(run["finished_at"] for run in attempts):
            break
        assert asyncio.get_running_loop().time() < deadline, attempts
        await asyncio.sleep(0.05)
    actions = [e["details"] for e in history["audit"] if e["event_type"] == "OPERATOR_ACTION"]
    assert {"action": "retry", "by": "ada"} in actions
    assert "WORKFLOW_RETRIED" in [e["event_type"] for e in history["audit"]]


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


@pytest.mark.slow
async def test_the_ui_cluster_page_pings_the_workers(
    api: httpx.AsyncClient, cluster: LocalCluster
) -> None:
    await log_in(api, VIEWER)
    page = await api.get("/ui/cluster", params={"ping": "true"})
    assert page.status_code == 200, page.text
    count = len(cluster.workers)
    assert f"{count} worker{'s' if count != 1 else ''} answered a ping." in page.text
    for worker in cluster.workers:  # no heartbeat files here: known from the ping alone
        name, _, host = worker.hostname.partition("@")
        cells = row_cells(page.text, "data-node", worker.hostname)
        assert cells[:5] == [name, host, "—", "—", "answered a ping"]
        assert cells[6] == "answered"
    queue = cluster.env["RUVON_DEFAULT_QUEUE"]
    assert row_cells(page.text, "data-queue", queue)[1] == "0"  # the workers keep it empty


@pytest.mark.slow
async def test_a_failed_async_steps_traceback_reaches_the_history_and_the_page(
    api: httpx.AsyncClient, cluster: LocalCluster
) -> None:
    started = await api.post(
        f"{API}/workflows", json={"type": "DistributedSaga", "data": {}}, headers=auth(OPERATOR)
    )
    workflow_id = started.json()["id"]
    done = await wait_for(api, workflow_id, "FAILED_ROLLED_BACK")
    assert done["error"].startswith("ValueError: the async step failed on purpose [worker ")
    body = (await api.get(f"{API}/workflows/{workflow_id}/history", headers=auth(VIEWER))).json()
    [failed] = [e for e in body["audit"] if e["event_type"] == "STEP_FAILED"]
    text = failed["details"]["traceback"]
    assert "cluster_workflows/steps.py" in text and "in fail_async" in text
    assert text.rstrip().endswith("ValueError: the async step failed on purpose")
    [ship] = [run for run in body["step_runs"] if run["step_name"] == "Ship"]
    assert ship["run_id"] == failed["details"]["run"]
    assert (failed["details"]["worker"], failed["details"]["attempt"]) == (
        ship["worker"],
        ship["attempt"],
    )
    assert ship["traceback"] == text  # the step run carries its failed attempt's traceback

    await log_in(api, VIEWER)
    page = (await api.get(f"/ui/workflows/{workflow_id}")).text
    assert 'data-testid="traceback"' in page and "in fail_async" in page


@pytest.mark.slow
async def test_each_failed_attempt_of_a_retried_async_step_keeps_its_traceback(
    api: httpx.AsyncClient,
) -> None:
    started = await api.post(
        f"{API}/workflows", json={"type": "Retries", "data": {}}, headers=auth(OPERATOR)
    )
    workflow_id = started.json()["id"]
    await wait_for(api, workflow_id, "COMPLETED")
    body = (await api.get(f"{API}/workflows/{workflow_id}/history", headers=auth(VIEWER))).json()
    retries = [e["details"] for e in body["audit"] if e["event_type"] == "STEP_RETRY"]
    assert [r["attempt"] for r in retries] == [1, 2]
    for retry in retries:
        assert "in flaky" in retry["traceback"]
        assert f"transient failure on attempt {retry['attempt']}" in retry["traceback"]
    [flaky] = [run for run in body["step_runs"] if run["step_name"] == "Flaky"]
    assert "attempt 2" in flaky["traceback"]  # its last failed attempt
