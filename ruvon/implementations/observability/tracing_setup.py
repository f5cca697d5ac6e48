"""The observer a process runs with, plus tracing when ``RUVON_OTEL`` asks for it."""

from __future__ import annotations

from collections.abc import Mapping

from ruvon.errors import ConfigurationError
from ruvon.implementations.observability.tracing_settings import tracing_from_env
from ruvon.providers.observer import WorkflowObserver

__all__ = ["with_tracing"]


def with_tracing(
    observer: WorkflowObserver | None, env: Mapping[str, str] | None = None
) -> WorkflowObserver | None:
    """``observer`` plus a tracing observer when ``RUVON_OTEL`` is on (else ``observer``).

    OpenTelemetry is imported only then; ``ConfigurationError`` if it is not installed.
    """
    setting = tracing_from_env(env)
    if setting is None:
        return observer
    try:
        from ruvon.implementations.observability.tracing import (
            TracingObserver,
            tracer_provider_for,
        )
    except ImportError:
        raise ConfigurationError(
            f"RUVON_OTEL={setting.mode} needs OpenTelemetry: pip install 'ruvon[otel]'"
        ) from None
    tracing = TracingObserver(tracer_provider_for(setting))
    if observer is None:
        return tracing
    from ruvon.implementations.observability.fanout import ObserverFanout

    return ObserverFanout([observer, tracing])
