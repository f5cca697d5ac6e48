"""Bad input against the PostgreSQL provider: wrong URLs, an old schema, hostile state and ids.

About "wrong password": the test server trusts loopback connections (trust auth accepts any
password), so a wrong password cannot be provoked there. The same failure path is exercised with
a role that does not exist, which the server rejects during authentication with the same class
of error (SQLSTATE 28000 vs 28P01 for a bad password); both map to ``DatabaseUnavailable``
saying "authentication failed".
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ruvon.db_schema import migrations
from ruvon.errors import (
    DatabaseUnavailable,
    SchemaOutOfDate,
    StateTooLargeError,
    StateValidationError,
)
from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider
from ruvon.models import WorkflowStatus
from ruvon.records import AuditEntry, WorkflowRecord
from ruvon.testing.postgres import (
    TestPostgresProvider,
    create_database,
    database_url,
    drop_database,
    make_test_postgres_provider,
    server_url,
)

PASSWORD = "s3cret-Pa55word"
INJECTIONS = ["x'); DROP TABLE workflow_executions;--", "'; SELECT pg_sleep(5);--"]
SCHEMA_QUERY = """
    SELECT table_name, column_name, data_type FROM information_schema.columns
    WHERE table_schema = 'public' ORDER BY table_name, ordinal_position
"""


def url_with(*, host: str = "127.0.0.1", port: int = 5432, user: str = "postgres",
             database: str = "postgres") -> str:  # fmt: skip
    return f"postgresql://{user}:{PASSWORD}@{host}:{port}/{database}"


def record(workflow_id: str = "wf-1", **overrides: Any) -> WorkflowRecord:
    fields: dict[str, Any] = {"id": workflow_id, "workflow_type": "T",
                              "status": WorkflowStatus.ACTIVE, "state": {"ok": True},
                              "definition_snapshot": {"steps": [{"name": "a"}]}}  # fmt: skip
    fields.update(overrides)
    return WorkflowRecord(**fields)


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[TestPostgresProvider]:
    provider = await make_test_postgres_provider(tmp_path, max_state_bytes=1_000)
    assert isinstance(provider, TestPostgresProvider)
    yield provider
    await provider.close()


async def raw(provider: TestPostgresProvider) -> asyncpg.Connection:
    """A plain connection to the provider's database (no Ruvon codecs)."""
    assert provider.database_url is not None
    return await asyncpg.connect(provider.database_url)


async def initialize_fails(url: str) -> DatabaseUnavailable:
    provider = PostgresPersistenceProvider(url, connect_timeout=5.0)
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await provider.initialize()
    finally:
        await provider.close()
    message = str(caught.value)
    assert PASSWORD not in message and PASSWORD not in repr(caught.value)
    assert PASSWORD not in repr(provider)
    return caught.value


# -- connection ------------------------------------------------------------------------------


async def test_bad_host_names_host_and_database() -> None:
    error = await initialize_fails(url_with(host="no-such-host.invalid", database="ruvon_app"))
    assert "no-such-host.invalid:5432" in str(error) and "'ruvon_app'" in str(error)
    assert "cannot be resolved" in str(error)


async def test_closed_port_is_refused() -> None:
    error = await initialize_fails(url_with(port=1, database="ruvon_app"))
    assert "127.0.0.1:1" in str(error) and "'ruvon_app'" in str(error)
    assert "refused" in str(error)


async def test_rejected_credentials_name_the_user_not_the_password() -> None:
    role = f"ruvon_no_such_role_{uuid.uuid4().hex[:8]}"
    error = await initialize_fails(url_with(user=role))
    assert "authentication failed" in str(error) and role in str(error)
    assert "127.0.0.1:5432" in str(error) and "'postgres'" in str(error)


async def test_missing_database_is_named() -> None:
    missing = f"ruvon_t_missing_{uuid.uuid4().hex[:8]}"
    error = await initialize_fails(url_with(database=missing))
    assert f"database '{missing}' does not exist" in str(error)
    assert "127.0.0.1:5432" in str(error)


# -- schema revision -------------------------------------------------------------------------


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    url = await create_database(from_template=False)
    yield url
    await drop_database(url)


async def sessions_on(url: str) -> int:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(server_url())
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name
        )
        return count
    finally:
        await conn.close()


async def test_database_without_schema_says_to_upgrade(empty_database: str) -> None:
    provider = PostgresPersistenceProvider(empty_database)
    with pytest.raises(SchemaOutOfDate, match="run `ruvon db upgrade`") as caught:
        await provider.initialize()
    assert empty_database.rsplit("/", 1)[1] in str(caught.value)
    assert await sessions_on(empty_database) == 0  # the pool was not left open
    # Following the advice works.
    await asyncio.to_thread(migrations.upgrade, empty_database)
    await provider.initialize()
    stored, created = await provider.create_workflow(record())
    assert created and stored.version == 1
    await provider.close()


