"""Versions side by side through the server: start by version, list by version, see them all.

The executor registry lists ``ExecVersioned`` twice, as 1.9.0 and 1.10.0 (the latest).
"""

from __future__ import annotations

import httpx

from tests.server.conftest import OPERATOR, VIEWER, auth
from tests.server.test_server_reads import API, get
from tests.server.ui_support import log_in


async def test_start_gets_the_latest_version_unless_the_request_names_one(
    api: httpx.AsyncClient,
) -> None:
    latest = await api.post(
        f"{API}/workflows", json={"type": "ExecVersioned"}, headers=auth(OPERATOR)
    )
    older = await api.post(
        f"{API}/workflows",
        json={"type": "ExecVersioned", "version": "1.9.0"},
        headers=auth(OPERATOR),
    )
    assert latest.status_code == 201 and older.status_code == 201, (latest.text, older.text)
    assert latest.json()["workflow_version"] == "1.10.0"
    assert older.json()["workflow_version"] == "1.9.0"

    listed = (await get(api, "/workflows", version="1.9.0")).json()
    assert [item["id"] for item in listed["items"]] == [older.json()["id"]]


async def test_an_unknown_version_is_422_listing_the_known_ones(api: httpx.AsyncClient) -> None:
    response = await api.post(
        f"{API}/workflows",
        json={"type": "ExecVersioned", "version": "2.0.0"},
        headers=auth(OPERATOR),
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "unknown_workflow_version"
    assert "'2.0.0'" in body["message"] and "known: 1.9.0, 1.10.0" in body["message"]
    assert (await get(api, "/workflows")).json()["items"] == []  # nothing was written


async def test_definitions_list_every_version_and_mark_the_latest(api: httpx.AsyncClient) -> None:
    body = (await get(api, "/definitions")).json()
    versioned = [d for d in body["definitions"] if d["workflow_type"] == "ExecVersioned"]
    assert [(d["workflow_version"], d["latest"]) for d in versioned] == [
        ("1.9.0", False),
        ("1.10.0", True),
    ]
    assert versioned[0]["steps"][-1]["name"] == "Finish_v1"
    assert versioned[1]["steps"][-1]["name"] == "Finish_v2"
    human = next(d for d in body["definitions"] if d["workflow_type"] == "ExecHuman")
    assert human["latest"] is True


async def test_the_definitions_page_shows_each_version(api: httpx.AsyncClient) -> None:
    await log_in(api, VIEWER)
    page = await api.get("/ui/definitions")
    assert page.status_code == 200
    assert 'v1.10.0</span> <span class="tag">latest</span>' in page.text
    assert 'v1.9.0</span> <span class="tag">older version</span>' in page.text
    assert "Finish_v1" in page.text and "Finish_v2" in page.text
    # The newest version comes first.
    assert page.text.index("v1.10.0") < page.text.index("v1.9.0")
    listing = await api.get("/ui/workflows", params={"version": "1.9.0"})
    assert listing.status_code == 200 and 'name="version" value="1.9.0"' in listing.text


async def test_the_definitions_page_marks_inserted_steps(api: httpx.AsyncClient) -> None:
    await log_in(api, VIEWER)
    page = await api.get("/ui/definitions")
    assert "inserted after Evaluate_Risk when its rule matches" in page.text
