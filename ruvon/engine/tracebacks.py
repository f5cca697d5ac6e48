"""A failed attempt's traceback, bounded, for its audit entry (``details["traceback"]``).

The one-line error (``Type: message``) says what failed; the traceback says where, which is
what an operator looking at a failed workflow in the UI or the API needs first. It is stored
with the failure (the same fenced save), so it is there on whichever worker or process the
attempt ran. Only formatted frames and the exception text are kept, never local variables.
"""

from __future__ import annotations

import traceback

__all__ = ["MAX_TRACEBACK_CHARS", "bounded_traceback", "failure_details"]

#: Longest traceback stored per failed attempt; past it the middle is left out (the first line
#: and the innermost frames, where the error was raised, are kept).
MAX_TRACEBACK_CHARS = 8_000


def bounded_traceback(exc: BaseException, limit: int = MAX_TRACEBACK_CHARS) -> str | None:
    """``exc``'s formatted traceback (its causes included), at most ``limit`` characters.

    ``None`` when ``exc`` was never raised (no frames to show: the error line says it all).
    """
    if exc.__traceback__ is None:
        return None
    text = "".join(traceback.format_exception(exc))
    if len(text) <= limit:
        return text
    omitted = "\n  ... {} characters left out ...\n"
    head = limit // 4
    marker = omitted.format(len(text) - limit)
    tail = limit - head - len(marker)
    return text[:head] + marker + text[len(text) - tail :]


def failure_details(error: str, exc: BaseException) -> dict[str, str]:
    """An audit entry's ``error``, and its ``traceback`` when ``exc`` has one."""
    details = {"error": error}
    formatted = bounded_traceback(exc)
    if formatted is not None:
        details["traceback"] = formatted
    return details
