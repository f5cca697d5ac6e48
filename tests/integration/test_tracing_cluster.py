"""Tracing across a real cluster: the client's spans and a celery worker's share one trace.

The worker exports to a file (``RUVON_OTEL=file:PATH``); the client, this process, to the SDK's
in-memory exporter. Every run goes through the broker (``RUVON_CONTINUE_STEPS=0``), so each step's
parent span reaches the worker only through the ``trace_context`` of its ``step_runs`` row.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ruvon.builder import WorkflowBuilder
from ruvon.client import Client
from ruvon.implementations.observability.tracing import TracingObserver, workflow_trace_id
from ruvon.implementations.observability.tracing_ids import WorkflowIdGenerator
from ruvon.models import WorkflowStatus
from tests.integration.distributed_support import (
    QUEUE,
    REGISTRY,
    WAIT,
    client_of,
    fetch,
    settings_of,
    started_cluster,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _hex(number: int, digits: int) -> str:
    return f"0x{number:0{digits}x}"


async def _traced_chain(cluster: Any, observer: TracingObserver) -> tuple[str, list[Any]]:
    settings = settings_of(cluster)
    builder = WorkflowBuilder(REGISTRY, settings=settings, observer=observer)
    async with Client(builder, settings=settings) as client:
        record = await client.start("AsyncChain", {"counter": 0})
        done = await client.wait(record.id, timeout=WAIT)
    assert done.status is WorkflowStatus.COMPLETED, done.error
    rows = await fetch(
        cluster, "SELECT step_name, trace_context FROM step_runs WHERE workflow_id = $1", done.id
    )
    return done.id, [tuple(row) for row in rows]


def test_worker_spans_continue_the_clients_trace_through_the_step_run_rows(
    tmp_path: Path,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=WorkflowIdGenerator())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans_file = tmp_path / "worker-spans.jsonl"
    env = {"RUVON_OTEL": f"file:{spans_file}", "RUVON_CONTINUE_STEPS": "0"}
    with started_cluster(env, concurrency=1) as cluster:
        workflow_id, runs = asyncio.run(_traced_chain(cluster, TracingObserver(provider)))

    trace_id = workflow_trace_id(workflow_id)
    (client_span,) = exporter.get_finished_spans()
    assert client_span.name == "workflow AsyncChain"
    assert client_span.context.trace_id == trace_id
    assert client_span.parent is None  # the trace's root (its ids derived from the workflow id)

    worker = {span["name"]: span for span in map(json.loads, spans_file.read_text().splitlines())}
    assert sorted(worker) == ["step Finish", "step First", "step Second", "step Third"]
    assert {span["context"]["trace_id"] for span in worker.values()} == {_hex(trace_id, 32)}
    first = worker["step First"]["attributes"]
    assert first["ruvon.workflow.id"] == workflow_id
    assert first["ruvon.workflow.type"] == "AsyncChain"
    assert (first["ruvon.step.name"], first["ruvon.step.attempt"]) == ("First", 1)
    assert first["ruvon.queue"] == QUEUE
    assert first["ruvon.worker"].rsplit(":", 1)[1].isdigit()  # host:pid of the pool process
    assert worker["step Finish"]["attributes"]["ruvon.step.type"] == "STANDARD"

    # Each run's row carried the span before it: the chain is one tree, across messages.
    def span_id(name: str) -> str:
        return str(worker[name]["context"]["span_id"])

    # The first run was stored with the workflow, before its start span: the worker derives the
    # root from the workflow id, which is the client's span.
    assert worker["step First"]["parent_id"] == _hex(client_span.context.span_id, 16)
    assert worker["step Second"]["parent_id"] == span_id("step First")
    assert worker["step Third"]["parent_id"] == span_id("step Second")
    assert worker["step Finish"]["parent_id"] == span_id("step Third")
    stored = {name: context for name, context in runs if name != "start"}
    assert stored["Second"]["traceparent"] == (f"00-{trace_id:032x}-{span_id('step First')[2:]}-01")
    assert stored["First"] is None and stored["Third"] is not None


def test_a_fan_outs_branches_and_join_continue_the_step_that_fanned_out(tmp_path: Path) -> None:
    spans_file = tmp_path / "worker-spans.jsonl"
    env = {"RUVON_OTEL": f"file:{spans_file}", "RUVON_CONTINUE_STEPS": "0"}
    with started_cluster(env, concurrency=2) as cluster:

        async def fan_out() -> str:
            async with client_of(cluster) as client:
                record = await client.start("FanOut", {"size": 3})
                done = await client.wait(record.id, timeout=WAIT)
            assert done.status is WorkflowStatus.COMPLETED, done.error
            return done.id

        workflow_id = asyncio.run(fan_out())
        joins = asyncio.run(
            fetch(
                cluster,
                "SELECT trace_context FROM step_runs WHERE workflow_id = $1 AND kind = 'join'",
                workflow_id,
            )
        )

    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    assert {span["context"]["trace_id"] for span in spans} == {
        _hex(workflow_trace_id(workflow_id), 32)
    }
    by_name = {span["name"]: span for span in spans}
    branches = sorted(name for name in by_name if name.startswith("step Square_All["))
    assert branches == [f"step Square_All[{i}]" for i in range(3)]
    fanned = by_name["step Make_Items"]["context"]["span_id"]
    assert {by_name[name]["parent_id"] for name in branches} == {fanned}
    assert by_name["step Square_All[0]"]["attributes"]["ruvon.step.branch"] == "Square_All[0]"
    # The join run inherits the branch run's context: what follows it continues the fan-out.
    (join,) = joins
    assert join[0]["traceparent"].split("-")[2] == fanned[2:]
    assert by_name["step Finish"]["parent_id"] == fanned


def test_each_attempt_of_a_retried_step_is_its_own_span_under_the_same_parent(
    tmp_path: Path,
) -> None:
    spans_file = tmp_path / "worker-spans.jsonl"
    with started_cluster({"RUVON_OTEL": f"file:{spans_file}"}, concurrency=1) as cluster:

        async def retried() -> str:
            async with client_of(cluster) as client:
                record = await client.start("Retries", {})
                done = await client.wait(record.id, timeout=WAIT)
            assert done.status is WorkflowStatus.COMPLETED, done.error
            return done.id

        workflow_id = asyncio.run(retried())

    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    flaky = sorted(
        (span for span in spans if span["name"] == "step Flaky"),
        key=lambda span: span["attributes"]["ruvon.step.attempt"],
    )
    assert [span["attributes"]["ruvon.step.attempt"] for span in flaky] == [1, 2, 3]
    assert [span["status"]["status_code"] for span in flaky] == ["ERROR", "ERROR", "UNSET"]
    assert [span["attributes"].get("ruvon.step.will_retry") for span in flaky] == [
        True,
        True,
        None,
    ]
    # A retry is the same run given back: its row's context, so the same parent each time.
    assert len({span["parent_id"] for span in flaky}) == 1
    assert {span["context"]["trace_id"] for span in flaky} == {
        _hex(workflow_trace_id(workflow_id), 32)
    }
