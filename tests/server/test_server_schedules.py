"""Schedules through the API: list (viewer); pause, resume and trigger (admin), the CLI's lookup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from ruvon.cluster.schedules import sync_registry_schedules
from ruvon.records import ScheduleRecord
from tests.server.conftest import ADMIN, OPERATOR, VIEWER, Served, auth

API = "/api/v1"
HOSTILE = "x'); DROP TABLE scheduled_workflows;--"


async def seed(served: Served) -> None:
    """``registry:ApiTick`` (from the registry) and a schedule whose name is the bare type."""
    persistence = served.runtime.persistence
    assert await sync_registry_schedules(persistence, served.runtime.builder) == [
        "registry:ApiTick"
    ]
    later = datetime.now(UTC) + timedelta(hours=1)
    await persistence.save_schedule(
        ScheduleRecord("ApiTick", "ApiTick", "@every 60s", {"from": "manual"}, next_run_at=later)
    )
    await persistence.save_schedule(
        ScheduleRecord("nightly", "ApiTick", "0 3 * * *", {"n": 1}, next_run_at=later)
    )


async def listed(served: Served) -> dict[str, dict[str, Any]]:
    response = await served.http.get(f"{API}/schedules", headers=auth(VIEWER))
    assert response.status_code == 200, response.text
    return {item["name"]: item for item in response.json()["schedules"]}


async def test_list_shows_every_schedule(served: Served) -> None:
    assert await listed(served) == {}
    await seed(served)
    schedules = await listed(served)
    assert list(schedules) == ["ApiTick", "nightly", "registry:ApiTick"]
    nightly = schedules["nightly"]
    assert nightly["workflow_type"] == "ApiTick" and nightly["spec"] == "0 3 * * *"
    assert nightly["enabled"] is True and nightly["initial_data"] == {"n": 1}
    assert nightly["next_run_at"] is not None and nightly["last_run_at"] is None


async def test_pause_and_resume_by_name_or_registry_type(served: Served) -> None:
    await seed(served)
    http = served.http
    paused = await http.post(f"{API}/schedules/nightly/pause", headers=auth(ADMIN))
    assert paused.status_code == 200, paused.text
    assert paused.json()["name"] == "nightly" and paused.json()["enabled"] is False
    assert (await listed(served))["nightly"]["enabled"] is False
    resumed = await http.post(f"{API}/schedules/nightly/resume", headers=auth(ADMIN))
    assert resumed.status_code == 200 and resumed.json()["enabled"] is True
    # The full registry name works; so does ?exact for the bare one.
    full = await http.post(f"{API}/schedules/registry:ApiTick/pause", headers=auth(ADMIN))
    assert full.status_code == 200 and full.json()["name"] == "registry:ApiTick"
    exact = await http.post(
        f"{API}/schedules/ApiTick/pause", params={"exact": "true"}, headers=auth(ADMIN)
    )
    assert exact.status_code == 200 and exact.json()["name"] == "ApiTick"
    state = await listed(served)
    assert (state["ApiTick"]["enabled"], state["registry:ApiTick"]["enabled"]) == (False, False)
    assert state["nightly"]["enabled"] is True


async def test_unknown_is_404_and_ambiguous_is_409_naming_both(served: Served) -> None:
    await seed(served)
    http = served.http
    for action in ("pause", "resume", "trigger"):
        missing = await http.post(f"{API}/schedules/nope/{action}", headers=auth(ADMIN))
        assert missing.status_code == 404, missing.text
        assert missing.json()["error"] == "schedule_not_found"
        assert "nope" in missing.json()["message"] and "nightly" in missing.json()["message"]
        ambiguous = await http.post(f"{API}/schedules/ApiTick/{action}", headers=auth(ADMIN))
        assert ambiguous.status_code == 409, ambiguous.text
        body = ambiguous.json()
        assert body["error"] == "ambiguous_schedule_name"
        assert "'ApiTick'" in body["message"] and "'registry:ApiTick'" in body["message"]
    hostile = await http.post(f"{API}/schedules/{HOSTILE}/pause", headers=auth(ADMIN))
    assert hostile.status_code == 404
    assert all(s["enabled"] for s in (await listed(served)).values())  # nothing changed
    assert len(await listed(served)) == 3


async def test_trigger_starts_the_workflow_now_and_audits_the_admin(served: Served) -> None:
    await seed(served)
    http = served.http
    await http.post(f"{API}/schedules/nightly/pause", headers=auth(ADMIN))
    before = (await listed(served))["nightly"]
    response = await http.post(f"{API}/schedules/nightly/trigger", headers=auth(ADMIN))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["schedule"]["name"] == "nightly"
    workflow = body["workflow"]
    assert workflow["workflow_type"] == "ApiTick" and workflow["status"] == "COMPLETED"
    assert workflow["state"]["n"] == 1  # the schedule's initial data
    history = await http.get(f"{API}/workflows/{workflow['id']}/history", headers=auth(VIEWER))
    actions = [e["details"] for e in history.json()["audit"] if e["event_type"] ==
               "OPERATOR_ACTION"]  # fmt: skip
    assert actions == [{"action": "start", "by": "ada"}]
    stored = await served.runtime.persistence.load_workflow(workflow["id"])
    assert stored.metadata["schedule"] == "nightly" and stored.metadata["triggered_by"] == "ada"
    # The ticks are the beat's: a trigger leaves them (and the pause) as they were.
    assert (await listed(served))["nightly"] == before


@pytest.mark.parametrize("action", ["pause", "resume", "trigger"])
async def test_schedule_actions_need_an_admin(served: Served, action: str) -> None:
    await seed(served)
    http = served.http
    path = f"{API}/schedules/nightly/{action}"
    anonymous = await http.post(path)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    for token, role in ((VIEWER, "viewer"), (OPERATOR, "operator")):
        refused = await http.post(path, headers=auth(token))
        assert refused.status_code == 403, (role, refused.text)
        assert f"role {role}" in refused.json()["message"] and "admin" in refused.json()["message"]
    assert (await http.get(f"{API}/schedules")).status_code == 401
    assert (await listed(served))["nightly"]["enabled"] is True
    listing = await http.get(f"{API}/workflows", headers=auth(VIEWER))
    assert listing.json()["items"] == []  # no trigger got through


async def test_a_name_with_slashes_and_spaces_is_addressable(served: Served) -> None:
    name = "reports/daily run: 50%_off"
    await served.runtime.persistence.save_schedule(ScheduleRecord(name, "ApiTick", "0 3 * * *"))
    path = f"{API}/schedules/{quote(name, safe='')}"
    paused = await served.http.post(f"{path}/pause", headers=auth(ADMIN))
    assert paused.status_code == 200, paused.text
    assert paused.json()["name"] == name and paused.json()["enabled"] is False
    raw = await served.http.post(f"{API}/schedules/reports/daily run: 50%25_off/resume",
                                 headers=auth(ADMIN))  # fmt: skip
    assert raw.status_code == 200 and raw.json()["enabled"] is True
    assert (await served.http.post(f"{API}/schedules/reports/pause",
                                   headers=auth(ADMIN))).status_code == 404  # fmt: skip


async def test_openapi_lists_the_new_endpoints(served: Served) -> None:
    paths = set((await served.http.get("/openapi.json")).json()["paths"])
    assert {
        "/api/v1/schedules",
        "/api/v1/schedules/{name}/pause",
        "/api/v1/schedules/{name}/resume",
        "/api/v1/schedules/{name}/trigger",
        "/api/v1/workflows/{workflow_id}/approve",
        "/api/v1/workflows/{workflow_id}/reject",
        "/api/v1/cluster",
    } <= paths
