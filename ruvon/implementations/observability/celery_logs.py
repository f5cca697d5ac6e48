"""JSON logs for Celery processes (``RUVON_LOG_FORMAT=json``): the worker and the beat.

:func:`connect_json_logs` hooks Celery's ``after_setup_logger`` and ``after_setup_task_logger``
signals: once Celery has set up its handlers, they get the JSON formatter and the step filter of
:mod:`ruvon.implementations.observability.json_logs`, plus :class:`TaskContextFilter`. A record
emitted inside a step then carries ``workflow_id``, ``workflow_type``, ``step``, ``attempt`` (and
``branch``); one emitted inside a task ``task_id`` and ``task_name``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import Any

from celery._state import get_current_task
from celery.signals import after_setup_logger, after_setup_task_logger, task_postrun, task_prerun

from ruvon.implementations.observability.json_logs import log_format_from_env, use_json_logs

__all__ = ["TaskContextFilter", "connect_json_logs", "install_json_logs"]


# Celery's current task is thread-local; async steps run on the bridge loop's thread, which the
# task's context variables do reach (the bridge runs each call in a copy of the caller's).
_task: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "ruvon_celery_task", default=None
)
_tokens: dict[str, contextvars.Token[tuple[str, str] | None]] = {}


class TaskContextFilter(logging.Filter):
    """Adds the running Celery task's id and name to a record (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        running = _task.get()
        if running is None:
            task = get_current_task()
            request = getattr(task, "request", None) if task is not None else None
            if request is not None and getattr(request, "id", None):
                running = (str(request.id), str(task.name))
        if running is not None:
            record.task_id, record.task_name = running
        return True


def _enter_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is not None and task is not None:
        _tokens[task_id] = _task.set((task_id, str(task.name)))


def _leave_task(task_id: str | None = None, **_: Any) -> None:
    token = _tokens.pop(task_id, None) if task_id is not None else None
    if token is not None:
        with contextlib.suppress(ValueError):  # set in another context: nothing to undo here
            _task.reset(token)


def install_json_logs(logger: logging.Logger | None = None, **_: Any) -> None:
    """With ``RUVON_LOG_FORMAT=json``, make ``logger``'s handlers write JSON lines."""
    if logger is None or log_format_from_env() != "json":
        return
    use_json_logs(logger.handlers)
    for handler in logger.handlers:
        if not any(isinstance(f, TaskContextFilter) for f in handler.filters):
            handler.addFilter(TaskContextFilter())


def connect_json_logs() -> None:
    """Install :func:`install_json_logs` on Celery's logging signals (idempotent)."""
    after_setup_logger.connect(install_json_logs, weak=False, dispatch_uid="ruvon-json-logs")
    after_setup_task_logger.connect(
        install_json_logs, weak=False, dispatch_uid="ruvon-json-task-logs"
    )
    task_prerun.connect(_enter_task, weak=False, dispatch_uid="ruvon-log-task-enter")
    task_postrun.connect(_leave_task, weak=False, dispatch_uid="ruvon-log-task-leave")
