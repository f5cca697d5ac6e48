"""OpenTelemetry tracing on embedded SQLite runs: spans, attributes, one trace, child links."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from ruvon.errors import ConfigurationError
from ruvon.implementations.observability.fanout import ObserverFanout
from ruvon.implementations.observability.tracing import TracingObserver, workflow_trace_id
from ruvon.implementations.observability.tracing_ids import WorkflowIdGenerator
from ruvon.implementations.observability.tracing_settings import (
    TracingSetting,
    tracing_from_env,
)
from ruvon.implementations.observability.tracing_setup import with_tracing
from ruvon.models import StepContext, WorkflowStatus
from ruvon.providers.observer import BaseObserver
from ruvon.testing.providers import open_engine


def ok(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {context.step_name: True}


def flaky(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    if context.attempt < 2:
        raise RuntimeError("not yet")
    return {"flaky": context.attempt}


@pytest.fixture
def spans() -> tuple[TracingObserver, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return TracingObserver(provider), exporter


def _named(exported: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in exported if span.name == name]


async def test_a_trace_per_workflow_and_a_span_per_step_attempt(
    tmp_path: Path, spans: tuple[TracingObserver, InMemorySpanExporter]
) -> None:
    observer, exporter = spans
    async with open_engine("sqlite", "sync", tmp_path) as engine:
        builder = engine.new_builder(observer=observer)
        retry = {"max_attempts": 2, "initial_interval": 0.001, "jitter": False}
        builder.register_workflow_inline(
            "Traced",
            [
                {"name": "A", "type": "STANDARD", "function": ok, "automate_next": True},
                {"name": "Flaky", "type": "STANDARD", "function": flaky, "retry": retry},
            ],
        )
        wf = await builder.create_workflow("Traced", {})
        await wf.run()
        assert wf.status is WorkflowStatus.COMPLETED

    exported = exporter.get_finished_spans()
    assert {span.context.trace_id for span in exported} == {workflow_trace_id(wf.id)}
    (start,) = _named(exported, "workflow Traced")
    assert start.attributes == {"ruvon.workflow.id": wf.id, "ruvon.workflow.type": "Traced"}
    assert start.parent is not None and start.parent.is_remote  # the derived, unexported root
    (a,) = _named(exported, "step A")
    assert dict(a.attributes or {}) == {
        "ruvon.workflow.id": wf.id,
        "ruvon.workflow.type": "Traced",
        "ruvon.step.name": "A",
        "ruvon.step.type": "STANDARD",
        "ruvon.step.attempt": 1,
    }
    assert a.parent is not None and a.parent.span_id == start.context.span_id
    first, second = sorted(_named(exported, "step Flaky"), key=lambda s: s.start_time or 0)
    assert [first.attributes["ruvon.step.attempt"], second.attributes["ruvon.step.attempt"]] == [
        1,
        2,
    ]  # type: ignore[index]
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description == "RuntimeError: not yet"
    assert first.attributes["ruvon.step.will_retry"] is True  # type: ignore[index]
    assert second.status.status_code is StatusCode.UNSET


async def test_a_child_workflow_links_to_the_parent_span_that_started_it(
    tmp_path: Path, spans: tuple[TracingObserver, InMemorySpanExporter]
) -> None:
    observer, exporter = spans
    async with open_engine("sqlite", "sync", tmp_path) as engine:
        builder = engine.new_builder(observer=observer)
        builder.register_workflow_inline(
            "Child", [{"name": "Work", "type": "STANDARD", "function": ok}]
        )
        builder.register_workflow_inline(
            "Parent",
            [
                {"name": "Prepare", "type": "STANDARD", "function": ok, "automate_next": True},
                {"name": "Spawn", "type": "SUB_WORKFLOW", "target_workflow_type": "Child"},
            ],
        )
        parent = await builder.create_workflow("Parent", {})
        await parent.run()
        assert parent.status is WorkflowStatus.COMPLETED
        (child,) = await engine.persistence.list_workflows(parent_execution_id=parent.id)

    exported = exporter.get_finished_spans()
    (prepare,) = _named(exported, "step Prepare")
    (child_start,) = _named(exported, "workflow Child")
    (work,) = _named(exported, "step Work")
    assert child_start.context.trace_id == work.context.trace_id == workflow_trace_id(child.id)
    assert prepare.context.trace_id == workflow_trace_id(parent.id) != workflow_trace_id(child.id)
    assert child_start.attributes["ruvon.workflow.parent_id"] == parent.id  # type: ignore[index]
    (link,) = child_start.links
    assert link.context.trace_id == workflow_trace_id(parent.id)
    assert link.context.span_id == prepare.context.span_id  # the parent's last span before it


def test_ruvon_otel_values_and_their_errors(tmp_path: Path) -> None:
    for off in ("", "0", "off", "False", " no "):
        assert tracing_from_env({"RUVON_OTEL": off}) is None
    assert tracing_from_env({}) is None
    assert tracing_from_env({"RUVON_OTEL": "global"}) == TracingSetting("global")
    assert tracing_from_env({"RUVON_OTEL": "OTLP"}) == TracingSetting("otlp")
    spans_file = tmp_path / "spans.jsonl"
    assert tracing_from_env({"RUVON_OTEL": f"file:{spans_file}"}) == TracingSetting(
        "file", spans_file
    )
    with pytest.raises(ConfigurationError, match=r"^RUVON_OTEL='yes please' is not one of off, "):
        tracing_from_env({"RUVON_OTEL": "yes please"})
    with pytest.raises(ConfigurationError, match=r"^RUVON_OTEL='file:' names no file"):
        tracing_from_env({"RUVON_OTEL": "file:"})
    with pytest.raises(ConfigurationError, match=r"directory '.*/missing' does not exist"):
        tracing_from_env({"RUVON_OTEL": f"file:{tmp_path}/missing/spans.jsonl"})


def test_with_tracing_keeps_the_observer_when_off_and_fans_out_when_on(tmp_path: Path) -> None:
    base = BaseObserver()
    assert with_tracing(base, {}) is base
    assert with_tracing(None, {"RUVON_OTEL": "off"}) is None
    traced = with_tracing(base, {"RUVON_OTEL": "global"})
    assert isinstance(traced, ObserverFanout)
    assert traced.observers[0] is base and isinstance(traced.observers[1], TracingObserver)
    assert isinstance(with_tracing(None, {"RUVON_OTEL": "global"}), TracingObserver)


async def test_file_mode_writes_one_json_span_per_line(tmp_path: Path) -> None:
    from ruvon.implementations.observability.tracing import tracer_provider_for

    path = tmp_path / "spans.jsonl"
    provider = tracer_provider_for(TracingSetting("file", path))
    async with open_engine("sqlite", "sync", tmp_path) as engine:
        builder = engine.new_builder(observer=TracingObserver(provider))
        builder.register_workflow_inline("One", [{"name": "A", "type": "STANDARD", "function": ok}])
        wf = await builder.create_workflow("One", {})
        await wf.run()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["name"] for line in lines] == ["workflow One", "step A"]
    assert {line["context"]["trace_id"] for line in lines} == {f"0x{workflow_trace_id(wf.id):032x}"}


def _descriptors_on(path: Path) -> list[str]:
    fds = Path("/proc/self/fd")
    return [fd.name for fd in fds.iterdir() if os.path.realpath(fd) == str(path.resolve())]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to list descriptors")
def test_file_mode_closes_its_file_when_the_provider_shuts_down(tmp_path: Path) -> None:
    """Shutdown (the SDK's own at exit, or an owner's) flushes and closes the spans file."""
    from ruvon.implementations.observability.tracing import tracer_provider_for

    path = tmp_path / "spans.jsonl"
    provider = tracer_provider_for(TracingSetting("file", path))
    with provider.get_tracer("test").start_as_current_span("before shutdown"):
        pass
    assert len(_descriptors_on(path)) == 1
    provider.shutdown()
    assert _descriptors_on(path) == []
    assert [json.loads(line)["name"] for line in path.read_text().splitlines()] == [
        "before shutdown"
    ]


async def test_with_the_workflow_id_generator_the_start_span_is_the_traces_root(
    tmp_path: Path,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=WorkflowIdGenerator())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with open_engine("sqlite", "sync", tmp_path) as engine:
        builder = engine.new_builder(observer=TracingObserver(provider))
        builder.register_workflow_inline("One", [{"name": "A", "type": "STANDARD", "function": ok}])
        wf = await builder.create_workflow("One", {})
        await wf.run()
    start, step = exporter.get_finished_spans()
    assert start.parent is None and start.context.trace_id == workflow_trace_id(wf.id)
    assert step.parent is not None and step.parent.span_id == start.context.span_id
    # Only the start span takes the derived ids: the step's are random.
    assert step.context.span_id != start.context.span_id


def test_ruvon_worker_refuses_a_bad_ruvon_otel_before_starting_celery() -> None:
    from click.testing import CliRunner

    from ruvon.cli.main import cli

    result = CliRunner().invoke(cli, ["worker"], env={"RUVON_OTEL": "bogus", "NO_COLOR": "1"})
    assert result.exit_code != 0
    assert result.stderr == (
        "error: RUVON_OTEL='bogus' is not one of off, global, otlp or file:<path>\n"
    )


def test_without_ruvon_otel_nothing_of_opentelemetry_is_imported() -> None:
    code = (
        "import sys, ruvon, ruvon.client, ruvon.cli.main, ruvon.cluster.runner\n"
        "from ruvon.cluster.metrics import worker_observer\n"
        "assert worker_observer() is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUVON_", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout == "[]\n", done.stderr
