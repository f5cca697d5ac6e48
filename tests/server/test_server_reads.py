"""Reading through the API: listing (filters, keyset pages), one workflow, history, definitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.server.conftest import OPERATOR, VIEWER, auth

API = "/api/v1"


async def start(api: httpx.AsyncClient, workflow_type: str, **data: Any) -> dict[str, Any]:
    response = await api.post(
        f"{API}/workflows", json={"type": workflow_type, "data": data}, headers=auth(OPERATOR)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def get(api: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
    return await api.get(f"{API}{path}", params=params, headers=auth(VIEWER))


async def test_list_filters_by_status_and_type_and_pages_with_a_cursor(
    api: httpx.AsyncClient,
) -> None:
    humans = [(await start(api, "ExecHuman"))["id"] for _ in range(3)]
    failed = (await start(api, "ExecNonRetryable"))["id"]

    everything = (await get(api, "/workflows")).json()
    assert [item["id"] for item in everything["items"]] == [failed, *humans[::-1]]
    assert everything["next_cursor"] is None

    waiting = (await get(api, "/workflows", status="waiting_human")).json()
    assert [item["id"] for item in waiting["items"]] == humans[::-1]
    assert {item["current_step"] for item in waiting["items"]} == {"Approve"}
    by_type = (await get(api, "/workflows", type="ExecNonRetryable")).json()
    assert [(i["id"], i["status"]) for i in by_type["items"]] == [(failed, "FAILED")]

    first = (await get(api, "/workflows", type="ExecHuman", limit=2)).json()
    assert [item["id"] for item in first["items"]] == humans[:0:-1]
    assert first["next_cursor"] == first["items"][-1]["cursor"]
    rest = await get(api, "/workflows", type="ExecHuman", limit=2, cursor=first["next_cursor"])
    assert [item["id"] for item in rest.json()["items"]] == [humans[0]]
    assert rest.json()["next_cursor"] is None


async def test_list_filters_by_creation_time_and_parent(api: httpx.AsyncClient) -> None:
    made = await start(api, "ExecHuman")
    created = datetime.fromisoformat(made["created_at"])
    later = (created + timedelta(seconds=1)).isoformat()
    earlier = (created - timedelta(seconds=1)).isoformat()

    assert [i["id"] for i in (await get(api, "/workflows", since=earlier)).json()["items"]] == [
        made["id"]
    ]
    assert (await get(api, "/workflows", since=later)).json()["items"] == []
    assert (await get(api, "/workflows", until=earlier)).json()["items"] == []
    # A time without a zone is UTC.
    naive = created.astimezone(UTC).replace(tzinfo=None) - timedelta(seconds=1)
    found = (await get(api, "/workflows", since=naive.isoformat())).json()["items"]
    assert [i["id"] for i in found] == [made["id"]]
    assert (await get(api, "/workflows", parent=made["id"])).json()["items"] == []


async def test_bad_filters_are_422_naming_the_parameter(api: httpx.AsyncClient) -> None:
    cases = {
        "status": {"status": "SLEEPING"},
        "since": {"since": "yesterday-ish"},
        "limit": {"limit": "0"},
        "cursor": {"cursor": "not-a-cursor"},
        "until": {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    }
    for name, params in cases.items():
        response = await get(api, "/workflows", **params)
        assert response.status_code == 422, (name, response.text)
        body = response.json()
        assert body["error"] == "invalid_parameter"
        assert [detail["parameter"] for detail in body["details"]] == [name]
        assert name in body["message"]


async def test_injection_like_strings_are_plain_values(api: httpx.AsyncClient) -> None:
    await start(api, "ExecHuman")
    for hostile in ("' OR 1=1 --", '"; DROP TABLE workflow_executions; --', "%", "_"):
        response = await get(api, "/workflows", type=hostile, parent=hostile)
        assert response.status_code == 200, response.text
        assert response.json()["items"] == []
        missing = await get(api, f"/workflows/{hostile}")
        assert missing.status_code == 404
    assert len((await get(api, "/workflows")).json()["items"]) == 1  # still there


async def test_one_workflow_and_its_history(api: httpx.AsyncClient) -> None:
    made = await start(api, "ExecHuman", order=7)

    response = await get(api, f"/workflows/{made['id']}")
    assert response.status_code == 200
    detail = response.json()
    assert detail["status"] == "WAITING_HUMAN" and detail["current_step"] == "Approve"
    assert detail["state"] == {"order": 7, "prepared": True}
    assert [s["name"] for s in detail["definition_snapshot"]["steps"]] == [
        "Prepare",
        "Approve",
        "Done",
    ]
    assert detail["parent_execution_id"] is None and detail["error"] is None

    history = (await get(api, f"/workflows/{made['id']}/history")).json()
    events = [entry["event_type"] for entry in history["audit"]]
    assert events == ["WORKFLOW_CREATED", "OPERATOR_ACTION", "STEP_COMPLETED", "STEP_SUSPENDED"]
    assert history["audit"][1]["details"] == {"action": "start", "by": "otto"}
    assert history["audit"][2]["step_name"] == "Prepare"
    assert isinstance(history["step_runs"], list) and history["compensations"] == []


async def test_unknown_workflow_is_404_naming_the_id(api: httpx.AsyncClient) -> None:
    for path in ("/workflows/nope-123", "/workflows/nope-123/history"):
        response = await get(api, path)
        assert response.status_code == 404
        body = response.json()
        assert body["error"] == "workflow_not_found" and "nope-123" in body["message"]


async def test_definitions_list_the_registered_types_with_their_steps(
    api: httpx.AsyncClient,
) -> None:
    body = (await get(api, "/definitions")).json()
    by_type = {d["workflow_type"]: d for d in body["definitions"]}
    assert "ExecHuman" in by_type and "ExecNonRetryable" in by_type
    assert by_type["ExecHuman"]["steps"] == [
        {"name": "Prepare", "type": "STANDARD"},
        {"name": "Approve", "type": "HUMAN_IN_LOOP"},
        {"name": "Done", "type": "STANDARD"},
    ]
    assert body["problems"] == []


async def test_health_readiness_and_openapi(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True
    assert set(ready.json()["checks"]) == {"database", "migrations"}
    spec = (await api.get("/openapi.json")).json()
    assert {"/api/v1/workflows", "/api/v1/workflows/{workflow_id}/resume"} <= set(spec["paths"])
