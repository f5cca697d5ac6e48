"""``RUVON_OTEL``: whether (and where) Ruvon traces workflows with OpenTelemetry.

Read without importing OpenTelemetry, so with tracing off (the default) nothing of it is loaded::

    RUVON_OTEL   off (default; also unset, 0, false, no)
                 global      spans go to the TracerProvider this process configured (your own
                             SDK set-up, or ``opentelemetry-instrument``)
                 otlp        Ruvon sets up the SDK with the OTLP exporter, configured by the
                             standard OTEL_EXPORTER_OTLP_* variables (needs
                             opentelemetry-exporter-otlp-proto-http or -grpc)
                 file:PATH   Ruvon sets up the SDK writing one JSON span per line to PATH
                             (appended; for debugging and tests)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ruvon.errors import ConfigurationError

__all__ = ["TracingSetting", "tracing_from_env"]

_OFF = {"", "0", "off", "false", "no"}
_CHOICES = "off, global, otlp or file:<path>"


@dataclass(frozen=True)
class TracingSetting:
    """Where spans go: the process's provider, an OTLP collector, or a file of JSON lines."""

    mode: Literal["global", "otlp", "file"]
    path: Path | None = None


def tracing_from_env(env: Mapping[str, str] | None = None) -> TracingSetting | None:
    """The ``RUVON_OTEL`` setting of ``env`` (default ``os.environ``); None when off."""
    env = os.environ if env is None else env
    raw = env.get("RUVON_OTEL") or ""
    value = raw.strip()
    if value.lower() in _OFF:
        return None
    if value.lower() in ("global", "otlp"):
        return TracingSetting("global" if value.lower() == "global" else "otlp")
    if value.lower().startswith("file:"):
        path = value[len("file:") :].strip()
        if not path:
            raise ConfigurationError(
                "RUVON_OTEL='file:' names no file: give the path spans are written to, "
                "e.g. RUVON_OTEL=file:/tmp/ruvon-spans.jsonl"
            )
        directory = Path(path).expanduser().parent
        if not directory.is_dir():
            raise ConfigurationError(
                f"RUVON_OTEL={raw!r}: directory '{directory}' does not exist (create it, or "
                "name a file in an existing directory)"
            )
        return TracingSetting("file", Path(path).expanduser())
    raise ConfigurationError(f"RUVON_OTEL={raw!r} is not one of {_CHOICES}")
