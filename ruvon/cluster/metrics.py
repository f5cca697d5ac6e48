"""A worker's Prometheus metrics: ``/metrics`` on ``RUVON_METRICS_PORT`` (unset or 0: off).

The pool processes count (their runners' :class:`PrometheusObserver`); the main process serves
the sum. (The beat's sweep metrics are the beat's: :mod:`ruvon.cluster.beat_metrics`.) So,
with metrics on:

* ``worker_init`` (main process, before the pool forks): the multiprocess directory
  (``RUVON_METRICS_DIR``, else ``PROMETHEUS_MULTIPROC_DIR``, else a private temporary one) is
  created or wiped, and every process's values go to files named after its **pool slot**
  (``p0``, ``p1``... ``main`` for the main process), so a recycled child
  (``--max-tasks-per-child``) or a killed one is replaced by a child that continues its files
  instead of adding new ones (see :mod:`ruvon.implementations.observability.metrics_server`);
* ``worker_ready``: the HTTP server starts in the main process (``RUVON_METRICS_ADDR``);
* ``worker_process_shutdown`` (a child exits): ``mark_process_dead`` for its slot;
* ``worker_shutdown``: the server stops; a private directory is removed.

One directory per worker: two workers sharing one would wipe and overwrite each other's files.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from billiard.process import current_process
from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from ruvon.implementations.observability.settings import ObservabilitySettings
from ruvon.implementations.observability.tracing_setup import with_tracing
from ruvon.providers.observer import WorkflowObserver

__all__ = ["metrics_enabled", "process_identity", "worker_observer"]

logger = logging.getLogger(__name__)

_state: dict[str, Any] = {"server": None, "directory": None, "private": False}


def metrics_enabled() -> bool:
    """Whether ``RUVON_METRICS_PORT`` asks for metrics (and prometheus_client is installed)."""
    return ObservabilitySettings.from_env().metrics_port is not None and _prometheus_installed()


@functools.cache
def _prometheus_installed() -> bool:
    if importlib.util.find_spec("prometheus_client") is not None:
        return True
    # Metrics must not stop the work: say so once, and run without them.
    logger.error(
        "RUVON_METRICS_PORT is set but prometheus_client is not installed "
        "(pip install 'ruvon[prometheus]'): metrics are off"
    )
    return False


def process_identity() -> str:
    """This process's pool slot: ``p<index>`` in a pool child, ``main`` in the main process."""
    index = getattr(current_process(), "index", None)
    return "main" if index is None else f"p{index}"


def worker_observer() -> WorkflowObserver | None:
    """The observer of this process's step runner: Prometheus when metrics are on, tracing
    when ``RUVON_OTEL`` is (both: a fan-out)."""
    metrics: WorkflowObserver | None = None
    if metrics_enabled():
        from ruvon.implementations.observability.prometheus import PrometheusObserver

        metrics = PrometheusObserver()
    return with_tracing(metrics)


@worker_init.connect
def _prepare_multiprocess(**_: object) -> None:
    settings = ObservabilitySettings.from_env()
    if not metrics_enabled() or settings.metrics_port is None:
        return
    from ruvon.implementations.observability.metrics_server import (
        prepare_multiprocess_dir,
        use_multiprocess_values,
    )

    _state["directory"] = prepare_multiprocess_dir(settings.metrics_dir)
    _state["private"] = settings.metrics_dir is None
    use_multiprocess_values(process_identity)


@worker_ready.connect
def _serve_metrics(**_: object) -> None:
    settings = ObservabilitySettings.from_env()
    directory: Path | None = _state["directory"]
    if settings.metrics_port is None or directory is None or _state["server"] is not None:
        return
    from ruvon.implementations.observability.metrics_server import (
        multiprocess_registry,
        start_metrics_server,
    )

    try:
        _state["server"] = start_metrics_server(
            settings.metrics_port, settings.metrics_addr, multiprocess_registry(directory)
        )
    except OSError:
        # Metrics must not stop the work; the scrape failing (up == 0) is the alarm.
        logger.exception(
            "cannot serve metrics on %s:%d", settings.metrics_addr, settings.metrics_port
        )


@worker_process_init.connect
def _drop_inherited_listener(**_: object) -> None:
    # A child forked after the server started holds a copy of its socket: let it go.
    server = _state["server"]
    if server is not None:
        with contextlib.suppress(OSError):
            server.server.socket.close()
        _state["server"] = None


@worker_process_shutdown.connect
def _mark_process_dead(**_: object) -> None:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR") or not metrics_enabled():
        return
    from ruvon.implementations.observability.metrics_server import mark_process_dead

    with contextlib.suppress(OSError):
        mark_process_dead(process_identity())


@worker_shutdown.connect
def _stop_serving(**_: object) -> None:
    server, _state["server"] = _state["server"], None
    if server is not None:
        server.close()
    directory: Path | None = _state["directory"]
    if directory is not None and _state["private"]:
        shutil.rmtree(directory, ignore_errors=True)
