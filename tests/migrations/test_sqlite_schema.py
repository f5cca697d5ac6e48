"""The SQLite provider gets its schema from the migrations: new, legacy, older and newer files."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ruvon.db_schema import migrations
from ruvon.errors import SchemaOutOfDate
from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon.implementations.persistence.sqlite import schema as sqlite_schema
from ruvon.models import WorkflowStatus
from ruvon.records import AuditEntry, WorkflowRecord

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

# What SQLitePersistenceProvider created before Ruvon had migrations (two of its tables).
LEGACY_DDL = """
CREATE TABLE IF NOT EXISTS workflow_executions (
    id TEXT PRIMARY KEY, workflow_type TEXT NOT NULL, workflow_version TEXT,
    status TEXT NOT NULL, current_step INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL,
    definition_snapshot TEXT NOT NULL, version INTEGER NOT NULL, parent_execution_id TEXT,
    blocked_on_child_id TEXT, idempotency_key TEXT UNIQUE, saga_mode INTEGER NOT NULL DEFAULT 0,
    completed_steps TEXT NOT NULL DEFAULT '[]', run_at TEXT, error TEXT,
    runtime TEXT NOT NULL DEFAULT '{}', metadata TEXT NOT NULL DEFAULT '{}', data_region TEXT,
    priority INTEGER NOT NULL DEFAULT 0, owner_id TEXT, org_id TEXT, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, completed_at TEXT
);
CREATE INDEX IF NOT EXISTS ix_workflow_executions_parent
    ON workflow_executions (parent_execution_id);
