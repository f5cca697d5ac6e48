"""Approve / reject a HUMAN_APPROVAL step through the API: the resume path, audited, role-gated."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.server.conftest import ADMIN, OPERATOR, VIEWER, Served, auth

API = "/api/v1"


async def start(http: httpx.AsyncClient, workflow_type: str) -> dict[str, Any]:
    response = await http.post(
        f"{API}/workflows", json={"type": workflow_type, "data": {}}, headers=auth(OPERATOR)
    )
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def audit_of(http: httpx.AsyncClient, workflow_id: str) -> list[dict[str, Any]]:
    history = await http.get(f"{API}/workflows/{workflow_id}/history", headers=auth(VIEWER))
    entries: list[dict[str, Any]] = history.json()["audit"]
    return entries


async def test_approve_runs_on_and_audits_who_approved(served: Served) -> None:
    http = served.http
    made = await start(http, "ApiApproval")
    assert made["status"] == "WAITING_HUMAN" and made["current_step"] == "Sign_Off"
    response = await http.post(
        f"{API}/workflows/{made['id']}/approve", json={"reason": "looks right"},
        headers=auth(OPERATOR),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["status"] == "COMPLETED"
    assert done["state"]["approved"] is True and done["state"]["approver"] == "otto"
    assert done["state"]["reason"] == "looks right"
    actions = [e["details"] for e in await audit_of(http, made["id"]) if e["event_type"] ==
               "OPERATOR_ACTION"]  # fmt: skip
    assert actions == [{"action": "start", "by": "otto"}, {"action": "approve", "by": "otto"}]


async def test_reject_gives_the_step_a_negative_decision(served: Served) -> None:
    http = served.http
    made = await start(http, "ApiApproval")
    response = await http.post(f"{API}/workflows/{made['id']}/reject", headers=auth(ADMIN))
    assert response.status_code == 200, response.text
    state = response.json()["state"]
    assert state["approved"] is False and state["approver"] == "ada"
    audit = await audit_of(http, made["id"])
    assert {"action": "reject", "by": "ada"} in [e["details"] for e in audit]


async def test_only_a_workflow_at_an_approval_step_can_be_decided(served: Served) -> None:
    http = served.http
    human = await start(http, "ExecHuman")  # HUMAN_IN_LOOP, not an approval
    waiting = await start(http, "ApiWait")
    for made in (human, waiting):
        before = await audit_of(http, made["id"])
        response = await http.post(f"{API}/workflows/{made['id']}/approve", headers=auth(OPERATOR))
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["error"] == "invalid_operation" and "HUMAN_APPROVAL" in body["message"]
        assert await audit_of(http, made["id"]) == before  # nothing written
    response = await http.post(f"{API}/workflows/nope-1/reject", headers=auth(OPERATOR))
    assert response.status_code == 404 and "nope-1" in response.json()["message"]
    # A decided approval cannot be decided again.
    made = await start(http, "ApiApproval")
    assert (await http.post(f"{API}/workflows/{made['id']}/approve",
                            headers=auth(OPERATOR))).status_code == 200  # fmt: skip
    again = await http.post(f"{API}/workflows/{made['id']}/reject", headers=auth(OPERATOR))
    assert again.status_code == 409


async def test_bad_reason_is_422_naming_it(served: Served) -> None:
    made = await start(served.http, "ApiApproval")
    response = await served.http.post(
        f"{API}/workflows/{made['id']}/approve", json={"reason": 5}, headers=auth(OPERATOR)
    )
    assert response.status_code == 422
    assert [d["parameter"] for d in response.json()["details"]] == ["reason"]


@pytest.mark.parametrize("action", ["approve", "reject"])
async def test_approval_needs_an_operator(served: Served, action: str) -> None:
    http = served.http
    made = await start(http, "ApiApproval")
    path = f"{API}/workflows/{made['id']}/{action}"
    anonymous = await http.post(path)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert (await http.post(path, headers=auth("not-a-token"))).status_code == 401
    viewer = await http.post(path, headers=auth(VIEWER))
    assert viewer.status_code == 403 and "operator" in viewer.json()["message"]
    detail = await http.get(f"{API}/workflows/{made['id']}", headers=auth(VIEWER))
    assert detail.json()["status"] == "WAITING_HUMAN"  # none of them changed anything
