"""PostgreSQL-specific behaviour beyond the shared contract: sessions, failures, configuration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ruvon.config import Settings
from ruvon.errors import ConfigurationError, PersistenceError
from ruvon.implementations.persistence.factory import persistence_from_url
from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider
from ruvon.implementations.persistence.postgres.codecs import (
    decode_jsonb,
    decode_text,
    encode_jsonb,
    encode_text,
)
from ruvon.models import WorkflowStatus
from ruvon.records import WorkflowRecord
from ruvon.testing.postgres import TestPostgresProvider, make_test_postgres_provider, server_url

APP = "ruvon-provider-test"


def record(workflow_id: str = "wf-1", **overrides: Any) -> WorkflowRecord:
    fields: dict[str, Any] = {"id": workflow_id, "workflow_type": "T",
                              "status": WorkflowStatus.ACTIVE, "state": {"n": 1},
                              "definition_snapshot": {"steps": [{"name": "a"}]}}  # fmt: skip
    fields.update(overrides)
    return WorkflowRecord(**fields)


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[TestPostgresProvider]:
    provider = await make_test_postgres_provider(
        tmp_path, application_name=APP, statement_timeout=0.5
    )
    assert isinstance(provider, TestPostgresProvider)
    yield provider
    await provider.close()


@pytest.fixture
async def admin() -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(server_url())
    yield conn
    await conn.close()


async def hold_row_lock(provider: TestPostgresProvider, workflow_id: str) -> asyncpg.Connection:
    """Another session that locks the row, so the provider's next write on it waits."""
    assert provider.database_url is not None
    conn = await asyncpg.connect(provider.database_url)
    await conn.execute("BEGIN")
    await conn.execute("SELECT 1 FROM workflow_executions WHERE id = $1 FOR UPDATE", workflow_id)
    return conn


async def waiting_backend(admin: asyncpg.Connection, database: str) -> int:
    """The pid of the provider's session once it is blocked on a lock."""
    for _ in range(200):
        pid: int | None = await admin.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 "
            "AND wait_event_type = 'Lock'",
            database,
            APP,
        )
        if pid is not None:
            return pid
        await asyncio.sleep(0.01)
    raise AssertionError("the provider's statement never waited on the lock")


async def test_sessions_carry_the_application_name(
    provider: TestPostgresProvider, admin: asyncpg.Connection
) -> None:
    await provider.list_workflows()
    count = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
        provider.target.database,
        APP,
    )
    assert count >= 1


