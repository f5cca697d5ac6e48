"""The OpenTelemetry SDK set-up ``RUVON_OTEL=otlp`` and ``RUVON_OTEL=file:PATH`` ask for."""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from opentelemetry import trace

from ruvon.errors import ConfigurationError
from ruvon.implementations.observability.tracing_ids import WorkflowIdGenerator
from ruvon.implementations.observability.tracing_settings import TracingSetting

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["sdk_tracer_provider"]


def sdk_tracer_provider(setting: TracingSetting) -> trace.TracerProvider:
    """A TracerProvider exporting to a collector (OTLP) or a file of JSON lines.

    Its resource names the service ``OTEL_SERVICE_NAME`` (default ``ruvon``); the SDK ends it
    (flushing what is buffered) when the process exits.
    """
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        from ruvon.implementations.observability.tracing_file_export import JsonLinesSpanExporter
    except ImportError:
        raise ConfigurationError(
            f"RUVON_OTEL={setting.mode} needs the OpenTelemetry SDK: pip install 'ruvon[otel]' "
            "(or RUVON_OTEL=global with a TracerProvider you configure)"
        ) from None
    service = os.environ.get("OTEL_SERVICE_NAME") or "ruvon"
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}), id_generator=WorkflowIdGenerator()
    )
    if setting.mode == "file":
        assert setting.path is not None
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(setting.path)))
    else:
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
    return provider


_OTLP_MODULES = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
)


def _otlp_exporter() -> SpanExporter:
    """The OTLP exporter installed (HTTP first), configured by the OTEL_EXPORTER_OTLP_* vars."""
    for name in _OTLP_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        exporter: SpanExporter = module.OTLPSpanExporter()
        return exporter
    raise ConfigurationError(
        "RUVON_OTEL=otlp needs an OTLP exporter: pip install "
        "opentelemetry-exporter-otlp-proto-http (or opentelemetry-exporter-otlp-proto-grpc)"
    )
