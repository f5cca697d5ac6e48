"""A failed step's traceback, formatted and bounded, for the audit log and the history API.

The text is what :func:`traceback.format_exception` prints (frames, source lines, the
exception's message and its cause chain): nothing the exception text and the code's own
file names do not already show. Frames of the engine's own call into the step function stay,
so the reader sees where the step was called from; the last frames (the user's step function
and what it called) are the ones that matter, so a traceback over :data:`TRACEBACK_LIMIT`
characters keeps its end and says what it dropped.
"""

from __future__ import annotations

import traceback

__all__ = ["TRACEBACK_LIMIT", "format_traceback"]

# 8 KiB: a deep stack with a long message still fits, and a retry storm's audit rows stay small.
TRACEBACK_LIMIT = 8192
_CUT = "... ({dropped} characters of the traceback dropped)\n"


def format_traceback(exc: BaseException, limit: int = TRACEBACK_LIMIT) -> str:
    """The formatted traceback of ``exc``, its last ``limit`` characters at most."""
    text = "".join(traceback.format_exception(exc))
    if len(text) <= limit:
        return text
    kept = text[len(text) - limit :]
    # Start at a line boundary so the first kept line is whole.
    newline = kept.find("\n")
    if 0 <= newline < len(kept) - 1:
        kept = kept[newline + 1 :]
    return _CUT.format(dropped=len(text) - len(kept)) + kept
