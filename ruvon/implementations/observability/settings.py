"""Settings of the operations side (metrics, health files, log format), from the environment.

Variable: meaning, default::

    RUVON_METRICS_PORT        a worker serves Prometheus /metrics on this port (0 or unset: off)
    RUVON_BEAT_METRICS_PORT   the beat serves its metrics (sweeps, queues) on this port (0 or
                              unset: off)
    RUVON_METRICS_ADDR        address both listen on, default 0.0.0.0
    RUVON_METRICS_DIR         a worker's prometheus_client multiprocess directory, wiped when
                              the worker starts (one directory per worker); default
                              PROMETHEUS_MULTIPROC_DIR, else a private temporary directory
    RUVON_HEALTH_DIR          a worker keeps <node name>.alive and .ready files here (unset: off)
    RUVON_HEALTH_INTERVAL     seconds between touches of those files, default 5
    RUVON_LOG_FORMAT          text (default) or json
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ruvon.errors import ConfigurationError

__all__ = ["ObservabilitySettings"]


def _port(env: Mapping[str, str], name: str) -> int | None:
    value = (env.get(name) or "").strip()
    if not value:
        return None
    try:
        port = int(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"{name}={value!r} must be a port (1-65535), or 0 for off")
    return port or None


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = (env.get(name) or "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a number of seconds") from None
    if not number > 0:
        raise ConfigurationError(f"{name}={value!r} must be > 0")
    return number


@dataclass(frozen=True)
class ObservabilitySettings:
    """Resolved operations settings; build them with :meth:`from_env`."""

    metrics_port: int | None = None
    beat_metrics_port: int | None = None
    metrics_addr: str = "0.0.0.0"
    metrics_dir: Path | None = None
    health_dir: Path | None = None
    health_interval: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ObservabilitySettings:
        """Read the variables in the module docstring from ``env`` (default ``os.environ``)."""
        env = os.environ if env is None else env
        metrics_dir = env.get("RUVON_METRICS_DIR") or env.get("PROMETHEUS_MULTIPROC_DIR")
        health_dir = env.get("RUVON_HEALTH_DIR")
        return cls(
            metrics_port=_port(env, "RUVON_METRICS_PORT"),
            beat_metrics_port=_port(env, "RUVON_BEAT_METRICS_PORT"),
            metrics_addr=(env.get("RUVON_METRICS_ADDR") or "0.0.0.0").strip(),
            metrics_dir=Path(metrics_dir) if metrics_dir else None,
            health_dir=Path(health_dir) if health_dir else None,
            health_interval=_positive(env, "RUVON_HEALTH_INTERVAL", 5.0),
        )