async def test_column_types_and_compression(provider: TestPostgresProvider) -> None:
    """Whole documents are json (lz4 where the server has it), the rest jsonb; timestamptz."""
    assert provider.database_url is not None
    conn = await asyncpg.connect(provider.database_url)
    try:
        types = dict(
            await conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'workflow_executions'"
            )
        )
        compression = dict(
            await conn.fetch(
                "SELECT attname, attcompression::text FROM pg_attribute "
                "WHERE attrelid = 'workflow_executions'::regclass AND attnum > 0"
            )
        )
        has_lz4 = await conn.fetchval(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
    finally:
        await conn.close()
    assert types["state"] == types["definition_snapshot"] == "json"
    assert types["runtime"] == types["metadata"] == "jsonb"
    assert types["created_at"] == types["run_at"] == "timestamp with time zone"
    expected = "l" if has_lz4 else ""  # pg_attribute.attcompression: l = lz4, empty = default
    assert compression["state"] == compression["definition_snapshot"] == expected


async def test_naive_datetimes_are_utc(provider: TestPostgresProvider) -> None:
    naive = datetime(2024, 5, 1, 12, 30, 0, 5)
    await provider.create_workflow(record(created_at=naive, updated_at=naive, run_at=naive))
    loaded = await provider.load_workflow("wf-1")
    assert loaded.created_at == loaded.run_at == naive.replace(tzinfo=UTC)
    assert loaded.created_at.tzinfo is not None


async def test_lost_connection_mid_operation_names_host_and_database(
    provider: TestPostgresProvider, admin: asyncpg.Connection
) -> None:
    stored, _ = await provider.create_workflow(record())
    locker = await hold_row_lock(provider, "wf-1")
    try:
        stored.state = {"n": 2}
        save = asyncio.create_task(provider.save_workflow(stored, expected_version=1))
        pid = await waiting_backend(admin, provider.target.database)
        await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(PersistenceError) as caught:
            await save
    finally:
        await locker.close()
    message = str(caught.value)
    assert "connection was lost" in message and "save workflow failed" in message
    assert "127.0.0.1:5432" in message and provider.target.database in message
    # Nothing was written, and the pool replaces the dead connection.
    assert (await provider.load_workflow("wf-1")).version == 1


async def test_statement_timeout_is_applied(
    provider: TestPostgresProvider, admin: asyncpg.Connection
) -> None:
    stored, _ = await provider.create_workflow(record())
    locker = await hold_row_lock(provider, "wf-1")
    try:
        with pytest.raises(PersistenceError, match="statement_timeout") as caught:
            await provider.save_workflow(stored, expected_version=1)
    finally:
        await locker.close()
    assert provider.target.database in str(caught.value)
    assert (await provider.load_workflow("wf-1")).version == 1


async def test_closed_provider_refuses_work(tmp_path: Path) -> None:
    provider = await make_test_postgres_provider(tmp_path)
    await provider.close()
    with pytest.raises(PersistenceError, match="closed"):
        await provider.load_workflow("wf-1")


TRICKY = ["plain", "a\x00b", "\x1f", "\x1f0", "\x1fs", "\\\x00", "\\u0000", "\\\\u001f0",
          "\x00\x1f\x00\x1fs0", "end\\", "é\x00✓", ""]  # fmt: skip


def test_codecs_escape_only_what_postgres_cannot_store() -> None:
    for text in TRICKY:
        assert decode_text(encode_text(text)) == text
        assert decode_jsonb(encode_jsonb({text: [text]})) == {text: [text]}
    assert encode_text("plain") == "plain"
    assert encode_jsonb({"a": "\x00"}) == b'\x01{"a":"\\u001f0"}'
    assert encode_jsonb({"a": "\\u0000"}) == b'\x01{"a":"\\\\u0000"}'  # a backslash, not NUL
    assert (
        "\x00" not in encode_text("\x00\x00") and "\\u0000" not in encode_jsonb(["\x00"]).decode()
    )


@given(st.text(alphabet=st.sampled_from('\x00\x1f\\u0s"a')), st.text())
def test_codecs_round_trip_any_text(tricky: str, anything: str) -> None:
    for text in (tricky, anything, tricky + anything):
        assert decode_text(encode_text(text)) == text
        assert "\x00" not in encode_text(text)
        assert decode_jsonb(encode_jsonb({text: text})) == {text: text}


async def test_tricky_text_round_trips_through_the_server(provider: TestPostgresProvider) -> None:
    for i, text in enumerate(TRICKY):
        original = record(f"wf-{i}-{text}", state={text: [text]}, error=text or None)
        await provider.create_workflow(original)
        assert await provider.load_workflow(original.id) == original


# -- configuration -------------------------------------------------------------------------


def test_settings_read_pool_sizes_and_timeout() -> None:
    settings = Settings.from_env(
        {
            "RUVON_DATABASE_URL": "postgresql://u@h/db",
            "RUVON_POOL_MIN_SIZE": "3",
            "RUVON_POOL_MAX_SIZE": "7",
            "RUVON_STATEMENT_TIMEOUT": "2.5",
        }
    )
    assert settings.database_url == "postgresql://u@h/db"
    assert (settings.pool_min_size, settings.pool_max_size) == (3, 7)
    assert settings.statement_timeout == 2.5


def test_settings_accept_the_older_names() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgres://u@h/db",
            "POSTGRES_POOL_MIN_SIZE": "1",
            "POSTGRES_POOL_MAX_SIZE": "4",
            "RUVON_STATEMENT_TIMEOUT": "0",
        }
    )
    assert settings.database_url == "postgres://u@h/db"
    assert (settings.pool_min_size, settings.pool_max_size) == (1, 4)
    assert settings.statement_timeout is None
    defaults = Settings.from_env({})
    assert (defaults.pool_min_size, defaults.pool_max_size) == (2, 10)
    assert defaults.statement_timeout == 30.0


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RUVON_POOL_MIN_SIZE": "many"}, "RUVON_POOL_MIN_SIZE"),
        ({"RUVON_POOL_MIN_SIZE": "5", "RUVON_POOL_MAX_SIZE": "2"}, "RUVON_POOL_MAX_SIZE"),
        ({"RUVON_STATEMENT_TIMEOUT": "-1"}, "RUVON_STATEMENT_TIMEOUT"),
        ({"RUVON_STATEMENT_TIMEOUT": "soon"}, "RUVON_STATEMENT_TIMEOUT"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        Settings.from_env(env)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+asyncpg"])
def test_factory_builds_the_postgres_provider(scheme: str) -> None:
    settings = Settings.from_env(
        {"RUVON_POOL_MIN_SIZE": "1", "RUVON_POOL_MAX_SIZE": "3", "RUVON_STATEMENT_TIMEOUT": "4"}
    )
    url = f"{scheme}://ruvon:hunter2@db.example:6543/app"
    provider = persistence_from_url(url, max_state_bytes=99, settings=settings)
    assert isinstance(provider, PostgresPersistenceProvider)
    assert (provider.pool_min_size, provider.pool_max_size) == (1, 3)
    assert provider.statement_timeout == 4 and provider.max_state_bytes == 99
    target = provider.target
    assert (target.host, target.port, target.database, target.user) == (
        "db.example",
        6543,
        "app",
        "ruvon",
    )
    assert "hunter2" not in repr(provider)


def test_factory_rejects_unknown_schemes() -> None:
    with pytest.raises(ConfigurationError, match="mysql"):
        persistence_from_url("mysql://u@h/db")


async def test_provider_from_the_environment_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = await make_test_postgres_provider(tmp_path)
    assert isinstance(seed, TestPostgresProvider) and seed.database_url is not None
    try:
        monkeypatch.setenv("RUVON_DATABASE_URL", seed.database_url)
        monkeypatch.setenv("RUVON_POOL_MIN_SIZE", "1")
        monkeypatch.setenv("RUVON_POOL_MAX_SIZE", "2")
        settings = Settings.from_env()
        provider = persistence_from_url(settings.database_url)
        await provider.initialize()
        try:
            stored, created = await provider.create_workflow(record())
            assert created and await seed.load_workflow("wf-1") == stored
        finally:
            await provider.close()
    finally:
        await seed.close()
