"""Injection-like strings in every parameter of every endpoint are plain values.

The endpoints and their parameters are read from the app's own OpenAPI document, so an endpoint
added later is covered without editing this test. Each hostile string goes into one parameter
at a time (path, query, or a string field of the JSON body, the rest of the body filled with
harmless values); whatever the answer, it is a JSON problem (never a 500, never a traceback),
and afterwards every table is still there and no workflow appeared or vanished. (A hostile
``reason`` on the real workflow's cancel is a legitimate cancel: statuses may move.)
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from tests.server.conftest import ADMIN, Served, auth

HOSTILE = (
    "' OR 1=1 --",
    '"; DROP TABLE workflow_executions; --',
    "%",
    "_",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "{{ 7*7 }}",
    "nul\x00byte",
    "x" * 5000,
)
# Live streams stay open by design; only their path parameter (an unknown id ends them at once).
STREAMS = ("/api/v1/events",)
TIMEOUT = 10.0


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = spec["components"]["schemas"][name]
    return schema


def _options(spec: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null alternatives of ``schema`` (anyOf / oneOf), resolved."""
    schema = _resolve(spec, schema)
    choices = schema.get("anyOf") or schema.get("oneOf") or [schema]
    resolved = [_resolve(spec, choice) for choice in choices]
    return [choice for choice in resolved if choice.get("type") != "null"]


def _harmless(spec: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A valid-looking value of ``schema``: the body around the one hostile field."""
    option = (_options(spec, schema) or [{}])[0]
    kind = option.get("type")
    if "enum" in option:
        return option["enum"][0]
    if kind == "object" or "properties" in option:
        props = option.get("properties", {})
        return {name: _harmless(spec, sub) for name, sub in props.items()}
    return {"string": "plain", "integer": 1, "number": 1, "boolean": True, "array": []}.get(
        kind or ""
    )


def _string_fields(
    spec: dict[str, Any], schema: dict[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Where a string may go in a body of ``schema`` (free-form objects get a key of their own)."""
    for option in _options(spec, schema):
        if option.get("type") == "string" and "enum" not in option:
            yield path
        elif option.get("type") == "object" or "properties" in option:
            props = option.get("properties")
            if props is None:
                yield (*path, "key")  # free-form (a workflow's data, an input): a value in it
            for name, sub in (props or {}).items():
                yield from _string_fields(spec, sub, (*path, name))


def _with(body: Any, path: tuple[str, ...], value: str) -> Any:
    if not path:
        return value
    base = dict(body) if isinstance(body, dict) else {}
    base[path[0]] = _with(base.get(path[0]), path[1:], value)
    return base


def _requests(spec: dict[str, Any], real_id: str) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(method, path template, url, httpx keyword arguments): one hostile value in one place."""
    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            params = operation.get("parameters", [])
            body_schema = (
                operation.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema")
            )
            body = _harmless(spec, body_schema) if body_schema else None
            path_names = [p["name"] for p in params if p["in"] == "path"]

            def url(
                hostile: str | None,
                name: str | None,
                template: str = template,
                path_names: list[str] = path_names,
            ) -> str:
                for path_name in path_names:
                    value = hostile if path_name == name else real_id
                    template = template.replace("{" + path_name + "}", _quote(value or real_id))
                return template

            for hostile in HOSTILE:
                for name in path_names:
                    kwargs: dict[str, Any] = {"json": body} if body is not None else {}
                    yield method, template, url(hostile, name), kwargs
                if template in STREAMS:
                    continue
                for param in params:
                    if param["in"] == "query" and any(
                        o.get("type") == "string" for o in _options(spec, param.get("schema", {}))
                    ):
                        kwargs = {"params": {param["name"]: hostile}}
                        if body is not None:
                            kwargs["json"] = body
                        yield method, template, url(None, None), kwargs
                for field in _string_fields(spec, body_schema) if body_schema else ():
                    yield method, template, url(None, None), {"json": _with(body, field, hostile)}


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


async def _everything(served: Served) -> dict[str, Any]:
    """What the store holds, to compare before and after."""
    listed = await served.http.get("/api/v1/workflows", params={"limit": 500}, headers=auth(ADMIN))
    assert listed.status_code == 200, listed.text
    schedules = await served.http.get("/api/v1/schedules", headers=auth(ADMIN))
    return {
        "workflows": sorted((w["id"], w["workflow_type"]) for w in listed.json()["items"]),
        "schedules": schedules.json(),
    }


@pytest.mark.timeout(240)
async def test_hostile_strings_in_every_parameter_are_harmless(served: Served) -> None:
    started = await served.http.post(
        "/api/v1/workflows", json={"type": "ExecHuman", "data": {}}, headers=auth(ADMIN)
    )
    assert started.status_code == 201, started.text
    real_id = started.json()["id"]
    before = await _everything(served)
    spec = (await served.http.get("/openapi.json")).json()

    tried: set[tuple[str, str]] = set()
    for method, template, url, kwargs in _requests(spec, real_id):
        if (method, template) == ("post", "/api/v1/workflows"):
            continue  # a hostile value in a start's data is plain data (the test below)
        response = await asyncio.wait_for(
            served.http.request(method.upper(), url, headers=auth(ADMIN), **kwargs), TIMEOUT
        )
        tried.add((method, template))
        where = f"{method.upper()} {url} {kwargs}"[:300]
        assert response.status_code < 500, f"{where}: {response.status_code} {response.text}"
        if response.status_code >= 400:
            problem = response.json()
            assert {"error", "message"} <= problem.keys(), where
            assert "Traceback" not in response.text, where
    # Every endpoint that takes a parameter or a body got hostile values (a sample, so that a
    # broken walk of the OpenAPI document fails here instead of passing vacuously).
    assert {
        ("get", "/api/v1/workflows"),
        ("get", "/api/v1/workflows/{workflow_id}/history"),
        ("post", "/api/v1/workflows/{workflow_id}/resume"),
        ("post", "/api/v1/workflows/{workflow_id}/approve"),
        ("post", "/api/v1/schedules/{name}/trigger"),
        ("get", "/api/v1/workflows/{workflow_id}/events"),
        ("post", "/api/v1/bulk/cancel"),
    } <= tried
    assert len(tried) >= 14, sorted(tried)  # 14 in 2026-12: all but the start and the list stream

    after = await _everything(served)
    # Bulk operations started by the hostile requests are workflows of their own; a
    # hostile filter matched nothing, so nothing else moved.
    assert set(before["workflows"]) <= set(after["workflows"])  # nothing vanished
    added = {kind for _, kind in set(after["workflows"]) - set(before["workflows"])}
    assert added <= {"ruvon.BulkOperation"}
    assert after["schedules"] == before["schedules"]


async def test_a_hostile_start_is_stored_as_plain_data(served: Served) -> None:
    for hostile in HOSTILE:
        data = {"note": hostile}
        response = await served.http.post(
            "/api/v1/workflows", json={"type": "ExecHuman", "data": data}, headers=auth(ADMIN)
        )
        if "\x00" in hostile:
            # PostgreSQL text cannot hold NUL: refused as bad input, on both backends alike.
            assert response.status_code in (201, 422), response.text
            continue
        assert response.status_code == 201, response.text
        stored = await served.http.get(
            f"/api/v1/workflows/{response.json()['id']}", headers=auth(ADMIN)
        )
        assert stored.json()["state"]["note"] == hostile
