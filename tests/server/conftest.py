"""The API against a real database: one fresh SQLite file or PostgreSQL database per test.

Operations run in the test process (``SyncExecutionProvider``) on both backends, so a started
workflow reaches its human step without workers; the cluster path (Celery) is the Client's own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ruvon.config import Settings
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.server.app import create_app
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Role, TokenSet
from ruvon.testing.postgres import create_database, drop_database

REGISTRY = Path(__file__).parents[1] / "contract" / "executor_workflows" / "workflow_registry.yaml"
VIEWER, OPERATOR, ADMIN = "viewer-secret", "operator-secret", "admin-secret"
TOKENS = TokenSet(
    [
        (VIEWER, Role.VIEWER, "vera"),
        (OPERATOR, Role.OPERATOR, "otto"),
        # The admin's line holds only the hash, as a tokens file may.
        ("sha256:" + hashlib.sha256(ADMIN.encode()).hexdigest(), Role.ADMIN, "ada"),
    ]
)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'server.sqlite3'}"
        return
    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app (lifespan run: the database is open)."""
    settings = Settings.from_env(
        {"RUVON_DATABASE_URL": database_url, "RUVON_REGISTRY_FILE": str(REGISTRY)}
    )
    execution = SyncExecutionProvider()
    app = create_app(settings, TOKENS, execution=execution)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://ruvon.test"
            ) as client:
                yield client
    finally:
        execution.close()


# -- the API over a wider registry (approval, WAIT, schedules, PARALLEL, children) ----------------

API_REGISTRY = Path(__file__).parent / "api_workflows" / "workflow_registry.yaml"


@dataclasses.dataclass
class Served:
    """An HTTP client on an app, and the app's runtime (to seed what the API only reads)."""

    http: httpx.AsyncClient
    runtime: ServerRuntime


@contextlib.asynccontextmanager
async def serve(database_url: str, registry: Path = API_REGISTRY) -> AsyncIterator[Served]:
    """The app on ``database_url`` with ``registry``, steps run in this process."""
    settings = Settings.from_env(
        {"RUVON_DATABASE_URL": database_url, "RUVON_REGISTRY_FILE": str(registry)}
    )
    execution = SyncExecutionProvider()
    app = create_app(settings, TOKENS, execution=execution)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://ruvon.test"
            ) as client:
                yield Served(client, app.state.runtime)
    finally:
        execution.close()


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[Served]:
    """:func:`serve` on a fresh SQLite file or PostgreSQL database."""
    async with serve(database_url) as bundle:
        yield bundle
