"""Span ids for the OpenTelemetry SDK that make each workflow's ``workflow`` span its trace's root.

A workflow's trace id and root span id are derived from its id (:mod:`.tracing`), so every
process can continue the trace without being told. With this generator in the TracerProvider
(``RUVON_OTEL=otlp`` and ``file:`` use it; give it to your own provider with
``TracerProvider(id_generator=WorkflowIdGenerator())``) the span recorded when the workflow
starts gets exactly that root id: the trace has a real root. With another generator the same
span is a child of the derived root, which then is never exported (backends show it missing).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

__all__ = ["WorkflowIdGenerator"]


class WorkflowIdGenerator(RandomIdGenerator):
    """Random ids, except inside :meth:`forcing` (the start of a workflow's root span)."""

    def __init__(self) -> None:
        self._forced: ContextVar[tuple[int, int] | None] = ContextVar(
            "ruvon_forced_ids", default=None
        )

    @contextlib.contextmanager
    def forcing(self, trace_id: int, span_id: int) -> Iterator[None]:
        """Inside: the span started gets these ids."""
        token = self._forced.set((trace_id, span_id))
        try:
            yield
        finally:
            self._forced.reset(token)

    def generate_trace_id(self) -> int:
        forced = self._forced.get()
        return forced[0] if forced is not None else super().generate_trace_id()

    def generate_span_id(self) -> int:
        forced = self._forced.get()
        return forced[1] if forced is not None else super().generate_span_id()
