"""``GET /concurrency`` and a workflow's ``concurrency`` field, on SQLite and PostgreSQL.

One ``UiGate`` workflow holds its lane's slot (it waits at its approval step, in flight); a
second of the same lane waits for it, its ``run()`` blocked in this process (the server's own
runtime and store), until the first is cancelled and the second is admitted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from ruvon.models import WorkflowStatus
from ruvon.workflow import Workflow
from tests.server.conftest import OPERATOR, VIEWER, Served, auth, serve

API = "/api/v1"
GATE_REGISTRY = Path(__file__).parent / "ui_workflows" / "gate_registry.yaml"
LANE = "lane-7"


async def _get(http: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await http.get(f"{API}{path}", params=params, headers=auth(VIEWER))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _line(http: httpx.AsyncClient, waiters: int) -> dict[str, Any]:
    """The lane's line once ``waiters`` wait in it (the waiter queues as its run starts)."""
    for _ in range(200):
        keys = (await _get(http, "/concurrency", key=LANE))["keys"]
        if keys and len(keys[0]["waiting"]) == waiters:
            line: dict[str, Any] = keys[0]
            return line
        await asyncio.sleep(0.02)
    raise AssertionError(f"the line of {LANE} never had {waiters} waiter(s): {keys}")


@contextlib.asynccontextmanager
async def waiting_run(workflow: Workflow) -> AsyncIterator[asyncio.Future[WorkflowStatus]]:
    """``workflow.run()`` as a task (it blocks while it waits for a slot), cancelled if the
    test leaves it waiting."""
    task = asyncio.ensure_future(workflow.run())
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def test_the_holder_and_the_waiter_of_a_key_and_each_workflows_slot(
    database_url: str,
) -> None:
    async with serve(database_url, GATE_REGISTRY) as served:
        http = served.http
        started = await http.post(
            f"{API}/workflows",
            json={"type": "UiGate", "data": {"lane": "7"}, "priority": 3},
            headers=auth(OPERATOR),
        )
        assert started.status_code == 201, started.text
        first = started.json()
        assert first["status"] == "WAITING_HUMAN"  # in flight: it holds the lane's slot
        second = await served.runtime.builder.create_workflow("UiGate", {"lane": "7"})
        async with waiting_run(second) as run:
            line = await _line(http, waiters=1)
            assert not run.done()
            assert line["key"] == LANE and line["limit"] == 1
            [holder] = line["holding"]
            assert holder["workflow_id"] == first["id"] and holder["holder"] == first["id"]
            assert holder["step_name"] is None and holder["position"] is None
            assert holder["priority"] == 3 and holder["run_id"] is None
            assert holder["owner"] and ":" in holder["owner"]  # host:pid, embedded
            assert datetime.fromisoformat(holder["since"]).tzinfo is not None
            [waiter] = line["waiting"]
            assert (waiter["workflow_id"], waiter["position"]) == (second.id, 1)
            assert waiter["step_name"] is None and waiter["priority"] == 0

            # Every key (only this one is in use), and a key nobody uses.
            assert (await _get(http, "/concurrency"))["keys"] == [line]
            assert (await _get(http, "/concurrency", key="lane-8"))["keys"] == []

            held = (await _get(http, f"/workflows/{first['id']}"))["concurrency"]
            assert held == [
                {"key": LANE, "state": "HOLDING", "step_name": None, "holder": first["id"],
                 "limit": 1, "position": None}
            ]  # fmt: skip
            waits = (await _get(http, f"/workflows/{second.id}"))["concurrency"]
            assert [(s["key"], s["state"], s["position"]) for s in waits] == [(LANE, "WAITING", 1)]

            cancelled = await http.post(
                f"{API}/workflows/{first['id']}/cancel", json={}, headers=auth(OPERATOR)
            )
            assert cancelled.status_code == 200, cancelled.text
            assert await asyncio.wait_for(run, 10) is WorkflowStatus.WAITING_HUMAN
        line = await _line(http, waiters=0)
        assert [h["workflow_id"] for h in line["holding"]] == [second.id]
        # An ended workflow holds nothing.
        assert (await _get(http, f"/workflows/{first['id']}"))["concurrency"] == []


async def test_concurrency_needs_a_token_and_a_store_that_keeps_slots(
    database_url: str,
) -> None:
    async with serve(database_url, GATE_REGISTRY) as served:
        http = served.http
        assert (await http.get(f"{API}/concurrency")).status_code == 401
        assert (await _get(http, "/concurrency")) == {"keys": []}
        too_long = await http.get(f"{API}/concurrency", params={"key": "k" * 600},
                                  headers=auth(VIEWER))  # fmt: skip
        assert too_long.status_code == 422 and too_long.json()["error"] == "invalid_parameter"
        with _store_without_slots(served):
            refused = await http.get(f"{API}/concurrency", headers=auth(VIEWER))
        assert refused.status_code == 501, refused.text
        body = refused.json()
        assert body["error"] == "not_supported" and "FlowControl" in body["message"]


class _NoSlots:
    """A store that keeps no slots (no built-in one is like this)."""


@contextlib.contextmanager
def _store_without_slots(served: Served) -> Any:
    runtime = served.runtime
    real = runtime._persistence
    runtime._persistence = _NoSlots()  # type: ignore[assignment]
    try:
        yield
    finally:
        runtime._persistence = real
