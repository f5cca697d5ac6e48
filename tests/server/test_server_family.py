"""The list's version / prefix filters, a workflow's parent and children, and its history's
PARALLEL branches and timers, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from tests.server.conftest import OPERATOR, VIEWER, Served, auth

API = "/api/v1"


async def start(http: httpx.AsyncClient, workflow_type: str, key: str | None = None,
                **data: Any) -> dict[str, Any]:  # fmt: skip
    body = {"type": workflow_type, "data": data, "idempotency_key": key}
    response = await http.post(f"{API}/workflows", json=body, headers=auth(OPERATOR))
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def ids(http: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await http.get(f"{API}/workflows", params=params, headers=auth(VIEWER))
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_list_filters_by_version_and_prefixes(served: Served) -> None:
    http = served.http
    shop = await start(http, "ExecHuman", key="shop:1")
    percent = await start(http, "ExecHuman", key="50%_off")
    bare = await start(http, "ApiWait")
    versioned = await start(http, "ApiApproval")  # workflow_version "2.1"
    everything = await ids(http)
    assert set(everything) == {shop["id"], percent["id"], bare["id"], versioned["id"]}

    assert await ids(http, idempotency_key_prefix="shop:") == [shop["id"]]
    listed = await http.get(f"{API}/workflows", params={"idempotency_key_prefix": "shop:"},
                            headers=auth(VIEWER))  # fmt: skip
    assert listed.json()["items"][0]["idempotency_key"] == "shop:1"
    assert await ids(http, idempotency_key_prefix="50%_") == [percent["id"]]
    assert await ids(http, idempotency_key_prefix="%") == []  # a character, not a wildcard
    assert await ids(http, idempotency_key_prefix="_") == []
    assert await ids(http, id_prefix=shop["id"][:12]) == [shop["id"]]
    assert await ids(http, id_prefix="%") == []
    assert await ids(http, id_prefix="") == everything  # empty: no filter
    assert await ids(http, version="2.1") == [versioned["id"]]
    assert await ids(http, version="2.1", id_prefix=versioned["id"][:8]) == [versioned["id"]]
    assert await ids(http, version="2.1", idempotency_key_prefix="s") == []  # it has no key
    assert await ids(http, version="2") == []  # a version is matched whole
    for hostile in ("' OR 1=1 --", "x'); DROP TABLE workflow_executions;--", "\\", "%%", "a\x00b"):
        for name in ("version", "id_prefix", "idempotency_key_prefix"):
            assert await ids(http, **{name: hostile}) == [], (name, hostile)
    assert set(await ids(http)) == set(everything)  # still all there


async def test_bad_filter_values_are_422_naming_the_parameter(served: Served) -> None:
    for name in ("version", "id_prefix", "idempotency_key_prefix"):
        response = await served.http.get(
            f"{API}/workflows", params={name: "x" * 513}, headers=auth(VIEWER)
        )
        assert response.status_code == 422, (name, response.text)
        body = response.json()
        assert body["error"] == "invalid_parameter"
        assert [detail["parameter"] for detail in body["details"]] == [name]
        assert name in body["message"]


async def test_detail_names_the_parent_and_children(served: Served) -> None:
    http = served.http
    parent = await start(http, "ExecParent", value=4)
    detail = (await http.get(f"{API}/workflows/{parent['id']}", headers=auth(VIEWER))).json()
    assert detail["status"] == "COMPLETED", detail
    [child] = detail["children"]
    assert child["workflow_type"] == "ExecChild" and child["status"] == "COMPLETED"
    assert detail["parent"] is None and detail["more_children"] is False
    of_child = (await http.get(f"{API}/workflows/{child['id']}", headers=auth(VIEWER))).json()
    assert of_child["parent"] == {
        "id": parent["id"],
        "workflow_type": "ExecParent",
        "status": "COMPLETED",
        "current_step": None,
    }
    assert of_child["children"] == []
    # FIRE_AND_FORGET children are listed too (they have no parent_execution_id).
    spawner = await start(http, "ExecSpawner", value=1)
    detail = (await http.get(f"{API}/workflows/{spawner['id']}", headers=auth(VIEWER))).json()
    assert [c["id"] for c in detail["children"]] == [detail["state"]["spawned_id"]]
    # An operation's answer does not look them up.
    assert spawner["children"] is None


async def test_history_shows_parallel_branches(served: Served) -> None:
    http = served.http
    partial = await start(http, "ExecPartial", items=[1, 2, 3, 4])
    history = (await http.get(f"{API}/workflows/{partial['id']}/history",
                              headers=auth(VIEWER))).json()  # fmt: skip
    [step] = history["parallel"]
    assert step["step_name"] == "Double" and step["run_number"] == 1
    assert step["branch_count"] == 4 and step["succeeded"] == 3 and step["merged"] is True
    assert step["failed"] == {"Double[2]": "RuntimeError: item 3 is cursed"}
    assert step["branches"] == []  # run in this process: no branch runs to show
    fan = await start(http, "ExecFanOut", items=[1, 2])
    history = (await http.get(f"{API}/workflows/{fan['id']}/history",
                              headers=auth(VIEWER))).json()  # fmt: skip
    [step] = history["parallel"]
    assert (step["branch_count"], step["succeeded"], step["failed"]) == (2, 2, {})
    human = await start(http, "ExecHuman")
    history = (await http.get(f"{API}/workflows/{human['id']}/history",
                              headers=auth(VIEWER))).json()  # fmt: skip
    assert history["parallel"] == [] and history["timers"] == []


async def test_history_shows_pending_timers(served: Served) -> None:
    http = served.http
    before = datetime.now(UTC)
    waiting = await start(http, "ApiWait")
    assert waiting["status"] == "WAITING_TIMER"
    history = (await http.get(f"{API}/workflows/{waiting['id']}/history",
                              headers=auth(VIEWER))).json()  # fmt: skip
    [timer] = history["timers"]
    assert timer["kind"] == "wait" and timer["step_name"] == "Nap"
    assert timer["state"] == "pending" and timer["due"] is False
    due_in = (datetime.fromisoformat(timer["due_at"]) - before).total_seconds()
    assert 3590 < due_in < 3610
    approval = await start(http, "ApiApproval")
    history = (await http.get(f"{API}/workflows/{approval['id']}/history",
                              headers=auth(VIEWER))).json()  # fmt: skip
    [timer] = history["timers"]
    assert (timer["kind"], timer["step_name"], timer["state"]) == (
        "approval_timeout",
        "Sign_Off",
        "pending",
    )


async def test_each_run_of_a_parallel_step_is_listed_with_its_own_merge(served: Served) -> None:
    http = served.http
    failed = await start(http, "ExecAllOrNothing", items=[1, 2, 3])
    assert failed["status"] == "FAILED"
    retried = await http.post(f"{API}/workflows/{failed['id']}/retry", headers=auth(OPERATOR))
    assert retried.status_code == 200 and retried.json()["status"] == "FAILED"
    history = (await http.get(f"{API}/workflows/{failed['id']}/history",
                              headers=auth(VIEWER))).json()  # fmt: skip
    merges = [e for e in history["audit"] if e["event_type"] == "PARALLEL_TASKS_MERGED"]
    assert [e["details"]["run"] for e in merges] == [1, 2]  # the retry entered the step again
    runs = history["parallel"]
    assert [(r["step_name"], r["run_number"]) for r in runs] == [("Double", 1), ("Double", 2)]
    for run in runs:
        assert (run["branch_count"], run["succeeded"], run["merged"]) == (3, 2, True)
        assert list(run["failed"]) == ["Double[2]"]
