"""Live streams (server-sent events) over real HTTP: the app served by uvicorn in this process.

httpx's ASGI transport buffers a whole response, so a stream is read from a real socket; the
database is the real SQLite file or PostgreSQL (the ``database_url`` fixture).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from ruvon.config import Settings
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.server.app import create_app
from ruvon.server.auth import add_credential_source
from ruvon.server.live.hub import LiveHub
from ruvon.server.serve import RuvonServer, server_for
from ruvon.server.tokens import Actor, Role
from ruvon.testing.processes import free_port
from tests.server.conftest import OPERATOR, REGISTRY, TOKENS, VIEWER, auth

API = "/api/v1"
#: A liveness bound, not the speed target: the target (a commit reaches a stream within 1 s)
#: is measured by `python -m loadtests.bench_live_stream` (p50 ~0.1 s); a CI machine loaded by
#: the parallel suite once took 1.3 s, which says nothing about the feature.
WITHIN = 10.0


@dataclass
class Served:
    url: str
    app: FastAPI
    server: RuvonServer

    @property
    def live(self) -> LiveHub:
        hub: LiveHub = self.app.state.live
        return hub


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[Served]:
    settings = Settings.from_env(
        {"RUVON_DATABASE_URL": database_url, "RUVON_REGISTRY_FILE": str(REGISTRY)}
    )
    execution = SyncExecutionProvider()
    app = create_app(settings, TOKENS, execution=execution)
    app.state.live.keep_alive = 0.3
    port = free_port()
    server = server_for(app, "127.0.0.1", port, log_level="warning")
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn exited at startup"
            await asyncio.sleep(0.02)
        yield Served(f"http://127.0.0.1:{port}", app, server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)  # a stream still open must not hold shutdown up
        execution.close()


class Events:
    """The events of one open stream, read as they arrive."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.comments = 0

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next event: {"event", "id", "data"} (comments counted, not returned)."""
        event: dict[str, Any] = {}
        async with asyncio.timeout(timeout):
            async for line in self.lines:
                if line == "":
                    if "event" in event or "data" in event:
                        return event
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    continue
                field, _, value = line.partition(": ")
                if field == "data":
                    event["data"] = json.loads(value)
                elif field in ("event", "id"):
                    event[field] = value
        raise EOFError(f"the stream ended; read so far: {event}")


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{API}{path}", json=body, headers=auth(OPERATOR))
    assert response.status_code in (200, 201), response.text
    made: dict[str, Any] = response.json()
    return made


async def test_one_workflow_stream_sends_each_commit_within_a_second_and_ends(
    served: Served,
) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        made = await post(client, "/workflows", {"type": "ExecHuman", "data": {}})
        path = f"{API}/workflows/{made['id']}/events"
        async with client.stream("GET", path, headers=auth(VIEWER)) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = Events(response)
            first = await events.next()
            assert first["event"] == "workflow" and first["id"] == str(made["version"])
            assert first["data"]["status"] == "WAITING_HUMAN"
            assert first["data"]["current_step"] == "Approve"

            resumed_at = time.monotonic()
            await post(
                client,
                f"/workflows/{made['id']}/resume",
                {"input": {"approved": True, "approver": "a"}},
            )
            seen = [await events.next()]
            latency = time.monotonic() - resumed_at
            assert latency < WITHIN, f"the commit took {latency:.3f}s to arrive"
            while seen[-1]["data"]["status"] != "COMPLETED":
                seen.append(await events.next(WITHIN))
            versions = [int(event["id"]) for event in seen]
            assert versions == sorted(versions) and versions[0] > made["version"]
            with pytest.raises(EOFError):  # a terminal status ends the stream
                await events.next(2.0)

        # EventSource reconnects with the last id it saw: nothing more, so 204 (stop).
        again = await client.get(path, headers={**auth(VIEWER), "Last-Event-ID": seen[-1]["id"]})
        assert again.status_code == 204
        # From an older id, the stream sends the workflow as it stands, then ends.
        replay = await client.get(path, headers={**auth(VIEWER), "Last-Event-ID": "1"})
        assert replay.status_code == 200
        assert f"id: {seen[-1]['id']}\nevent: workflow\n" in replay.text


async def test_list_stream_sees_new_workflows_and_filters_by_type_and_status(
    served: Served,
) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        params = {"type": "ExecHuman", "status": "WAITING_HUMAN"}
        async with client.stream(
            "GET", f"{API}/events", params=params, headers=auth(VIEWER)
        ) as response:
            assert response.status_code == 200
            events = Events(response)
            await post(client, "/workflows", {"type": "ExecNonRetryable", "data": {}})  # filtered
            started_at = time.monotonic()
            made = await post(client, "/workflows", {"type": "ExecHuman", "data": {}})
            event = await events.next()
            assert time.monotonic() - started_at < WITHIN
            assert event["data"]["id"] == made["id"]
            assert event["data"]["status"] == "WAITING_HUMAN"
            position = event["id"]

            # Leaving the filtered status is sent too (the list can drop it).
            await client.post(f"{API}/workflows/{made['id']}/cancel", headers=auth(OPERATOR))
            left = await events.next()
            assert left["data"]["id"] == made["id"] and left["data"]["status"] == "CANCELLED"

        # Resume after the creation event: the cancel is sent again, the creation is not.
        later = await post(client, "/workflows", {"type": "ExecHuman", "data": {}})
        async with client.stream(
            "GET", f"{API}/events", params={"type": "ExecHuman"},
            headers={**auth(VIEWER), "Last-Event-ID": position},
        ) as response:  # fmt: skip
            events = Events(response)
            caught_up = [await events.next(), await events.next()]
            assert [(e["data"]["id"], e["data"]["status"]) for e in caught_up] == [
                (made["id"], "CANCELLED"),
                (later["id"], "WAITING_HUMAN"),
            ]


async def test_keep_alive_comments_and_disconnect_frees_the_poller(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        made = await post(client, "/workflows", {"type": "ExecHuman", "data": {}})
        async with client.stream(
            "GET", f"{API}/workflows/{made['id']}/events", headers=auth(VIEWER)
        ) as response:
            events = Events(response)
            await events.next()
            async with asyncio.timeout(3):
                async for line in events.lines:
                    if line.startswith(": keep-alive"):
                        break
            assert served.live.feed.subscribers == 1 and served.live.feed.polling
        deadline = time.monotonic() + 3
        while served.live.feed.subscribers or served.live.feed.polling:
            assert time.monotonic() < deadline, "the stream's subscription outlived the client"
            await asyncio.sleep(0.05)


async def test_stream_errors_come_before_streaming(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        missing = await client.get(f"{API}/workflows/no-such-id/events", headers=auth(VIEWER))
        assert missing.status_code == 404 and "no-such-id" in missing.json()["message"]
        assert (await client.get(f"{API}/events")).status_code == 401
        bad = await client.get(f"{API}/events", params={"status": "NAPPING"}, headers=auth(VIEWER))
        assert bad.status_code == 422 and bad.json()["details"][0]["parameter"] == "status"
        resume = await client.get(
            f"{API}/events", headers={**auth(VIEWER), "Last-Event-ID": "yesterday"}
        )
        assert resume.status_code == 422
        assert resume.json()["details"][0]["parameter"] == "Last-Event-ID"


async def test_a_registered_credential_source_lets_an_event_source_in(served: Served) -> None:
    async def session_cookie(request: Request) -> Actor | None:
        return Actor("browser", Role.VIEWER) if request.cookies.get("s") == "ok" else None

    add_credential_source(served.app, session_cookie)
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        made = await post(client, "/workflows", {"type": "ExecHuman", "data": {}})
        path = f"{API}/workflows/{made['id']}/events"
        assert (await client.get(path, headers={"Cookie": "s=nope"})).status_code == 401
        async with client.stream("GET", path, headers={"Cookie": "s=ok"}) as response:
            assert response.status_code == 200
            assert (await Events(response).next())["data"]["id"] == made["id"]
        # A viewer's session does not open operator endpoints.
        cancel = await client.post(
            f"{API}/workflows/{made['id']}/cancel", headers={"Cookie": "s=ok"}
        )
        assert cancel.status_code == 403


async def test_server_shutdown_ends_open_streams(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        made = await post(client, "/workflows", {"type": "ExecHuman", "data": {}})
        async with client.stream(
            "GET", f"{API}/workflows/{made['id']}/events", headers=auth(VIEWER)
        ) as response:
            events = Events(response)
            await events.next()
            stopped_at = time.monotonic()
            served.server.should_exit = True
            with pytest.raises((EOFError, httpx.HTTPError)):
                await events.next(5.0)
            assert time.monotonic() - stopped_at < 3.0


async def test_a_commit_the_feed_cannot_see_reaches_the_workflow_stream_by_its_recheck(
    served: Served,
) -> None:
    """A writer whose clock is an hour behind: its commit sorts before the feed's window."""
    served.live.recheck = 0.3
    persistence = served.app.state.runtime.persistence
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        made = await post(client, "/workflows", {"type": "ExecHuman", "data": {}})
        async with client.stream(
            "GET", f"{API}/workflows/{made['id']}/events", headers=auth(VIEWER)
        ) as response:
            events = Events(response)
            await events.next()
            stored = await persistence.load_workflow(made["id"])
            behind = dataclasses.replace(
                stored, updated_at=stored.updated_at - timedelta(hours=1), error="late clock"
            )
            await persistence.save_workflow(behind, expected_version=stored.version)
            event = await events.next(2.0)
            assert int(event["id"]) == stored.version + 1
            assert event["data"]["error"] == "late clock"