CREATE TABLE IF NOT EXISTS workflow_audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id TEXT NOT NULL REFERENCES workflow_executions (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL, step_name TEXT, old_status TEXT, new_status TEXT,
    details TEXT NOT NULL DEFAULT '{}', recorded_at TEXT NOT NULL
);
"""


def _record(workflow_id: str) -> WorkflowRecord:
    return WorkflowRecord(
        id=workflow_id,
        workflow_type="Order",
        status=WorkflowStatus.ACTIVE,
        state={"n": 1},
        definition_snapshot={"steps": []},
        created_at=NOW,
        updated_at=NOW,
    )


async def _open(path: Path | str) -> SQLitePersistenceProvider:
    provider = SQLitePersistenceProvider(str(path))
    await provider.initialize()
    return provider


async def _write_workflow(path: Path, workflow_id: str) -> None:
    provider = await _open(path)
    try:
        audit = [AuditEntry(workflow_id, "CREATED", None, None, "ACTIVE", {}, NOW)]
        await provider.create_workflow(_record(workflow_id), audit)
    finally:
        await provider.close()


async def _assert_readable(path: Path, workflow_id: str, audit_rows: int) -> None:
    provider = await _open(path)
    try:
        assert (await provider.load_workflow(workflow_id)).state == {"n": 1}
        assert len(await provider.get_audit_log(workflow_id)) == audit_rows
    finally:
        await provider.close()


async def test_a_new_file_gets_exactly_what_the_migrations_build(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    await _write_workflow(path, "wf-1")
    url = f"sqlite:///{path}"
    assert migrations.current_revision(url) == migrations.SCHEMA_REVISION
    assert migrations.check(url) == []
    await _assert_readable(path, "wf-1", audit_rows=1)


async def test_concurrent_first_opens_install_the_schema_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    providers = [SQLitePersistenceProvider(str(path)) for _ in range(6)]
    await asyncio.gather(*(provider.initialize() for provider in providers))
    try:
        await providers[-1].create_workflow(_record("wf-1"))
        for provider in providers:
            assert (await provider.load_workflow("wf-1")).id == "wf-1"
    finally:
        await asyncio.gather(*(provider.close() for provider in providers))
    with sqlite3.connect(path) as conn:
        assert conn.execute(migrations.VERSION_QUERY).fetchall() == [(migrations.SCHEMA_REVISION,)]


async def test_a_pre_migration_file_is_adopted_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "legacy.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(LEGACY_DDL)
        conn.execute(
            "INSERT INTO workflow_executions (id, workflow_type, status, state, "
            "definition_snapshot, version, created_at, updated_at) "
            "VALUES ('old-1', 'Order', 'ACTIVE', '{\"n\": 1}', '{}', 3, ?, ?)",
            (NOW.isoformat(), NOW.isoformat()),
        )
        conn.execute(
            "INSERT INTO workflow_audit_log (workflow_id, event_type, recorded_at) "
            "VALUES ('old-1', 'CREATED', ?)",
            (NOW.isoformat(),),
        )
        conn.execute("CREATE TABLE app_notes (body TEXT)")  # not Ruvon's: left alone
    conn.close()

    await _assert_readable(path, "old-1", audit_rows=1)
    url = f"sqlite:///{path}"
    assert migrations.current_revision(url) == migrations.SCHEMA_REVISION
    drift = migrations.check(url)
    assert drift == ["table app_notes is in the database but not in ruvon.db_schema"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


async def test_a_file_with_an_incompatible_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE worker_nodes (worker_id TEXT PRIMARY KEY, colour TEXT)")
    conn.close()
    with pytest.raises(SchemaOutOfDate, match=r"has a table worker_nodes \(missing hostname"):
        await _open(path)


async def test_a_file_from_a_newer_ruvon_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.sqlite3"
    await _write_workflow(path, "wf-1")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0042_future'")
    conn.close()
    head = migrations.SCHEMA_REVISION
    refused = rf"revision 0042_future, which this Ruvon \(code at revision {head}\) does not"
    with pytest.raises(SchemaOutOfDate, match=refused):
        await _open(path)


NEXT_REVISION = '''
"""Test-only revision: rebuilds workflow_executions (batch move-and-copy) to add a column."""

import sqlalchemy as sa
from alembic import op

revision = "0013_test_rebuild"
down_revision = "0012_partial_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_executions", recreate="always") as batch:
        batch.add_column(sa.Column("test_note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workflow_executions", recreate="always") as batch:
        batch.drop_column("test_note")
'''


@pytest.fixture
def next_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The migrations plus a second revision, as the code's head (restored afterwards)."""
    directory = tmp_path / "migrations"
    shutil.copytree(migrations.MIGRATIONS_DIR, directory, ignore=shutil.ignore_patterns("__py*"))
    (directory / "versions" / "0013_test_rebuild.py").write_text(textwrap.dedent(NEXT_REVISION))
    monkeypatch.setattr(migrations, "MIGRATIONS_DIR", directory)
    monkeypatch.setattr(migrations, "SCHEMA_REVISION", "0013_test_rebuild")
    monkeypatch.setattr(sqlite_schema, "_head", None)
    migrations.head_revision.cache_clear()
    migrations.known_revisions.cache_clear()
    yield "0013_test_rebuild"
    migrations.head_revision.cache_clear()
    migrations.known_revisions.cache_clear()


async def test_an_older_file_is_upgraded_by_the_migrations(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    path = tmp_path / "older.sqlite3"
    await _write_workflow(path, "wf-1")  # at 0003_parallel_joins

    head = request.getfixturevalue("next_revision")
    await _assert_readable(path, "wf-1", audit_rows=1)  # the audit rows survived the rebuild
    url = f"sqlite:///{path}"
    assert migrations.current_revision(url) == head
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(workflow_executions)")]
        assert columns[-1] == "test_note"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


async def test_a_save_leaves_the_fixed_fields_as_created(tmp_path: Path) -> None:
    """created_at, workflow_type and the snapshot are fixed at creation (see the Protocol)."""
    provider = await _open(tmp_path / "keys.sqlite3")
    try:
        record, _ = await provider.create_workflow(_record("wf-1"))
        created = record.created_at
        record.created_at = NOW.replace(year=2020)
        record.definition_snapshot = {"edited": True}
        await provider.save_workflow(record, expected_version=record.version)
        stored = await provider.load_workflow("wf-1")
        assert stored.created_at == created
        assert stored.definition_snapshot != {"edited": True}
        assert stored.version == 2
    finally:
        await provider.close()
