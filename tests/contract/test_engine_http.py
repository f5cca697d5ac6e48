"""HTTP steps against a real local server (127.0.0.1, ephemeral port), every combination."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ruvon.errors import HttpStepError
from ruvon.models import WorkflowStatus
from ruvon.testing.providers import EngineUnderTest

Status = WorkflowStatus
FAST_RETRY = {"max_attempts": 3, "initial_interval": 0.01, "jitter": False}


@dataclass
class Recorder:
    """What the server saw, and per-path response scripts (status codes, consumed in order)."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    scripts: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hits(self, path: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["path"] == path)


@dataclass
class LocalServer:
    base_url: str
    recorder: Recorder


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            seen = {
                "method": self.command,
                "path": path,
                "query": query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": json.loads(raw) if raw else None,
            }
            with recorder.lock:
                recorder.requests.append(seen)
                script = recorder.scripts.get(path)
                status = script.pop(0) if script else (404 if path == "/missing" else 200)
            payload = json.dumps({"echo": seen, "status": status}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Served-By", "contract")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    return Handler


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    recorder = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield LocalServer(f"http://{host!s}:{port}", recorder)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _register(engine: EngineUnderTest, http_config: dict[str, Any], **options: Any) -> None:
    engine.builder.register_workflow_inline(
        "Http",
        [{"name": "Call", "type": "HTTP", "http_config": http_config, **options}],
    )


async def test_templated_request_and_response_parts(
    engine: EngineUnderTest, http_server: LocalServer
) -> None:
    _register(
        engine,
        {
            "method": "post",
            "url": "{{ state.base_url }}/orders/{{ state.order_id }}",
            "headers": {"X-Token": "tok-{{ state.customer }}"},
            "query_params": {"verbose": "{{ state.verbose }}"},
            "body": {"customer": "{{ state.customer }}", "fixed": 3},
        },
        output_key="response",
        includes=["status_code", "body"],
    )
    wf = await engine.create(
        "Http",
        {"base_url": http_server.base_url, "order_id": 17, "customer": "c-9", "verbose": True},
    )
    assert await wf.run() is Status.COMPLETED

    [seen] = http_server.recorder.requests
    assert (seen["method"], seen["path"], seen["query"]) == ("POST", "/orders/17", "verbose=true")
    assert seen["headers"]["x-token"] == "tok-c-9"
    assert seen["body"] == {"customer": "c-9", "fixed": 3}
    response = wf.state["response"]
    assert set(response) == {"status_code", "body"}
    assert response["status_code"] == 200
    assert response["body"]["echo"]["path"] == "/orders/17"
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.state["response"] == response


async def test_default_includes_status_headers_and_body(
    engine: EngineUnderTest, http_server: LocalServer
) -> None:
    _register(engine, {"url": "{{ state.base_url }}/ping"}, output_key="ping")
    wf = await engine.create("Http", {"base_url": http_server.base_url})
    await wf.next_step()
    ping = wf.state["ping"]
    assert set(ping) == {"status_code", "headers", "body"}
    assert ping["headers"]["x-served-by"] == "contract"
    assert ping["body"]["echo"]["method"] == "GET"


async def test_server_error_then_success_is_retried(
    engine: EngineUnderTest, http_server: LocalServer
) -> None:
    http_server.recorder.scripts["/flaky"] = [500, 200]
    _register(
        engine,
        {"url": "{{ state.base_url }}/flaky", "retry_policy": FAST_RETRY},
        output_key="result",
        includes=["status_code"],
    )
    wf = await engine.create("Http", {"base_url": http_server.base_url})
    assert await wf.run() is Status.COMPLETED
    assert wf.state["result"] == {"status_code": 200}
    assert http_server.recorder.hits("/flaky") == 2
    retries = await engine.audit_events(wf.id, "STEP_RETRY")
    assert len(retries) == 1
    assert "500" in retries[0].details["error"]


async def test_not_found_fails_without_retry(
    engine: EngineUnderTest, http_server: LocalServer
) -> None:
    _register(
        engine,
        {"url": "{{ state.base_url }}/missing", "retry_policy": FAST_RETRY},
        output_key="result",
    )
    wf = await engine.create("Http", {"base_url": http_server.base_url})
    with pytest.raises(HttpStepError, match="404"):
        await wf.next_step()
    assert wf.status is Status.FAILED
    assert http_server.recorder.hits("/missing") == 1
    assert await engine.audit_events(wf.id, "STEP_RETRY") == []
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.status is Status.FAILED
    assert "result" not in stored.state
