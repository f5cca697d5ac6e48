"""Operations through the API: start, resume, cancel, retry; roles, errors and limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.server.conftest import ADMIN, OPERATOR, VIEWER, auth
from tests.server.test_server_reads import API, start

MUTATIONS = [
    ("/workflows", {"type": "ExecHuman", "data": {}}),
    ("/workflows/{id}/resume", {"input": {"approved": True, "approver": "x"}}),
    ("/workflows/{id}/cancel", {}),
    ("/workflows/{id}/retry", {}),
]


async def history(api: httpx.AsyncClient, workflow_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"{API}/workflows/{workflow_id}/history", headers=auth(VIEWER))
    audit: list[dict[str, Any]] = response.json()["audit"]
    return audit


def actions(audit: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry["details"] for entry in audit if entry["event_type"] == "OPERATOR_ACTION"]


async def test_start_then_resume_a_human_step_to_completion(api: httpx.AsyncClient) -> None:
    made = await start(api, "ExecHuman", order=1)
    assert made["status"] == "WAITING_HUMAN" and made["current_step"] == "Approve"

    response = await api.post(
        f"{API}/workflows/{made['id']}/resume",
        json={"input": {"approved": True, "approver": "ada"}},
        headers=auth(ADMIN),
    )
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["status"] == "COMPLETED"
    assert done["state"]["approved"] is True and done["state"]["approver"] == "ada"
    assert done["state"]["trail"] == ["Done"]
    assert actions(await history(api, made["id"])) == [
        {"action": "start", "by": "otto"},
        {"action": "resume", "by": "ada"},
    ]


async def test_resume_input_the_step_rejects_is_422_and_the_workflow_keeps_waiting(
    api: httpx.AsyncClient,
) -> None:
    made = await start(api, "ExecHuman")
    response = await api.post(
        f"{API}/workflows/{made['id']}/resume",
        json={"input": {"approved": "perhaps"}},
        headers=auth(OPERATOR),
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_input"
    assert "approver" in body["message"] and "approved" in body["message"]
    assert "Traceback" not in response.text
    still = (await api.get(f"{API}/workflows/{made['id']}", headers=auth(VIEWER))).json()
    assert still["status"] == "WAITING_HUMAN" and still["version"] == made["version"]
    assert actions(await history(api, made["id"])) == [{"action": "start", "by": "otto"}]


async def test_cancel_then_cancel_again_is_409(api: httpx.AsyncClient) -> None:
    made = await start(api, "ExecHuman")
    url = f"{API}/workflows/{made['id']}/cancel"
    response = await api.post(url, json={"reason": "duplicate order"}, headers=auth(OPERATOR))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "CANCELLED"
    assert response.json()["error"] == "duplicate order"
    again = await api.post(url, headers=auth(OPERATOR))
    assert again.status_code == 409
    assert again.json()["error"] == "invalid_operation" and "CANCELLED" in again.json()["message"]
    assert actions(await history(api, made["id"])) == [
        {"action": "start", "by": "otto"},
        {"action": "cancel", "by": "otto"},
    ]


async def test_retry_a_failed_workflow_and_refuse_one_that_is_not(api: httpx.AsyncClient) -> None:
    failed = await start(api, "ExecNonRetryable")
    assert failed["status"] == "FAILED"
    response = await api.post(f"{API}/workflows/{failed['id']}/retry", headers=auth(OPERATOR))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "FAILED"  # the step fails again, for the same reason
    assert {"action": "retry", "by": "otto"} in actions(await history(api, failed["id"]))

    waiting = await start(api, "ExecHuman")
    refused = await api.post(f"{API}/workflows/{waiting['id']}/retry", headers=auth(OPERATOR))
    assert refused.status_code == 409 and "WAITING_HUMAN" in refused.json()["message"]


async def test_start_is_idempotent_with_a_key(api: httpx.AsyncClient) -> None:
    body = {"type": "ExecHuman", "data": {}, "idempotency_key": "order-42"}
    first = await api.post(f"{API}/workflows", json=body, headers=auth(OPERATOR))
    second = await api.post(f"{API}/workflows", json=body, headers=auth(OPERATOR))
    assert first.json()["id"] == second.json()["id"]
    listed = await api.get(f"{API}/workflows", headers=auth(VIEWER))
    assert len(listed.json()["items"]) == 1


async def test_start_takes_a_priority_and_lists_it(api: httpx.AsyncClient) -> None:
    body = {"type": "ExecHuman", "data": {}, "priority": 7}
    made = await api.post(f"{API}/workflows", json=body, headers=auth(OPERATOR))
    assert made.status_code == 201, made.text
    assert made.json()["priority"] == 7
    listed = await api.get(f"{API}/workflows", headers=auth(VIEWER))
    assert [item["priority"] for item in listed.json()["items"]] == [7]
    for bad in (10, -1, "high", True):
        refused = await api.post(
            f"{API}/workflows", json={**body, "priority": bad}, headers=auth(OPERATOR)
        )
        assert refused.status_code == 422, refused.text
        assert [d["parameter"] for d in refused.json()["details"]] == ["priority"]
    assert len((await api.get(f"{API}/workflows", headers=auth(VIEWER))).json()["items"]) == 1


async def test_start_errors_name_what_to_fix(api: httpx.AsyncClient) -> None:
    unknown = await api.post(
        f"{API}/workflows", json={"type": "NoSuchFlow"}, headers=auth(OPERATOR)
    )
    assert unknown.status_code == 422 and "NoSuchFlow" in unknown.json()["message"]
    missing = await api.post(f"{API}/workflows", json={"data": {}}, headers=auth(OPERATOR))
    assert missing.status_code == 422
    assert [d["parameter"] for d in missing.json()["details"]] == ["type"]
    broken = await api.post(
        f"{API}/workflows",
        content=b"{not json",
        headers={**auth(OPERATOR), "Content-Type": "application/json"},
    )
    assert broken.status_code == 422 and broken.json()["error"] == "invalid_parameter"


@pytest.mark.parametrize(("path", "body"), MUTATIONS)
async def test_every_operation_needs_an_operator_token(
    api: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    made = await start(api, "ExecHuman")
    url = API + path.format(id=made["id"])
    for headers, status in (
        ({}, 401),
        (auth("wrong-token"), 401),
        ({"Authorization": "Basic dXNlcjpwdw=="}, 401),
        (auth(VIEWER), 403),
    ):
        response = await api.post(url, json=body, headers=headers)
        assert response.status_code == status, (headers, response.text)
        assert response.json()["error"] in ("unauthorized", "forbidden")
        if status == 401:
            assert response.headers["WWW-Authenticate"] == "Bearer"
        else:
            assert "vera" in response.json()["message"]
    # Nothing was done by the refused requests.
    assert actions(await history(api, made["id"])) == [{"action": "start", "by": "otto"}]


async def test_reads_need_a_token_too(api: httpx.AsyncClient) -> None:
    for path in ("/workflows", "/workflows/x", "/workflows/x/history", "/definitions"):
        response = await api.get(API + path)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"


async def test_a_body_over_the_limit_is_413(api: httpx.AsyncClient) -> None:
    big = {"type": "ExecHuman", "data": {"blob": "x" * (1024 * 1024 + 1)}}
    response = await api.post(f"{API}/workflows", json=big, headers=auth(OPERATOR))
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"

    async def chunks() -> Any:  # no Content-Length: counted as it arrives
        for _ in range(3):
            yield b"x" * (512 * 1024)

    streamed = await api.post(
        f"{API}/workflows",
        content=chunks(),
        headers={**auth(OPERATOR), "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    listed = await api.get(f"{API}/workflows", headers=auth(VIEWER))
    assert listed.json()["items"] == []
