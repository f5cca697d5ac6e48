"""Exit codes, and turning any exception into one line on stderr.

========  =====================================================================
exit 0    success (a workflow COMPLETED or is waiting for a person)
exit 1    the workflow FAILED or was CANCELLED; any other error
exit 2    bad usage: options, JSON input, workflow definitions, input models
exit 3    the database failed (``PersistenceError``)
exit 4    no workflow with that id
exit 130  interrupted with Ctrl-C (the workflow keeps its last saved state)
========  =====================================================================
"""

from __future__ import annotations

import os
import sqlite3
import traceback

from ruvon.errors import (
    ConfigurationError,
    DefinitionError,
    InputValidationError,
    PersistenceError,
    RuvonError,
    WorkflowNotFound,
    WorkflowTypeNotFound,
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PERSISTENCE = 3
EXIT_NOT_FOUND = 4
EXIT_INTERRUPTED = 130

DEBUG_ENV = "RUVON_DEBUG"

_USAGE_ERRORS = (ConfigurationError, DefinitionError, InputValidationError, WorkflowTypeNotFound)


class CommandError(Exception):
    """A mistake in how a command was called (a bad option value, a missing file)."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        self.exit_code = exit_code
        super().__init__(message)


class Interrupted(Exception):
    """Ctrl-C stopped a command; what to do next has already been printed."""


def debug_enabled() -> bool:
    """True when ``RUVON_DEBUG`` asks for tracebacks."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for an exception that ended a command."""
    if isinstance(exc, CommandError):
        return exc.exit_code
    if isinstance(exc, Interrupted | KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, WorkflowNotFound):
        return EXIT_NOT_FOUND
    # sqlite3 errors should arrive wrapped in PersistenceError; a raw one is still a DB failure.
    if isinstance(exc, PersistenceError | sqlite3.Error):
        return EXIT_PERSISTENCE
    if isinstance(exc, _USAGE_ERRORS):
        return EXIT_USAGE
    return EXIT_FAILURE


def one_line(text: str) -> str:
    """Collapse a message onto one line (pydantic and YAML errors can span several)."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def describe(exc: BaseException) -> tuple[str, str | None]:
    """The error line for ``exc`` and, for unexpected exceptions, a hint line."""
    if isinstance(exc, RuvonError | CommandError):
        return one_line(str(exc)) or type(exc).__name__, None
    if isinstance(exc, sqlite3.Error):
        return f"database error: {one_line(str(exc))}", None
    detail = one_line(str(exc))
    message = f"unexpected {type(exc).__name__}" + (f": {detail}" if detail else "")
    hint = None if debug_enabled() else f"set {DEBUG_ENV}=1 to see the traceback"
    return message, hint


def format_traceback(exc: BaseException) -> str:
    """The full traceback of ``exc`` (printed only with RUVON_DEBUG=1)."""
    return "".join(traceback.format_exception(exc))
