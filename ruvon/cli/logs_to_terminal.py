"""Engine log records on the terminal: one line each, tracebacks only with RUVON_DEBUG=1.

Without this, Python's last-resort handler would print a full traceback for every
``logger.exception`` the engine makes (an observer that failed, a parent that could not be
resumed), which is noise for an operator at a terminal.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from ruvon.cli.failures import debug_enabled, format_traceback, one_line


class TerminalLogHandler(logging.Handler):
    """Writes ``warning: message: error`` lines to the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = one_line(record.getMessage())
            error = record.exc_info[1] if record.exc_info else None
            if error is not None:
                message = f"{message}: {type(error).__name__}: {one_line(str(error))}"
            # Looked up per record: test runners swap sys.stderr between invocations.
            stream = sys.stderr
            stream.write(f"{record.levelname.lower()}: {message}\n")
            if error is not None and debug_enabled():
                stream.write(format_traceback(error))
            stream.flush()
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def engine_logs_to_terminal() -> Iterator[None]:
    """While a command runs, send the ``ruvon`` loggers to the terminal, then put them back.

    Scoped rather than global so that embedding the CLI (tests, other tools) leaves the
    logging configuration as it found it.
    """
    logger = logging.getLogger("ruvon")
    saved = (logger.level, logger.propagate)
    handler = TerminalLogHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug_enabled() else logging.WARNING)
    # The CLI is the application here: do not also print through the root logger.
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])  # setLevel, not .level: it resets the loggers' level cache
        logger.propagate = saved[1]
