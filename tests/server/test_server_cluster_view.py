"""``GET /cluster`` on real PostgreSQL and Redis (no worker: runs stay queued), and embedded; and
the web UI's cluster page (``/ui/cluster``) over the same states.

The server is a cluster client here (no execution override): a start stores its run in
``step_runs`` and puts its message on the Redis queue, which nobody consumes, so the queue has a
depth and a lag. The recoveries are made by the beat's own statements (``requeue_crashed``,
``redispatch_lost``), run on that database as the beat runs them.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ruvon.config import Settings
from ruvon.server.app import create_app
from ruvon.testing.cluster import cluster_env, delete_broker_keys
from ruvon.testing.postgres import create_database, drop_database
from ruvon.testing.processes import free_port
from tests.server.cluster_support import recover_two_runs, write_heartbeat
from tests.server.conftest import API_REGISTRY, OPERATOR, TOKENS, VIEWER, auth, serve
from tests.server.ui_support import log_in, row_cells

API = "/api/v1"


@pytest.fixture
async def cluster_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    url = await create_database()
    run_id = uuid.uuid4().hex[:12]
    env = cluster_env(url, run_id)
    env.update({"RUVON_REGISTRY_FILE": str(API_REGISTRY),
                "RUVON_DEFAULT_QUEUE": f"ruvon-test-{run_id}"})  # fmt: skip
    settings = Settings.from_env(env)
    health_dir = tmp_path / "health"
    health_dir.mkdir()
    monkeypatch.setenv("RUVON_HEALTH_DIR", str(health_dir))
    app = create_app(settings, TOKENS)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client, settings
    finally:
        delete_broker_keys(env["RUVON_BROKER_KEY_PREFIX"], env["RUVON_BROKER_URL"])
        await drop_database(url)


async def view(http: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await http.get(f"{API}/cluster", params=params, headers=auth(VIEWER))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_queues_show_depth_and_lag_of_unclaimed_runs(
    cluster_api: tuple[httpx.AsyncClient, Settings],
) -> None:
    http, settings = cluster_api
    queue = settings.default_queue
    empty = await view(http)
    assert empty["mode"] == "cluster" and empty["broker"]["ok"] is True
    assert "@" not in empty["broker"]["url"] or "***" in empty["broker"]["url"]
    [idle] = [q for q in empty["queues"] if q["name"] == queue]
    assert (idle["depth"], idle["queued"], idle["due"], idle["lag_seconds"]) == (0, 0, 0, None)
    assert empty["recoveries"] == [] and empty["workers"] == []

    for _ in range(2):
        started = await http.post(f"{API}/workflows", json={"type": "ApiTick"},
                                  headers=auth(OPERATOR))  # fmt: skip
        assert started.status_code == 201, started.text
    await asyncio.sleep(0.3)
    [busy] = [q for q in (await view(http))["queues"] if q["name"] == queue]
    assert busy["depth"] == 2  # both messages wait on Redis: no worker consumes them
    assert (busy["queued"], busy["due"], busy["running"]) == (2, 2, 0)
    assert busy["lag_seconds"] is not None and busy["lag_seconds"] >= 0.2
    assert busy["oldest_due_at"] is not None


async def test_workers_come_from_heartbeat_files(
    cluster_api: tuple[httpx.AsyncClient, Settings], tmp_path: Path
) -> None:
    http, _ = cluster_api
    write_heartbeat(tmp_path / "health", "w1@host")
    write_heartbeat(tmp_path / "health", "w2@host", age=600)
    body = await view(http)
    assert body["health_dir"] == str(tmp_path / "health")
    workers = {w["node"]: w for w in body["workers"]}
    assert set(workers) == {"w1@host", "w2@host"}
    assert workers["w1@host"]["alive"] is True and workers["w1@host"]["ready"] is True
    assert workers["w1@host"]["pid"] == 4242 and workers["w1@host"]["queues"] == ["q"]
    assert workers["w2@host"]["alive"] is False  # stale heartbeat
    assert workers["w2@host"]["heartbeat_age"] >= 590
    # A ping nobody answers is bounded: no worker runs on this prefix.
    started = asyncio.get_running_loop().time()
    pinged = await view(http, ping="true")
    assert asyncio.get_running_loop().time() - started < 5
    assert pinged["pinged"] == []
    assert {w["answered_ping"] for w in pinged["workers"]} == {False}


async def test_recoveries_are_what_the_beat_audited(
    cluster_api: tuple[httpx.AsyncClient, Settings],
) -> None:
    http, settings = cluster_api
    recovered = await recover_two_runs(http, settings)
    recoveries = (await view(http))["recoveries"]
    kinds = [(r["workflow_id"], r["event_type"]) for r in recoveries]
    assert (recovered.crashed, "WORKER_CRASH_DETECTED") in kinds
    assert (recovered.lost, "MESSAGE_RESENT") in kinds
    crash = next(r for r in recoveries if r["event_type"] == "WORKER_CRASH_DETECTED")
    assert crash["details"]["worker"] == "dead-worker@host"
    assert crash["details"]["action"] == "requeued"
    resent = next(r for r in recoveries if r["workflow_id"] == recovered.lost)
    assert resent["details"]["run"] == recovered.lost_run
    assert resent["details"]["action"] == "resent"
    assert [r["recorded_at"] for r in recoveries] == sorted(
        (r["recorded_at"] for r in recoveries), reverse=True
    )
    # The workflow's own history has them too.
    history = await http.get(f"{API}/workflows/{recovered.lost}/history", headers=auth(VIEWER))
    assert "MESSAGE_RESENT" in [e["event_type"] for e in history.json()["audit"]]


async def test_embedded_answers_embedded(tmp_path: Path) -> None:
    async with serve(f"sqlite:///{tmp_path / 'embedded.sqlite3'}") as served:
        response = await served.http.get(f"{API}/cluster", headers=auth(VIEWER))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["mode"] == "embedded"
        assert (body["workers"], body["queues"], body["recoveries"]) == ([], [], [])
        assert (await served.http.get(f"{API}/cluster")).status_code == 401


async def test_a_broker_that_is_down_is_reported_not_fatal() -> None:
    url = await create_database()
    env = cluster_env(url, uuid.uuid4().hex[:12])
    env.update({"RUVON_REGISTRY_FILE": str(API_REGISTRY),
                "RUVON_BROKER_URL": f"redis://:hunter2@127.0.0.1:{free_port()}/0"})  # fmt: skip
    app = create_app(Settings.from_env(env), TOKENS)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                started = asyncio.get_running_loop().time()
                body = await view(http)
                assert asyncio.get_running_loop().time() - started < 4
                await log_in(http, VIEWER)
                page = await http.get("/ui/cluster")
    finally:
        await drop_database(url)
    assert body["mode"] == "cluster"
    assert body["broker"]["ok"] is False and "Connection" in body["broker"]["error"]
    assert "hunter2" not in json.dumps(body)  # the password never reaches the answer
    assert {q["depth"] for q in body["queues"]} == {None}
    assert page.status_code == 200  # the page says so too, and still shows the rest
    assert re.search(r"broker-error\">Queue depth unknown: \w*Connection", page.text)
    assert "hunter2" not in page.text and 'data-testid="broker-state">no<' in page.text
    assert row_cells(page.text, "data-queue", "default")[1] == "—"


# -- the web UI's cluster page: the same view, as tables -------------------------------------


async def test_the_cluster_page_shows_what_the_api_answers(
    cluster_api: tuple[httpx.AsyncClient, Settings], tmp_path: Path
) -> None:
    http, settings = cluster_api
    write_heartbeat(tmp_path / "health", "w1@host-a")
    write_heartbeat(tmp_path / "health", "w2@host-b", age=600)
    recovered = await recover_two_runs(http, settings)
    started = await http.post(f"{API}/workflows", json={"type": "ApiTick"}, headers=auth(OPERATOR))
    assert started.status_code == 201, started.text
    await log_in(http, VIEWER)  # a viewer may read it
    page = await http.get("/ui/cluster")
    assert page.status_code == 200, page.text
    body = await view(http)

    assert 'href="/ui/cluster" aria-current="page">Cluster<' in page.text
    assert "Embedded" not in page.text and "Ping the workers" in page.text
    fresh = row_cells(page.text, "data-node", "w1@host-a")
    assert fresh[:3] == ["w1", "host-a", "4242"] and fresh[4:] == ["ready", "q", "not pinged"]
    assert re.fullmatch(r"\d+(\.\d+)? (ms|s) ago", fresh[3]), fresh[3]
    stale = row_cells(page.text, "data-node", "w2@host-b")
    assert stale[3].endswith("min ago") and stale[4] == "lost (stale heartbeat)"
    assert stale[5:] == ["q", "not pinged"]

    [queue] = [q for q in body["queues"] if q["name"] == settings.default_queue]
    assert (queue["depth"], queue["queued"], queue["due"], queue["running"]) == (3, 3, 3, 0)
    cells = row_cells(page.text, "data-queue", settings.default_queue)
    assert cells[0] == f"{settings.default_queue} (default)"
    assert cells[1:5] == ["3", "3", "3", "0"]
    assert re.match(r"\d+(\.\d+)? (ms|s) due since \d{4}-\d\d-\d\d", cells[5]), cells[5]

    crash = row_cells(page.text, "data-recovery", f"{recovered.crashed} WORKER_CRASH_DETECTED")
    assert crash[1:] == [
        recovered.crashed[:8], "WORKER_CRASH_DETECTED", "Done", "dead-worker@host",
        "requeued (attempt 1)",
    ]  # fmt: skip
    assert f'href="/ui/workflows/{recovered.crashed}"' in page.text
    resent = row_cells(page.text, "data-recovery", f"{recovered.lost} MESSAGE_RESENT")
    assert resent[1:3] == [recovered.lost[:8], "MESSAGE_RESENT"] and resent[5] == "resent"

    pinged = await http.get("/ui/cluster", params={"ping": "true"})
    assert pinged.status_code == 200
    assert "0 workers answered a ping." in pinged.text  # no worker runs on this prefix
    assert row_cells(pinged.text, "data-node", "w1@host-a")[6] == "no answer"
    bad = await http.get("/ui/cluster", params={"ping": "loud"})
    assert bad.status_code == 422 and "ping:" in bad.text and "Traceback" not in bad.text

    # The open page re-fetches its tables (never pinging: a ping's answers stay until reload).
    assert 'data-poll="/ui/cluster/live"' in page.text
    assert "data-poll=" not in pinged.text
    write_heartbeat(tmp_path / "health", "w3@host-c")  # a worker that came up meanwhile
    live = await http.get("/ui/cluster/live")
    assert live.status_code == 200 and "<html" not in live.text
    assert row_cells(live.text, "data-node", "w3@host-c")[4] == "ready"
    assert row_cells(live.text, "data-queue", settings.default_queue)[1:5] == ["3", "3", "3", "0"]
    assert "not pinged" in live.text
    http.cookies.clear()
    assert (await http.get("/ui/cluster/live")).status_code in (303, 401)


async def test_the_cluster_page_says_embedded_on_sqlite(tmp_path: Path) -> None:
    async with serve(f"sqlite:///{tmp_path / 'embedded.sqlite3'}") as served:
        anonymous = await served.http.get("/ui/cluster")
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == "/ui/login?next=%2Fui%2Fcluster"
        await log_in(served.http, VIEWER)
        page = await served.http.get("/ui/cluster")
    assert page.status_code == 200
    assert 'data-testid="embedded"' in page.text and "Embedded: no cluster" in page.text
    assert "<table" not in page.text and "Ping the workers" not in page.text
