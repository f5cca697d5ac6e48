"""The Celery app of a Ruvon worker (``ruvon worker``, ``celery -A ruvon.cluster.app worker``).

It ships in the package, so an installed wheel runs a cluster from the user's project directory
(their registry and step modules) with nothing else on the path; the checkout's top-level
``worker/`` package only re-exports it (``celery -A worker worker`` keeps working there).

Configuration comes from :class:`ruvon.config.Settings` (``RUVON_BROKER_URL``,
``RUVON_RESULT_BACKEND``, ``RUVON_BROKER_KEY_PREFIX``, ``RUVON_DATABASE_URL``, pool sizes...).
The Celery settings (acks late, reject on worker lost, prefetch 1, JSON ids-only messages,
events on) are :func:`ruvon.implementations.execution.celery_config.celery_config`, shared with
clients. Each process's resources (bridge, provider, runner) are :mod:`ruvon.cluster.process`;
the tasks are :mod:`ruvon.cluster.tasks`.

Operations: ``RUVON_METRICS_PORT`` (Prometheus ``/metrics``, :mod:`ruvon.cluster.metrics`),
``RUVON_HEALTH_DIR`` (heartbeat files for probes, :mod:`ruvon.cluster.health`) and
``RUVON_LOG_FORMAT=json`` (:mod:`ruvon.implementations.observability.celery_logs`).
"""

from __future__ import annotations

import logging
import os
import sys

from celery import Celery
from celery.signals import after_setup_logger, worker_init, worker_process_init

# Heartbeat files, metrics and the process resources connect their own Celery signals.
from ruvon.cluster import health as _health  # noqa: F401
from ruvon.cluster.lost_connection import raise_connection_errors_on_lost_channels
from ruvon.cluster.process import serve_app
from ruvon.config import Settings
from ruvon.implementations.execution.celery_config import celery_config
from ruvon.implementations.observability.celery_logs import connect_json_logs

__all__ = ["app", "create_app"]


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app configured from ``settings`` (default: the environment)."""
    # Or a Redis restart can make the worker exit for good (Celery 5.7.0, kombu 5.7.0).
    raise_connection_errors_on_lost_channels()
    celery = Celery("ruvon", include=["ruvon.cluster.tasks"])
    celery.conf.update(celery_config(settings or Settings.from_env()))
    return celery


#: Celery's per-task INFO lines ("Task ... received", "... succeeded in ...s").
_TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")


@after_setup_logger.connect
@worker_process_init.connect
def _quiet_task_lines(**_: object) -> None:
    """Celery logs two INFO lines per task; at Ruvon's rates that is a third of an empty
    task's cost (measured in docs/performance.md). Ruvon logs what a run did itself; the
    lines come back with RUVON_TASK_LOGS=1."""
    if Settings.from_env().task_logs:
        return
    for name in _TASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@worker_init.connect
def _import_steps_from_the_working_directory(**_: object) -> None:
    """Step modules resolve from the worker's working directory, however it was started.

    ``ruvon worker`` runs ``python -m celery``, which puts that directory first on
    ``sys.path``; the ``celery`` script has it there only while it loads the app (Celery's
    ``cwd_in_path``), and a step's module is imported later, in a pool process. Before the
    pool forks, put it where ``-m`` does, so both commands run the same workflows.
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


app = create_app()
serve_app(app)
connect_json_logs()  # RUVON_LOG_FORMAT=json
