"""Bulk retry / cancel by filter: a ``ruvon.BulkOperation`` workflow run by the server's process.

The ``api`` fixture runs steps in the test process on both databases (the embedded path); the
cluster path, with real Celery workers, is in test_server_cluster.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from typing import Any

import asyncpg
import httpx
import pytest

from tests.server.conftest import ADMIN, OPERATOR, VIEWER, auth
from tests.server.test_server_operations import actions, history
from tests.server.test_server_reads import API, start

WAIT = 20.0


async def wait_settled(api: httpx.AsyncClient, workflow_id: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        response = await api.get(f"{API}/workflows/{workflow_id}", headers=auth(VIEWER))
        body: dict[str, Any] = response.json()
        if body["status"] not in ("ACTIVE", "PENDING_ASYNC"):
            return body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.02)


async def bulk(api: httpx.AsyncClient, action: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(f"{API}/bulk/{action}", json=body, headers=auth(ADMIN))
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    assert accepted["workflow_type"] == "ruvon.BulkOperation"
    done = await wait_settled(api, accepted["id"])
    assert done["status"] == "COMPLETED", done
    return done


async def status_of(api: httpx.AsyncClient, workflow_id: str) -> str:
    response = await api.get(f"{API}/workflows/{workflow_id}", headers=auth(VIEWER))
    status: str = response.json()["status"]
    return status


async def break_definition(database_url: str, workflow_id: str) -> None:
    """Store an unreadable definition snapshot: loading this workflow to move it fails."""
    sql = "UPDATE workflow_executions SET definition_snapshot = '{}' WHERE id = "
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            conn.execute(sql + "?", (workflow_id,))
        return
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(sql + "$1", workflow_id)
    finally:
        await conn.close()


async def test_bulk_retry_retries_each_failed_match_and_one_failure_does_not_stop_the_rest(
    api: httpx.AsyncClient, database_url: str
) -> None:
    failed = [(await start(api, "ExecNonRetryable", n=n))["id"] for n in range(3)]
    waiting = (await start(api, "ExecHuman"))["id"]
    await break_definition(database_url, failed[1])

    done = await bulk(api, "retry", {"filter": {"type": "ExecNonRetryable"}, "max_count": 10})
    state = done["state"]
    by_id = {outcome["id"]: outcome for outcome in state["outcomes"]}
    assert set(by_id) == set(failed)  # status FAILED by default: the waiting one is not matched
    assert by_id[failed[0]]["outcome"] == by_id[failed[2]]["outcome"] == "ok"
    assert by_id[failed[1]]["outcome"] == "error" and by_id[failed[1]]["error"]
    assert state["counts"] == {"ok": 2, "skipped": 0, "error": 1, "dry_run": 0}
    assert state["truncated"] is False
    for workflow_id in (failed[0], failed[2]):
        assert {"action": "retry", "by": "ada"} in actions(await history(api, workflow_id))
        assert await status_of(api, workflow_id) == "FAILED"  # ran again, failed again
    assert await status_of(api, waiting) == "WAITING_HUMAN"
    assert actions(await history(api, done["id"])) == [{"action": "start", "by": "ada"}]
    # Visible like any other workflow: in the list, by its type.
    listed = await api.get(
        f"{API}/workflows", params={"type": "ruvon.BulkOperation"}, headers=auth(VIEWER)
    )
    assert [item["id"] for item in listed.json()["items"]] == [done["id"]]


async def test_bulk_cancel_dry_run_changes_nothing_and_max_count_bounds_the_rest(
    api: httpx.AsyncClient,
) -> None:
    waiting = [(await start(api, "ExecHuman", n=n))["id"] for n in range(3)]
    finished = (await start(api, "ExecNonRetryable"))["id"]  # FAILED: terminal, skipped

    dry = await bulk(api, "cancel", {"filter": {}, "max_count": 10, "dry_run": True})
    outcomes = {o["id"]: o["outcome"] for o in dry["state"]["outcomes"]}
    assert outcomes == {**dict.fromkeys(waiting, "dry_run"), finished: "skipped"}
    assert [await status_of(api, w) for w in waiting] == ["WAITING_HUMAN"] * 3

    body = {"filter": {"type": "ExecHuman"}, "max_count": 2, "reason": "bad batch"}
    done = await bulk(api, "cancel", body)
    state = done["state"]
    assert [o["id"] for o in state["outcomes"]] == [waiting[2], waiting[1]]  # newest first
    assert state["counts"]["ok"] == 2 and state["truncated"] is True
    assert [await status_of(api, w) for w in waiting] == ["WAITING_HUMAN", "CANCELLED", "CANCELLED"]
    cancelled = await api.get(f"{API}/workflows/{waiting[2]}", headers=auth(VIEWER))
    assert cancelled.json()["error"] == "bad batch"
    assert {"action": "cancel", "by": "ada"} in actions(await history(api, waiting[2]))


async def test_bulk_cancel_skips_what_is_already_done(api: httpx.AsyncClient) -> None:
    made = (await start(api, "ExecHuman"))["id"]
    await api.post(f"{API}/workflows/{made}/cancel", headers=auth(OPERATOR))
    done = await bulk(api, "cancel", {"filter": {"type": "ExecHuman"}, "max_count": 5})
    (outcome,) = done["state"]["outcomes"]
    assert outcome["outcome"] == "skipped" and "CANCELLED" in outcome["reason"]


@pytest.mark.parametrize("action", ["retry", "cancel"])
async def test_bulk_needs_an_admin(api: httpx.AsyncClient, action: str) -> None:
    body = {"filter": {}, "max_count": 1}
    url = f"{API}/bulk/{action}"
    assert (await api.post(url, json=body)).status_code == 401
    for token in (VIEWER, OPERATOR):
        response = await api.post(url, json=body, headers=auth(token))
        assert response.status_code == 403, response.text
        assert "admin" in response.json()["message"]
    listed = await api.get(f"{API}/workflows", headers=auth(VIEWER))
    assert listed.json()["items"] == []  # nothing was started


@pytest.mark.parametrize(
    ("action", "body", "parameter"),
    [
        ("retry", {"filter": {}}, "max_count"),  # the confirmation is required
        ("retry", {"filter": {}, "max_count": 0}, "max_count"),
        ("cancel", {"filter": {}, "max_count": 10_001}, "max_count"),
        ("retry", {"filter": {"status": "NAPPING"}, "max_count": 1}, "filter.status"),
        ("retry", {"filter": {"status": "ACTIVE"}, "max_count": 1}, "filter.status"),
        ("cancel", {"filter": {"status": "COMPLETED"}, "max_count": 1}, "filter.status"),
        ("cancel", {"filter": {"since": "yesterday"}, "max_count": 1}, "filter.since"),
        (
            "cancel",
            {"filter": {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01"}, "max_count": 1},
            "filter.until",
        ),
        ("cancel", {"filter": {"owner": "x"}, "max_count": 1}, "filter.owner"),
        ("cancel", {"max_count": 1}, "filter"),
    ],
)
async def test_bad_bulk_requests_are_422_naming_the_parameter(
    api: httpx.AsyncClient, action: str, body: dict[str, Any], parameter: str
) -> None:
    response = await api.post(f"{API}/bulk/{action}", json=body, headers=auth(ADMIN))
    assert response.status_code == 422, response.text
    assert parameter in [detail["parameter"] for detail in response.json()["details"]]


def test_the_bulk_step_imports_without_the_server_extra() -> None:
    """Workers import the step function by path; they need not have FastAPI installed."""
    code = (
        "import sys; sys.modules['fastapi'] = sys.modules['starlette'] = None\n"
        "import ruvon.server.bulk.definition, ruvon.server.bulk.steps\n"
        "print(ruvon.server.bulk.definition.bulk_definition().workflow_type)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ruvon.BulkOperation"


async def test_openapi_describes_the_streams_and_bulk_actions(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]
    stream = paths["/api/v1/workflows/{workflow_id}/events"]["get"]["responses"]["200"]
    assert "text/event-stream" in stream["content"]
    assert "/api/v1/events" in paths
    retry = paths["/api/v1/bulk/retry"]["post"]
    assert "202" in retry["responses"] and "requestBody" in retry
