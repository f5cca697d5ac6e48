"""Every mutating endpoint, read from the app's OpenAPI document, refuses a role below its own.

The table below is the role each POST needs; an endpoint the document lists and the table does
not fails the test, so a new operation cannot ship without a decision on who may use it.
"""

from __future__ import annotations

import pytest

from tests.server.conftest import ADMIN, OPERATOR, VIEWER, Served, auth

REQUIRED = {
    "/api/v1/workflows": "operator",
    "/api/v1/workflows/{workflow_id}/resume": "operator",
    "/api/v1/workflows/{workflow_id}/cancel": "operator",
    "/api/v1/workflows/{workflow_id}/retry": "operator",
    "/api/v1/workflows/{workflow_id}/approve": "operator",
    "/api/v1/workflows/{workflow_id}/signals/{name}": "operator",
    "/api/v1/workflows/{workflow_id}/reject": "operator",
    "/api/v1/schedules/{name}/pause": "admin",
    "/api/v1/schedules/{name}/resume": "admin",
    "/api/v1/schedules/{name}/trigger": "admin",
    "/api/v1/bulk/retry": "admin",
    "/api/v1/bulk/cancel": "admin",
}
BELOW = {"operator": [("viewer", VIEWER)], "admin": [("viewer", VIEWER), ("operator", OPERATOR)]}
NAMES = {VIEWER: "vera", OPERATOR: "otto"}


@pytest.mark.timeout(120)
async def test_every_post_endpoint_refuses_missing_tokens_and_lower_roles(served: Served) -> None:
    http = served.http
    spec = (await http.get("/openapi.json")).json()
    posts = {path for path, operations in spec["paths"].items() if "post" in operations}
    assert posts == set(REQUIRED), "decide the role of: " + ", ".join(posts ^ set(REQUIRED))
    made = await http.post(
        "/api/v1/workflows", json={"type": "ExecHuman", "data": {}}, headers=auth(ADMIN)
    )
    assert made.status_code == 201, made.text
    workflow_id = made.json()["id"]
    before = (
        await http.get(f"/api/v1/workflows/{workflow_id}/history", headers=auth(ADMIN))
    ).json()
    schedules = (await http.get("/api/v1/schedules", headers=auth(ADMIN))).json()

    for template, role in REQUIRED.items():
        url = template.replace("{workflow_id}", workflow_id).replace("{name}", "ApiTick")
        for headers in ({}, auth("not-a-token"), {"Authorization": "Basic dXNlcjpwdw=="}):
            refused = await http.post(url, json={}, headers=headers)
            assert refused.status_code == 401, (url, headers, refused.text)
            assert refused.headers["WWW-Authenticate"] == "Bearer"
        for below, token in BELOW[role]:
            refused = await http.post(url, json={}, headers=auth(token))
            assert refused.status_code == 403, (url, below, refused.text)
            assert refused.json()["error"] == "forbidden"
            assert NAMES[token] in refused.json()["message"]

    # Nothing moved: no audit entry, no schedule change, no new workflow.
    after = (await http.get(f"/api/v1/workflows/{workflow_id}/history", headers=auth(ADMIN))).json()
    assert after["audit"] == before["audit"]
    assert (await http.get("/api/v1/schedules", headers=auth(ADMIN))).json() == schedules
    listed = (await http.get("/api/v1/workflows", headers=auth(ADMIN))).json()["items"]
    assert [item["id"] for item in listed] == [workflow_id]
