"""OpenTelemetry tracing of workflows: one trace per workflow, one span per step attempt.

Install ``ruvon[otel]`` and set ``RUVON_OTEL`` (:mod:`.tracing_settings`), or hand a
:class:`TracingObserver` to the builder yourself. The pieces:

* **One trace per workflow**, whichever processes run it: its trace id is derived from the
  workflow id, so a worker, a client resuming it and a sweep all join the same trace. Its root
  is a span id derived the same way: the ``workflow <type>`` span recorded when the workflow
  starts takes it when the TracerProvider has a
  :class:`~.tracing_ids.WorkflowIdGenerator` (Ruvon's own set-ups do), else it is that root's
  child. The root span is short (a workflow may wait for days): the step spans come under it.
* **A span per step attempt** (``step <name>``, ``step <name>[<branch>]``), with the workflow's
  id and type, the step, the attempt and, on a worker, the queue and the worker.
* **Across the cluster** the span a step run continues travels in its ``step_runs`` row
  (:mod:`ruvon.trace_context`; messages stay ids-only), so a worker's span is the child of the
  span that enqueued its run.
* **Child workflows** have their own trace; their ``workflow`` span links to the parent's span
  that started them.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ruvon.implementations.observability.tracing_settings import TracingSetting
from ruvon.providers.observer import (
    BaseObserver,
    StepAttemptEnded,
    StepFailed,
    StepStarted,
    WorkflowFinished,
    WorkflowStarted,
)
from ruvon.trace_context import current_trace_context, set_trace_context

__all__ = ["TracingObserver", "tracer_provider_for", "workflow_trace_id"]

_PROPAGATOR = TraceContextTextMapPropagator()
_SpanKey = tuple[str, str, str | None]  # workflow id, step, branch


def workflow_trace_id(workflow_id: str) -> int:
    """The trace id of ``workflow_id``: the same in every process (128 bits, never 0)."""
    return _derived(workflow_id)[0]


def _derived(workflow_id: str) -> tuple[int, int]:
    digest = hashlib.sha256(f"ruvon-trace:{workflow_id}".encode()).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return trace_id, span_id


def _root(workflow_id: str) -> SpanContext:
    trace_id, span_id = _derived(workflow_id)
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(1))


class TracingObserver(BaseObserver):
    """Records the spans of workflows and step attempts (see the module docstring)."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        provider = tracer_provider or trace.get_tracer_provider()
        self._tracer = trace.get_tracer("ruvon", tracer_provider=provider)
        # A WorkflowIdGenerator (tracing_ids) lets the start span take the trace's root ids.
        self._forcing = getattr(getattr(provider, "id_generator", None), "forcing", None)
        self._open: dict[_SpanKey, Span] = {}
        self._lock = threading.Lock()  # hooks may come from PARALLEL branches' threads

    # -- contexts ------------------------------------------------------------------------------

    def _parent_context(self, workflow_id: str) -> SpanContext:
        """The span work of ``workflow_id`` continues here: carried, else the trace's root."""
        carried = current_trace_context(workflow_id)
        if carried:
            found = trace.get_current_span(_PROPAGATOR.extract(carried)).get_span_context()
            if found.is_valid and found.trace_id == workflow_trace_id(workflow_id):
                return found
        return _root(workflow_id)

    def _carry(self, workflow_id: str, span: Span) -> None:
        """Make ``span`` the one the runs enqueued from here continue."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
        set_trace_context(workflow_id, carrier)

    def _start(
        self, name: str, workflow_id: str, attributes: dict[str, Any], links: list[Link]
    ) -> Span:
        parent = trace.set_span_in_context(
            trace.NonRecordingSpan(self._parent_context(workflow_id)), Context()
        )
        return self._tracer.start_span(
            name, context=parent, kind=SpanKind.INTERNAL, attributes=attributes, links=links
        )

    # -- hooks ---------------------------------------------------------------------------------

    def on_workflow_started(self, event: WorkflowStarted) -> None:
        attributes: dict[str, Any] = {
            "ruvon.workflow.id": event.workflow_id,
            "ruvon.workflow.type": event.workflow_type,
        }
        links: list[Link] = []
        if event.parent_execution_id:
            attributes["ruvon.workflow.parent_id"] = event.parent_execution_id
            parent = self._parent_context(event.parent_execution_id)
            links.append(Link(parent, {"ruvon.link": "parent workflow"}))
        name = f"workflow {event.workflow_type}"
        if self._forcing is not None:
            with self._forcing(*_derived(event.workflow_id)):
                span = self._tracer.start_span(
                    name, context=Context(), attributes=attributes, links=links
                )
        else:
            span = self._start(name, event.workflow_id, attributes, links)
        span.end()
        self._carry(event.workflow_id, span)

    def on_step_started(self, event: StepStarted) -> None:
        attributes: dict[str, Any] = {
            "ruvon.workflow.id": event.workflow_id,
            "ruvon.workflow.type": event.workflow_type,
            "ruvon.step.name": event.step_name,
            "ruvon.step.type": event.step_type,
            "ruvon.step.attempt": event.attempt,
        }
        name = f"step {event.step_name}"
        if event.branch:
            attributes["ruvon.step.branch"] = event.branch
            # A dynamic fan-out's branches are already named `<step>[<index>]`.
            named = event.branch.startswith(f"{event.step_name}[")
            name = f"step {event.branch}" if named else f"{name}[{event.branch}]"
        if event.queue:
            attributes["ruvon.queue"] = event.queue
        if event.worker:
            attributes["ruvon.worker"] = event.worker
        span = self._start(name, event.workflow_id, attributes, [])
        key = (event.workflow_id, event.step_name, event.branch)
        with self._lock:
            stale = self._open.pop(key, None)
            self._open[key] = span
        if stale is not None:
            stale.end()  # an attempt whose end was never reported (its process moved on)
        self._carry(event.workflow_id, span)

    def on_step_failed(self, event: StepFailed) -> None:
        with self._lock:
            spans = [
                s for k, s in self._open.items() if k[:2] == (event.workflow_id, event.step_name)
            ]
        for span in spans:
            span.set_attribute("ruvon.step.will_retry", event.will_retry)

    def on_step_attempt_ended(self, event: StepAttemptEnded) -> None:
        with self._lock:
            span = self._open.pop((event.workflow_id, event.step_name, event.branch), None)
        if span is None:
            return
        if event.error is not None:
            span.set_status(Status(StatusCode.ERROR, event.error))
        span.end()

    def on_workflow_finished(self, event: WorkflowFinished) -> None:
        with self._lock:
            keys = [key for key in self._open if key[0] == event.workflow_id]
            spans = [self._open.pop(key) for key in keys]
        for span in spans:
            span.end()


def tracer_provider_for(setting: TracingSetting) -> trace.TracerProvider:
    """The TracerProvider ``setting`` asks for (one per process: the SDK's is built once)."""
    if setting.mode == "global":
        return trace.get_tracer_provider()
    with _built_lock:
        if _built.get(setting) is None:
            _built[setting] = _sdk_provider(setting)
        return _built[setting]


_built: dict[TracingSetting, trace.TracerProvider] = {}
_built_lock = threading.Lock()


def _sdk_provider(setting: TracingSetting) -> trace.TracerProvider:
    from ruvon.implementations.observability.tracing_export import sdk_tracer_provider

    return sdk_tracer_provider(setting)
