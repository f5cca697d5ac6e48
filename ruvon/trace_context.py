"""The trace context a workflow's next step runs carry across the cluster (W3C, as plain text).

Tracing itself is optional (``RUVON_OTEL``, :mod:`ruvon.implementations.observability.tracing`),
so the engine does not know OpenTelemetry: it only reads and writes this context variable. The
tracing observer sets it to the span of the step attempt that is running; a run the engine
enqueues then stores it in its ``step_runs`` row (messages stay ids-only), and the worker that
claims the run sets it back before running it, so the worker's spans continue the same trace.
Without tracing nothing sets it, and reading it is one ``ContextVar.get``.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

__all__ = ["TraceCarrier", "current_trace_context", "reset_trace_context", "set_trace_context"]

#: W3C trace-context headers (``traceparent``, optionally ``tracestate``).
TraceCarrier = dict[str, str]

#: The trace contexts of the workflows this context works on, newest last. A step of a parent
#: that starts a child sets the child's while its own is still needed, so a few are kept.
_KEPT = 8
_Contexts = tuple[tuple[str, TraceCarrier], ...]
_current: ContextVar[_Contexts] = ContextVar("ruvon_trace_context", default=())


def set_trace_context(workflow_id: str, carrier: TraceCarrier | None) -> Token[_Contexts]:
    """Make ``carrier`` the trace context of ``workflow_id``'s work in this context."""
    kept = tuple(item for item in _current.get() if item[0] != workflow_id)
    if carrier:
        kept = (*kept, (workflow_id, carrier))[-_KEPT:]
    return _current.set(kept)


def reset_trace_context(token: Token[_Contexts]) -> None:
    """Undo a :func:`set_trace_context`."""
    _current.reset(token)


def current_trace_context(workflow_id: str) -> TraceCarrier | None:
    """The trace context of ``workflow_id`` here, if any (another workflow's is not its own)."""
    for kept_id, carrier in reversed(_current.get()):
        if kept_id == workflow_id:
            return carrier
    return None
