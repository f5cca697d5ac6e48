"""Serving the app with uvicorn, ending the live streams first when it shuts down."""

from __future__ import annotations

import gc
import socket

import uvicorn
from fastapi import FastAPI

from ruvon.server.live.hub import LiveHub

__all__ = ["GRACEFUL_SHUTDOWN_SECONDS", "RuvonServer", "serve", "server_for"]

#: How long a shutdown waits for requests still running (an embedded bulk run, a slow read).
GRACEFUL_SHUTDOWN_SECONDS = 10


class RuvonServer(uvicorn.Server):
    """uvicorn's server, which closes the app's live streams before waiting for connections.

    uvicorn lets open responses finish before it runs the lifespan shutdown; a stream never
    finishes on its own, so without this a Ctrl-C (or SIGTERM from Kubernetes) would wait for
    every connected browser.
    """

    def __init__(self, config: uvicorn.Config, live: LiveHub) -> None:
        super().__init__(config)
        self.live = live

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.live.close()
        await super().shutdown(sockets=sockets)


def server_for(app: FastAPI, host: str, port: int, *, log_level: str = "info") -> RuvonServer:
    """A server for an app made by :func:`ruvon.server.app.create_app`."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return RuvonServer(config, app.state.live)


def serve(app: FastAPI, host: str, port: int) -> None:
    """Serve until interrupted (SIGINT / SIGTERM)."""
    # What start-up made (FastAPI, pydantic, SQLAlchemy, the app: objects that live as long as
    # the process) leaves the collector's reach: otherwise each full collection walks all of it
    # again, a 136-179 ms pause in a 1,000-branch workflow page (docs/performance.md).
    gc.collect()
    gc.freeze()
    server_for(app, host, port).run()
