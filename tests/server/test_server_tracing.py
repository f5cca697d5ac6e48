"""``RUVON_OTEL`` on the server: a workflow started and resumed through the API is traced there
(its start span, the spans of the steps the server runs), in the workflow's one trace."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from ruvon.config import Settings
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.observability.tracing import workflow_trace_id
from ruvon.server.app import create_app
from tests.server.conftest import OPERATOR, REGISTRY, TOKENS, auth
from tests.server.test_server_reads import API


async def test_a_workflow_started_and_resumed_through_the_api_is_traced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans = tmp_path / "spans.jsonl"
    monkeypatch.setenv("RUVON_OTEL", f"file:{spans}")
    settings = Settings.from_env(
        {
            "RUVON_DATABASE_URL": f"sqlite:///{tmp_path / 'server.sqlite3'}",
            "RUVON_REGISTRY_FILE": str(REGISTRY),
        }
    )
    execution = SyncExecutionProvider()
    app = create_app(settings, TOKENS, execution=execution)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
                made = await api.post(
                    f"{API}/workflows",
                    json={"type": "ExecHuman", "data": {}},
                    headers=auth(OPERATOR),
                )
                assert made.status_code == 201, made.text
                workflow_id = made.json()["id"]
                done = await api.post(
                    f"{API}/workflows/{workflow_id}/resume",
                    json={"input": {"approved": True, "approver": "ada"}},
                    headers=auth(OPERATOR),
                )
                assert done.json()["status"] == "COMPLETED", done.text
    finally:
        execution.close()
    lines = [json.loads(line) for line in spans.read_text().splitlines()]
    names = [line["name"] for line in lines]
    assert "workflow ExecHuman" in names and "step Done" in names, names
    trace = f"0x{workflow_trace_id(workflow_id):032x}"
    assert {line["context"]["trace_id"] for line in lines} == {trace}
