"""JSON log lines (``RUVON_LOG_FORMAT=json``), each record inside a step tagged with the step.

One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
``process``, ``thread``, the step fields when the record was emitted inside a step attempt
(``workflow_id``, ``workflow_type``, ``step``, ``attempt``, ``branch`` in a PARALLEL branch; see
:mod:`ruvon.log_context`), ``exc_info`` / ``stack_info`` text, and any ``extra={...}`` the caller
passed. The worker and the beat install it on Celery's handlers (``worker/logs.py``); elsewhere::

    handler.setFormatter(JsonFormatter())
    handler.addFilter(StepContextFilter())     # also for a text format: %(workflow_id)s
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ruvon.errors import ConfigurationError
from ruvon.log_context import current_step_log_context

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "StepContextFilter",
    "log_format_from_env",
    "use_json_logs",
]

LOG_FORMATS = ("text", "json")
_STEP_FIELDS = ("workflow_id", "workflow_type", "step", "attempt", "branch")
# Attributes every LogRecord has (and "message"/"asctime", set by formatting): not "extra".
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


def log_format_from_env() -> str:
    """``RUVON_LOG_FORMAT``: ``text`` (default) or ``json``."""
    value = (os.environ.get("RUVON_LOG_FORMAT") or "text").strip().lower()
    if value not in LOG_FORMATS:
        raise ConfigurationError(f"RUVON_LOG_FORMAT={value!r}: use one of {', '.join(LOG_FORMATS)}")
    return value


class StepContextFilter(logging.Filter):
    """Adds the running step's fields to a record (never drops one).

    Put it on a handler: it runs in the thread that logs, where the step's context is.
    Outside a step the fields are ``None``, so a text format naming them still works.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "step", None) is not None:
            return True  # tagged already (a second handler, or extra=)
        context = current_step_log_context()
        fields = context.fields() if context is not None else {}
        for name in _STEP_FIELDS:
            setattr(record, name, fields.get(name))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        context = current_step_log_context()
        if getattr(record, "step", None) is None and context is not None:
            entry.update(context.fields())  # no filter on this handler: read the context here
        for name, value in _extras(record):
            if value is not None or name not in _STEP_FIELDS:
                entry[name] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=_fallback, ensure_ascii=False)


def _extras(record: logging.LogRecord) -> Iterable[tuple[str, Any]]:
    for name, value in vars(record).items():
        if name not in _STANDARD and not name.startswith("_"):
            yield name, value


def _fallback(value: object) -> str:
    return str(value)


def use_json_logs(handlers: Iterable[logging.Handler]) -> None:
    """Give ``handlers`` the JSON formatter and the step filter (once each)."""
    for handler in handlers:
        handler.setFormatter(JsonFormatter())
        if not any(isinstance(f, StepContextFilter) for f in handler.filters):
            handler.addFilter(StepContextFilter())
