"""``POST /api/v1/workflows/{id}/signals/{name}``: validated, audited, role-gated, once per id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import OPERATOR, VIEWER, Served, auth, serve

API = "/api/v1"
REGISTRY = Path(__file__).parent / "signal_workflows" / "workflow_registry.yaml"
PAID = {"approved": True, "approver": "bank"}


@pytest.fixture
async def signals(database_url: str) -> AsyncIterator[Served]:
    async with serve(database_url, REGISTRY) as bundle:
        yield bundle


async def start(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.post(
        f"{API}/workflows", json={"type": "ApiSignal", "data": {}}, headers=auth(OPERATOR)
    )
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def send(
    http: httpx.AsyncClient, workflow_id: str, name: str = "paid", token: str = OPERATOR,
    **body: Any,
) -> httpx.Response:  # fmt: skip
    return await http.post(
        f"{API}/workflows/{workflow_id}/signals/{name}", json=body, headers=auth(token)
    )


async def audit_of(http: httpx.AsyncClient, workflow_id: str) -> list[dict[str, Any]]:
    history = await http.get(f"{API}/workflows/{workflow_id}/history", headers=auth(VIEWER))
    entries: list[dict[str, Any]] = history.json()["audit"]
    return entries


async def test_a_signal_resumes_the_workflow_once_and_audits_who_sent_it(signals: Served) -> None:
    http = signals.http
    made = await start(http)
    assert made["status"] == "WAITING_HUMAN" and made["current_step"] == "Await_Payment"

    response = await send(http, made["id"], data=PAID, event_id="pay-1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["outcome"], body["event_id"]) == ("delivered", "pay-1")
    assert body["workflow"]["status"] == "WAITING_HUMAN"
    assert body["workflow"]["current_step"] == "Await_Shipping"
    assert body["workflow"]["state"]["approver"] == "bank"
    shipped = await send(http, made["id"], "shipped", data={"carrier": "post"})
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["workflow"]["status"] == "COMPLETED"
    audit = await audit_of(http, made["id"])
    actions = [e["details"] for e in audit if e["event_type"] == "OPERATOR_ACTION"]
    assert actions == [{"action": "start", "by": "otto"}] + [{"action": "signal", "by": "otto"}] * 2
    received = [e["details"] for e in audit if e["event_type"] == "EVENT_RECEIVED"]
    assert received[0] == {"event": "paid", "event_id": "pay-1", "sent_by": "otto"}
    assert [r["event"] for r in received] == ["paid", "shipped"]
    # Finished: a typed refusal, nothing written.
    again = await send(http, made["id"], data=PAID, event_id="pay-1")
    assert again.status_code == 409 and again.json()["error"] == "invalid_operation"
    assert await audit_of(http, made["id"]) == audit


async def test_refusals_name_what_is_wrong_and_write_nothing(signals: Served) -> None:
    http = signals.http
    made = await start(http)
    before = await audit_of(http, made["id"])
    history = await http.get(f"{API}/workflows/{made['id']}/history", headers=auth(VIEWER))
    timers = history.json()["timers"]
    assert [(t["kind"], t["step_name"], t["state"]) for t in timers] == [
        ("event_timeout", "Await_Payment", "pending")
    ]

    bad = await send(http, made["id"], data={"approved": "maybe"})
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"] == "invalid_input" and "approver" in bad.json()["message"]
    unknown = await send(http, made["id"], "refunded", data={})
    assert unknown.status_code == 409 and "'refunded'" in unknown.json()["message"]
    missing = await send(http, "nope-1", data=PAID)
    assert missing.status_code == 404 and "nope-1" in missing.json()["message"]
    shape = await send(http, made["id"], data=[1, 2])
    assert shape.status_code == 422
    viewer = await send(http, made["id"], token=VIEWER, data=PAID)
    assert viewer.status_code == 403

    assert await audit_of(http, made["id"]) == before
    assert await signals.runtime.client.get(made["id"]) is not None
    persistence = signals.runtime.client._persistence
    assert persistence is not None and await persistence.list_signals(made["id"]) == []


async def test_a_duplicate_event_id_is_reported_and_changes_nothing(signals: Served) -> None:
    http = signals.http
    made = await start(http)
    first = await send(http, made["id"], data=PAID, event_id="e-1")
    assert first.json()["outcome"] == "delivered"
    before = await audit_of(http, made["id"])
    duplicate = await send(http, made["id"], data={"approved": False, "approver": "x"},
                           event_id="e-1")  # fmt: skip
    assert duplicate.status_code == 200, duplicate.text
    body = duplicate.json()
    assert (body["outcome"], body["event_id"]) == ("duplicate", "e-1")
    assert body["workflow"]["current_step"] == "Await_Shipping"
    assert body["workflow"]["state"]["approver"] == "bank"
    assert await audit_of(http, made["id"]) == before


async def test_a_signal_sent_before_the_wait_is_consumed_on_arrival(signals: Served) -> None:
    http = signals.http
    made = await start(http)  # waiting for 'paid'
    early = await send(http, made["id"], "shipped", data={"carrier": "post"}, event_id="s-1")
    assert early.json()["outcome"] == "stored"
    assert early.json()["workflow"]["current_step"] == "Await_Payment"
    paid = await send(http, made["id"], data=PAID)
    assert paid.json()["outcome"] == "delivered"
    done = paid.json()["workflow"]
    assert done["status"] == "COMPLETED" and done["state"]["carrier"] == "post"
