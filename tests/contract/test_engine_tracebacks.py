"""A failed step keeps its traceback (bounded) in the audit, on every provider."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from ruvon.engine.tracebacks import TRACEBACK_LIMIT, format_traceback
from ruvon.models import StepContext, WorkflowStatus
from ruvon.testing.providers import EngineUnderTest
from tests.contract import steps_fixtures as fx


def explode(state: Any, context: StepContext) -> dict[str, Any]:
    raise RuntimeError("the step blew up")


# The line of the raise in explode(), which the traceback must name.
_RAISE_LINE = inspect.getsourcelines(explode)[1] + 1


# Two functions calling each other: Python folds repeats of one frame, not alternating ones.
def _deep(depth: int) -> None:
    if depth == 0:
        raise RecursionError("bottom of a deep stack " + "x" * 500)
    _deeper(depth - 1)


def _deeper(depth: int) -> None:
    _deep(depth)


def explode_deep(state: Any, context: StepContext) -> dict[str, Any]:
    _deep(150)
    return {}


def _register(engine: EngineUnderTest, function: Any, **step: Any) -> None:
    engine.builder.register_workflow_inline(
        "Explodes", [{"name": "Boom", "type": "STANDARD", "function": function, **step}]
    )


async def test_a_failed_step_records_its_traceback_naming_the_step_function(
    engine: EngineUnderTest,
) -> None:
    _register(engine, explode)
    wf = await engine.create("Explodes")
    with pytest.raises(RuntimeError):
        await wf.next_step()
    assert wf.status is WorkflowStatus.FAILED
    assert wf.error == "RuntimeError: the step blew up"  # the error string is unchanged
    [failed] = await engine.audit_events(wf.id, "STEP_FAILED")
    assert failed.details["error"] == "RuntimeError: the step blew up"
    text = failed.details["traceback"]
    assert f'File "{__file__}", line {_RAISE_LINE}, in explode' in text
    assert text.rstrip().endswith("RuntimeError: the step blew up")


async def test_a_deep_traceback_keeps_its_last_frames_within_the_limit(
    engine: EngineUnderTest,
) -> None:
    _register(engine, explode_deep)
    wf = await engine.create("Explodes")
    with pytest.raises(RecursionError):
        await wf.next_step()
    [failed] = await engine.audit_events(wf.id, "STEP_FAILED")
    text = failed.details["traceback"]
    first_line, rest = text.split("\n", 1)
    assert first_line.startswith("... (") and "characters of the traceback dropped" in first_line
    assert len(rest) <= TRACEBACK_LIMIT
    assert "in _deep" in rest and "bottom of a deep stack" in rest
    assert "in explode_deep" not in rest  # the outermost frames are the ones dropped


async def test_each_failed_attempt_of_a_retried_step_keeps_its_traceback(
    engine: EngineUnderTest,
) -> None:
    _register(engine, fx.always_fails, retry={"max_attempts": 3, "initial_interval": 0.01})
    wf = await engine.create("Explodes")
    with pytest.raises(ValueError):
        await wf.next_step()
    retries = await engine.audit_events(wf.id, "STEP_RETRY")
    assert [e.details["attempt"] for e in retries] == [1, 2]
    for entry in retries:
        assert "in always_fails" in entry.details["traceback"]
        assert f"attempt {entry.details['attempt']})" in entry.details["traceback"]
    [failed] = await engine.audit_events(wf.id, "STEP_FAILED")
    assert "always fails (attempt 3)" in failed.details["traceback"]


def test_a_short_traceback_is_kept_whole() -> None:
    try:
        raise KeyError("k")
    except KeyError as exc:
        text = format_traceback(exc, limit=10_000)
    assert text.startswith("Traceback (most recent call last):")
    assert text.rstrip().endswith("KeyError: 'k'")
