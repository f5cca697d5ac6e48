"""CORS is off unless origins are configured; then only those origins get its headers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx
import pytest

from ruvon.config import Settings
from ruvon.errors import ConfigurationError
from ruvon.server.app import create_app
from ruvon.server.cors import cors_origins
from tests.server.conftest import REGISTRY, TOKENS, VIEWER, auth

ALLOWED = "https://ops.example.com"
PREFLIGHT = {
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "authorization",
}


async def _client(tmp_path: Path, env: Mapping[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.from_env(
        {
            "RUVON_DATABASE_URL": f"sqlite:///{tmp_path / 'cors.sqlite3'}",
            "RUVON_REGISTRY_FILE": str(REGISTRY),
        }
    )
    app = create_app(settings, TOKENS, env=env)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ruvon.test") as client:
            yield client


@pytest.fixture
async def closed(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(tmp_path, {}):
        yield client


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    env = {"RUVON_SERVER_CORS_ORIGINS": f"{ALLOWED}, http://127.0.0.1:3000"}
    async for client in _client(tmp_path, env):
        yield client


async def test_without_configuration_no_origin_gets_cors_headers(
    closed: httpx.AsyncClient,
) -> None:
    got = await closed.get("/api/v1/workflows", headers={"Origin": ALLOWED, **auth(VIEWER)})
    assert got.status_code == 200
    assert "access-control-allow-origin" not in got.headers
    preflight = await closed.options("/api/v1/workflows", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert "access-control-allow-origin" not in preflight.headers


async def test_configured_origins_get_cors_headers_and_others_do_not(
    opened: httpx.AsyncClient,
) -> None:
    got = await opened.get("/api/v1/workflows", headers={"Origin": ALLOWED, **auth(VIEWER)})
    assert got.status_code == 200
    assert got.headers["access-control-allow-origin"] == ALLOWED
    assert "access-control-allow-credentials" not in got.headers  # cookies never cross origins
    preflight = await opened.options("/api/v1/workflows", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()

    other = "https://evil.example.net"
    foreign = await opened.get("/api/v1/workflows", headers={"Origin": other, **auth(VIEWER)})
    assert "access-control-allow-origin" not in foreign.headers
    refused = await opened.options("/api/v1/workflows", headers={"Origin": other, **PREFLIGHT})
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize(
    "value", ["*", "ops.example.com", "https://ops.example.com/path", "ftp://x"]
)
def test_a_malformed_origin_is_a_configuration_error_naming_it(value: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        cors_origins({"RUVON_SERVER_CORS_ORIGINS": f"https://fine.example.com,{value}"})
    assert "RUVON_SERVER_CORS_ORIGINS" in str(raised.value) and repr(value) in str(raised.value)


def test_origins_are_read_comma_or_space_separated() -> None:
    env = {"RUVON_SERVER_CORS_ORIGINS": " https://a.example.com, http://[::1]:8080  http://b:3000 "}
    assert cors_origins(env) == ["https://a.example.com", "http://[::1]:8080", "http://b:3000"]
    assert cors_origins({}) == []
