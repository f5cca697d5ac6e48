"""The app factory: ``create_app(settings, tokens)`` -> the FastAPI application."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import FastAPI

from ruvon import __version__
from ruvon.config import Settings
from ruvon.server.bulk.definition import register_bulk_operation
from ruvon.server.bulk.embedded import EmbeddedBulkRuns
from ruvon.server.cors import install_cors
from ruvon.server.limits import DEFAULT_MAX_BODY_BYTES, BodySizeLimit
from ruvon.server.live.hub import LiveHub
from ruvon.server.problems import install_problem_handlers
from ruvon.server.routes_approvals import router as approvals_router
from ruvon.server.routes_bulk import router as bulk_router
from ruvon.server.routes_cluster import router as cluster_router
from ruvon.server.routes_concurrency import router as concurrency_router
from ruvon.server.routes_events import router as events_router
from ruvon.server.routes_operations import router as operations_router
from ruvon.server.routes_schedules import router as schedules_router
from ruvon.server.routes_service import api_router as definitions_router
from ruvon.server.routes_service import health_router
from ruvon.server.routes_signals import router as signals_router
from ruvon.server.routes_workflows import router as workflows_router
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import TokenSet
from ruvon.server.ui import mount_ui

API_PREFIX = "/api/v1"


def create_app(
    settings: Settings,
    tokens: TokenSet,
    *,
    execution: Any = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    env: Mapping[str, str] | None = None,
) -> FastAPI:
    """The REST API over ``settings.database_url``, open to ``tokens``.

    The database opens when the app starts (its lifespan) and closes when it stops.
    ``execution`` overrides the execution provider (default: the cluster's on PostgreSQL,
    in-process on SQLite; see :class:`ServerRuntime`). ``env`` (default: the process
    environment) holds the server's own settings: the UI's (``mount_ui``) and CORS origins
    (``ruvon.server.cors``).
    """
    env = os.environ if env is None else env
    runtime = ServerRuntime(settings, execution=execution)
    live = LiveHub(runtime)
    bulk_runs = EmbeddedBulkRuns(runtime)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.open()
        register_bulk_operation(runtime.builder)
        try:
            yield
        finally:
            await live.close()
            await bulk_runs.close()
            await runtime.close()

    app = FastAPI(
        title="Ruvon Server",
        version=__version__,
        description="Workflows, their history and operations on a Ruvon database.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
    )
    app.state.runtime = runtime
    app.state.tokens = tokens
    app.state.live = live
    app.state.bulk_runs = bulk_runs
    install_problem_handlers(app)
    app.include_router(health_router)
    app.include_router(workflows_router, prefix=API_PREFIX)
    app.include_router(operations_router, prefix=API_PREFIX)
    app.include_router(definitions_router, prefix=API_PREFIX)
    app.include_router(approvals_router, prefix=API_PREFIX)
    app.include_router(signals_router, prefix=API_PREFIX)
    app.include_router(schedules_router, prefix=API_PREFIX)
    app.include_router(cluster_router, prefix=API_PREFIX)
    app.include_router(concurrency_router, prefix=API_PREFIX)
    app.include_router(events_router, prefix=API_PREFIX)
    app.include_router(bulk_router, prefix=API_PREFIX)
    mount_ui(app, env)  # the web UI at /ui, on the same runtime and tokens
    app.state.cors_origins = install_cors(app, env)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    return app
