"""Server-sent events as text: the frames a browser's ``EventSource`` reads.

See https://html.spec.whatwg.org/multipage/server-sent-events.html: an event is ``field: value``
lines ended by a blank line; a line starting with ``:`` is a comment (the keep-alive).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

__all__ = ["KEEP_ALIVE", "EventStreamResponse", "event_frame", "retry_frame"]

#: A comment line: keeps proxies and the browser from timing the connection out.
KEEP_ALIVE = ": keep-alive\n\n"


def event_frame(event: str, data: str, event_id: str | None = None) -> str:
    """One event; ``data`` may span lines (each becomes a ``data:`` line)."""
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return "\n".join(lines) + "\n\n"


def retry_frame(milliseconds: int) -> str:
    """How long a browser waits before reconnecting after the stream ends."""
    return f"retry: {milliseconds}\n\n"


class EventStreamResponse(StreamingResponse):
    """``text/event-stream``, never cached nor buffered by a proxy."""

    def __init__(
        self,
        content: AsyncIterator[str],
        status_code: int = 200,  # FastAPI's OpenAPI reads the default status from here
        *,
        background: BackgroundTask | None = None,
    ) -> None:
        headers: dict[str, Any] = {
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx (an Ingress) would buffer it otherwise
        }
        super().__init__(
            content,
            status_code,
            media_type="text/event-stream",
            headers=headers,
            background=background,
        )
