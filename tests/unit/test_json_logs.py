"""JSON logs (``RUVON_LOG_FORMAT=json``): a record emitted inside a step carries the step.

Sync step functions run in the caller's thread (sync executor) or in a pool thread (thread-pool
executor): both must see the step's context, as must async step functions.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ruvon.errors import ConfigurationError
from ruvon.implementations.observability.json_logs import (
    JsonFormatter,
    StepContextFilter,
    log_format_from_env,
    use_json_logs,
)
from ruvon.log_context import current_step_log_context, step_log_context
from ruvon.models import StepContext, WorkflowStatus
from ruvon.testing.providers import open_engine

step_logger = logging.getLogger("tests.step")


def say_hello(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    step_logger.info("hello from %s", context.step_name, extra={"order": "A-1"})
    return {"hello": True}


async def say_async(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    step_logger.warning("async step")
    return {"async": True}


def flaky(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    step_logger.info("attempt %d", context.attempt)
    if context.attempt < 2:
        raise RuntimeError("first attempt fails")
    return {"flaky": context.attempt}


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """Everything ``tests.step`` logs, as JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    use_json_logs([handler])
    step_logger.addHandler(handler)
    step_logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        step_logger.removeHandler(handler)


def _records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize("execution", ["sync", "thread_pool"])
async def test_records_inside_steps_carry_workflow_step_and_attempt(
    execution: str, lines: io.StringIO, tmp_path: Path
) -> None:
    async with open_engine("memory", execution, tmp_path) as engine:
        engine.builder.register_workflow_inline(
            "Logged",
            [
                {"name": "Hello", "type": "STANDARD", "function": say_hello, "automate_next": True},
                {"name": "Async", "type": "STANDARD", "function": say_async, "automate_next": True},
                {
                    "name": "Flaky",
                    "type": "STANDARD",
                    "function": flaky,
                    "retry": {"max_attempts": 2, "initial_interval": 0.01, "jitter": False},
                },
            ],
        )
        workflow = await engine.create("Logged", {})
        await workflow.run()
    assert workflow.status is WorkflowStatus.COMPLETED
    step_logger.info("after the workflow")

    hello, in_async, first, second, after = _records(lines)
    expected = {"workflow_id": workflow.id, "workflow_type": "Logged"}
    assert hello["message"] == "hello from Hello" and hello["order"] == "A-1"
    assert hello | expected == hello and (hello["step"], hello["attempt"]) == ("Hello", 1)
    assert in_async | expected == in_async and (in_async["step"], in_async["level"]) == (
        "Async",
        "WARNING",
    )
    assert (first["step"], first["attempt"], first["message"]) == ("Flaky", 1, "attempt 1")
    assert (second["step"], second["attempt"], second["message"]) == ("Flaky", 2, "attempt 2")
    assert "branch" not in hello
    assert after["message"] == "after the workflow"
    assert not {"workflow_id", "step", "attempt"} & after.keys()
    assert current_step_log_context() is None


def test_a_text_format_can_name_the_fields_and_exceptions_become_text() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom %s", ("now",), None)
    context = StepContext(
        workflow_id="wf-1", workflow_type="Orders", step_name="Charge", attempt=3, branch_name="b2"
    )
    with step_log_context(context):
        assert StepContextFilter().filter(record)
    text = logging.Formatter("%(workflow_id)s %(step)s#%(attempt)s [%(branch)s] %(message)s")
    assert text.format(record) == "wf-1 Charge#3 [b2] boom now"

    try:
        raise ValueError("bad value")
    except ValueError:
        import sys

        failing = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(failing))  # no filter: no step fields, no nulls
    assert entry["message"] == "failed" and "ValueError: bad value" in entry["exc_info"]
    assert "workflow_id" not in entry and entry["time"].endswith("+00:00")


def test_log_format_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUVON_LOG_FORMAT", raising=False)
    assert log_format_from_env() == "text"
    monkeypatch.setenv("RUVON_LOG_FORMAT", "JSON")
    assert log_format_from_env() == "json"
    monkeypatch.setenv("RUVON_LOG_FORMAT", "xml")
    with pytest.raises(ConfigurationError, match="RUVON_LOG_FORMAT='xml'"):
        log_format_from_env()
