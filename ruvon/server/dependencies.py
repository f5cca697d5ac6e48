"""Request-scoped access to the server's runtime (set on ``app.state`` by the app factory)."""

from __future__ import annotations

from fastapi import Request

from ruvon.server.runtime import ServerRuntime


def server_runtime(request: Request) -> ServerRuntime:
    """The open :class:`ServerRuntime` of the app serving this request."""
    runtime: ServerRuntime = request.app.state.runtime
    return runtime
