"""``GET /concurrency`` and a workflow's ``concurrency`` field, on SQLite and PostgreSQL.

One ``UiGate`` workflow holds its lane's slot (it waits at its approval step, in flight); a
second of the same lane waits for it, its ``run()`` blocked in this process (the server's own
runtime and store), until the first is cancelled and the second is admitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from markupsafe import escape

from ruvon.models import WorkflowStatus
from ruvon.workflow import Workflow
from tests.server.conftest import OPERATOR, VIEWER, Served, auth, serve
from tests.server.ui_support import GATE_REGISTRY, log_in, row_cells

API = "/api/v1"
LANE = "lane-7"


async def _get(http: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await http.get(f"{API}{path}", params=params, headers=auth(VIEWER))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _line(http: httpx.AsyncClient, key: str, waiters: int) -> dict[str, Any]:
    """The key's line once ``waiters`` wait in it (the waiter queues as its run starts)."""
    for _ in range(200):
        keys = (await _get(http, "/concurrency", key=key))["keys"]
        if keys and len(keys[0]["waiting"]) == waiters:
            line: dict[str, Any] = keys[0]
            return line
        await asyncio.sleep(0.02)
    raise AssertionError(f"the line of {key} never had {waiters} waiter(s): {keys}")


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


@dataclasses.dataclass
class Gate:
    """A lane's holder (waiting at its approval, in flight) and its waiter's blocked run."""

    first: dict[str, Any]
    second: Workflow
    run: asyncio.Future[WorkflowStatus]


@contextlib.asynccontextmanager
async def holder_and_waiter(served: Served, lane: str) -> AsyncIterator[Gate]:
    """Two ``UiGate`` workflows of ``lane``: the first started through the API holds its slot,
    the second waits for it, its ``run()`` a task of this loop (the server's own runtime)."""
    started = await served.http.post(
        f"{API}/workflows",
        json={"type": "UiGate", "data": {"lane": lane}, "priority": 3},
        headers=auth(OPERATOR),
    )
    assert started.status_code == 201, started.text
    first = started.json()
    assert first["status"] == "WAITING_HUMAN"  # in flight: it holds the lane's slot
    second = await served.runtime.builder.create_workflow("UiGate", {"lane": lane})
    async with waiting_run(second) as run:
        yield Gate(first, second, run)


async def test_the_holder_and_the_waiter_of_a_key_and_each_workflows_slot(
    database_url: str,
) -> None:
    async with serve(database_url, GATE_REGISTRY) as served:
        http = served.http
        async with holder_and_waiter(served, "7") as gate:
            first, second, run = gate.first, gate.second, gate.run
            line = await _line(http, LANE, waiters=1)
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
        line = await _line(http, LANE, waiters=0)
        assert [h["workflow_id"] for h in line["holding"]] == [second.id]
        # An ended workflow holds nothing.
        assert (await _get(http, f"/workflows/{first['id']}"))["concurrency"] == []


async def test_the_pages_show_the_line_and_escape_the_key(database_url: str) -> None:
    lane = '<b onclick="x">7</b>&'  # keys render from state: user data
    key = f"lane-{lane}"
    async with serve(database_url, GATE_REGISTRY) as served:
        http = served.http
        async with holder_and_waiter(served, lane) as gate:
            await _line(http, key, waiters=1)
            await log_in(http, VIEWER)
            page = await http.get("/ui/concurrency")
            assert page.status_code == 200, page.text
            assert "<b onclick" not in page.text and escape(key) in page.text
            held = row_cells(page.text, "data-slot", gate.first["id"])
            assert held[0] == "holds a slot" and held[1] == gate.first["id"][:8]
            assert held[2] == "(the workflow)" and held[3] == "3"
            assert held[5] == "the workflow, until it ends"
            waits = row_cells(page.text, "data-slot", gate.second.id)
            assert waits[0] == "1st in line" and waits[1] == gate.second.id[:8]
            assert waits[5].startswith("process ")  # waiting, it is bound to its process
            assert f'href="/ui/workflows/{gate.second.id}"' in page.text
            assert "1 of 1 slot held, 1 waiting" in page.text

            filtered = await http.get("/ui/concurrency", params={"key": "lane-8"})
            assert "No slot is held or waited for on this key" in filtered.text
            live = await http.get("/ui/concurrency/live", params={"key": key})
            assert live.status_code == 200 and gate.second.id in live.text

            holder_page = (await http.get(f"/ui/workflows/{gate.first['id']}")).text
            assert f'holds a slot of <a href="/ui/concurrency?key={quote(key)}">' in holder_page
            assert "<b onclick" not in holder_page
            waiter_page = (await http.get(f"/ui/workflows/{gate.second.id}")).text
            assert "waits for a slot of" in waiter_page and "(1st in line)" in waiter_page


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
