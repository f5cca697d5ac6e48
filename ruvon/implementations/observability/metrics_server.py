"""Serving ``/metrics``, and prometheus_client's multiprocess mode for prefork workers.

A prefork worker's metrics are counted in its pool processes but served by its main process, so
each process writes its values to files in a shared directory (prometheus_client's multiprocess
mode) and the main process merges them when scraped. Three rules keep that correct:

* **Set up before the pool forks**: :func:`prepare_multiprocess_dir` (the directory, wiped: values
  from a previous run must not be added to this one's) and :func:`use_multiprocess_values` (which
  file a process writes) run in the main process before any metric exists.
* **Files per pool slot, not per PID**: a child that is recycled (``--max-tasks-per-child``) or
  killed is replaced by one with the same slot, which opens the same files and carries on from
  the values there. prometheus_client's default (one file per PID) would leave a file behind for
  every child that ever lived. The number of files is therefore bounded by the concurrency.
* **A process that exits** calls :func:`mark_process_dead`, which removes its live gauges' files
  (counters and histograms stay: they are cumulative).

Usage (the worker does this in :mod:`ruvon.cluster.metrics`)::

    directory = prepare_multiprocess_dir(settings.metrics_dir)      # main process, before fork
    use_multiprocess_values(lambda: slot_of_this_process())
    server = start_metrics_server(9100, "0.0.0.0", multiprocess_registry(directory))
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from threading import Thread
from typing import Any

from prometheus_client import CollectorRegistry, multiprocess, start_http_server
from prometheus_client import values as prometheus_values

__all__ = [
    "MULTIPROC_ENV",
    "MetricsServer",
    "mark_process_dead",
    "multiprocess_registry",
    "prepare_multiprocess_dir",
    "start_metrics_server",
    "use_multiprocess_values",
]

logger = logging.getLogger("ruvon.metrics")

#: The variable prometheus_client reads to find the directory (and inherited by the children).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(path: Path | None) -> Path:
    """Make ``path`` (default: a new private temporary directory) the multiprocess directory.

    An existing directory is wiped of its value files (``*.db``): they hold a previous run's
    values. Exported as ``PROMETHEUS_MULTIPROC_DIR`` for this process and its children.
    """
    if path is None:
        path = Path(tempfile.mkdtemp(prefix="ruvon-metrics-"))
    else:
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def use_multiprocess_values(identify: Callable[[], str]) -> None:
    """Metrics created from now on write to ``<kind>_<identify()>.db`` in the directory.

    ``identify()`` is called on every update (it is how a forked child notices it is not its
    parent): it must be cheap, distinct between processes alive at the same time, contain no
    ``_``, and stay the same for the life of a process.
    """
    multiprocess_value: Any = prometheus_values.MultiProcessValue
    prometheus_values.ValueClass = multiprocess_value(process_identifier=identify)


def mark_process_dead(identity: str, path: Path | None = None) -> None:
    """Remove the live-gauge files of the process known as ``identity`` (it is exiting)."""
    directory = path or _multiproc_dir()
    if directory is not None:
        mark: Any = multiprocess.mark_process_dead
        mark(identity, str(directory))


def _multiproc_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def multiprocess_registry(path: Path) -> CollectorRegistry:
    """A registry that merges every process's values from ``path`` when collected."""
    registry = CollectorRegistry()
    collector: Any = multiprocess.MultiProcessCollector
    collector(registry, path=str(path))
    return registry


@dataclass
class MetricsServer:
    """A running ``/metrics`` HTTP server (a daemon thread)."""

    server: Any  # wsgiref's WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.server.server_port)

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(port: int, addr: str, registry: CollectorRegistry) -> MetricsServer:
    """Serve ``registry`` on ``http://addr:port/metrics`` from a daemon thread."""
    server, thread = start_http_server(port, addr, registry)
    running = MetricsServer(server, thread)
    logger.info("serving Prometheus metrics on http://%s:%d/metrics", addr, running.port)
    return running