async def test_database_behind_the_code_says_to_upgrade(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        await conn.execute("INSERT INTO alembic_version VALUES ('0000_older')")
    finally:
        await conn.close()
    provider = PostgresPersistenceProvider(empty_database)
    with pytest.raises(SchemaOutOfDate) as caught:
        await provider.initialize()
    await provider.close()
    assert "0000_older" in str(caught.value) and migrations.SCHEMA_REVISION in str(caught.value)


# -- state -----------------------------------------------------------------------------------


async def test_nul_characters_round_trip_exactly(provider: TestPostgresProvider) -> None:
    """PostgreSQL cannot store NUL; the provider escapes it reversibly (postgres/codecs.py)."""
    state = {"nul": "a\x00b", "key\x00": ["\x00"], "unit\x1fsep": "\x1f0 \x1fs \\u0000"}
    await provider.create_workflow(
        record("wf\x00id", state=state, error="e\x00"),
        audit=[AuditEntry("wf\x00id", "CREATED", step_name="s\x00", details={"d": "\x00"})],
    )
    loaded = await provider.load_workflow("wf\x00id")
    assert loaded.state == state and loaded.error == "e\x00"
    [entry] = await provider.get_audit_log("wf\x00id")
    assert entry.step_name == "s\x00" and entry.details == {"d": "\x00"}
    conn = await raw(provider)
    try:  # what other SQL clients see: the escaped form, only in strings that needed it
        stored = await conn.fetchval("SELECT state::text FROM workflow_executions")
        assert '"nul":"a\\u001f0b"' in stored  # json keeps the compact text it was sent
        assert await conn.fetchval("SELECT state->>'unit\x1fssep' FROM workflow_executions") == (
            "\x1fs0 \x1fss \\u0000"
        )
    finally:
        await conn.close()


@pytest.mark.parametrize("bad", [math.nan, math.inf])
async def test_non_finite_numbers_are_rejected_naming_the_key(
    provider: TestPostgresProvider, bad: float
) -> None:
    with pytest.raises(StateValidationError, match=r"non-finite float at 'order\.total'"):
        await provider.create_workflow(record(state={"order": {"total": bad}}))
    assert await provider.list_workflows() == []


async def test_oversized_state_is_rejected_before_the_write(provider: TestPostgresProvider) -> None:
    with pytest.raises(StateTooLargeError) as caught:
        await provider.create_workflow(record(state={"blob": "x" * 2_000}))
    message = str(caught.value)
    assert str(caught.value.size) in message and "1000" in message and caught.value.size > 2_000
    assert await provider.list_workflows() == []

    stored, _ = await provider.create_workflow(record())
    stored.state = {"blob": "y" * 2_000}
    audit = [AuditEntry("wf-1", "BIG")]
    with pytest.raises(StateTooLargeError, match="1000 bytes"):
        await provider.save_workflow(stored, expected_version=1, audit=audit)
    assert (await provider.load_workflow("wf-1")).state == {"ok": True}
    assert (await provider.load_workflow("wf-1")).version == 1
    assert await provider.get_audit_log("wf-1") == []


# -- injection -------------------------------------------------------------------------------


async def test_injection_strings_are_data(provider: TestPostgresProvider) -> None:
    conn = await raw(provider)
    try:
        schema_before = await conn.fetch(SCHEMA_QUERY)
    finally:
        await conn.close()
    started = time.monotonic()
    for text in INJECTIONS:
        state = {text: text, "nested": {text: [text]}}
        original = record(text, state=state, workflow_type=text, idempotency_key=text,
                          parent_execution_id=text, error=text)  # fmt: skip
        await provider.create_workflow(original, audit=[AuditEntry(text, text, step_name=text)])
        loaded = await provider.load_workflow(text)
        assert loaded == original
        assert await provider.find_by_idempotency_key(text) == original
        assert [r.id for r in await provider.list_workflows(workflow_type=text)] == [text]
        assert [r.id for r in await provider.list_workflows(parent_execution_id=text)] == [text]
        loaded.state[text] = "saved"
        assert await provider.save_workflow(loaded, expected_version=1) == 2
        assert (await provider.load_workflow(text)).state[text] == "saved"
        [entry] = await provider.get_audit_log(text)
        assert entry.event_type == text and entry.step_name == text
    assert time.monotonic() - started < 4  # pg_sleep(5) never ran
    conn = await raw(provider)
    try:
        assert await conn.fetch(SCHEMA_QUERY) == schema_before
        assert await conn.fetchval("SELECT count(*) FROM workflow_executions") == len(INJECTIONS)
    finally:
        await conn.close()


async def test_injection_in_the_database_name_is_not_executed() -> None:
    """The URL's database name travels in the startup packet, never through SQL."""
    name = "x'; DROP TABLE workflow_executions;--"
    error = await initialize_fails(database_url(url_with(), name.replace(" ", "%20")))
    assert "does not exist" in str(error)
