"""A worker's heartbeat files for liveness and readiness probes (``RUVON_HEALTH_DIR``; unset: off).

The main process writes ``<dir>/<node name>.alive`` from ``worker_init`` on, every
``RUVON_HEALTH_INTERVAL`` seconds (5), and ``<node name>.ready`` as well from ``worker_ready``
(it consumes its queues) until its shutdown begins. Probe them with
``ruvon health --worker-file DIR/NODE.alive --max-age 30`` (see
:mod:`ruvon.implementations.observability.heartbeat_files`).
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_init, worker_ready, worker_shutdown, worker_shutting_down

from ruvon.implementations.observability.heartbeat_files import HeartbeatFiles
from ruvon.implementations.observability.settings import ObservabilitySettings

__all__ = ["heartbeat_files"]

logger = logging.getLogger(__name__)

_files: list[HeartbeatFiles] = []


def heartbeat_files() -> HeartbeatFiles | None:
    """This worker's heartbeat files (None when ``RUVON_HEALTH_DIR`` is not set)."""
    return _files[0] if _files else None


@worker_init.connect
def _start_heartbeat(sender: Any = None, **_: object) -> None:
    settings = ObservabilitySettings.from_env()
    if settings.health_dir is None or _files:
        return
    node = str(getattr(sender, "hostname", None) or "worker")
    files = HeartbeatFiles(settings.health_dir, node, interval=settings.health_interval)
    try:
        files.start()
    except OSError:
        logger.exception("cannot write heartbeat files in %s", settings.health_dir)
        return
    _files.append(files)


@worker_ready.connect
def _mark_ready(sender: Any = None, **_: object) -> None:
    files = heartbeat_files()
    if files is None:
        return
    queues = getattr(getattr(sender, "task_consumer", None), "queues", None) or []
    files.mark_ready({"queues": sorted(queue.name for queue in queues)})


@worker_shutting_down.connect
def _mark_not_ready(**_: object) -> None:
    files = heartbeat_files()
    if files is not None:
        files.mark_not_ready()


@worker_shutdown.connect
def _stop_heartbeat(**_: object) -> None:
    files = heartbeat_files()
    if files is not None:
        files.stop()
        _files.clear()
