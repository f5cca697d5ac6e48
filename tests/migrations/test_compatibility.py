"""The schema compatibility window: this code against its own revision, older ones, and newer
ones written by a newer release's migrations (a test-only revision in a temporary script
location), on PostgreSQL and SQLite; and ``ruvon db wait``."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from click.testing import CliRunner

from ruvon.cli.main import cli
from ruvon.db_schema import compatibility, migrations
from ruvon.errors import ConfigurationError, SchemaOutOfDate
from ruvon.implementations.observability.health import check_database
from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider
from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
from tests.migrations.future_revisions import NEXT, newer_migrations, ruvon_cli, upgrade_with

HEAD = migrations.SCHEMA_REVISION
LINEAGE = (
    "0001_initial",
    "0002_step_run_kinds",
    "0003_parallel_joins",
    "0004_whole_json_documents",
    "0005_updated_at_index",
    "0006_prefix_indexes",
    "0007_signals",
    "0008_step_run_trace_context",
    "0009_run_priority",
    "0010_workflow_deadlines",
    "0011_flow_control",
    HEAD,
)
#: What each revision declares: 0001-0004 predate the window (compatible with themselves only).
DECLARED = {
    **{revision: revision for revision in LINEAGE[:4]},
    "0005_updated_at_index": "0004_whole_json_documents",
    "0006_prefix_indexes": "0005_updated_at_index",
    "0007_signals": "0005_updated_at_index",
    "0008_step_run_trace_context": "0007_signals",
    "0009_run_priority": "0008_step_run_trace_context",
    "0010_workflow_deadlines": "0008_step_run_trace_context",
    "0011_flow_control": "0008_step_run_trace_context",
    "0012_partial_indexes": "0008_step_run_trace_context",
}


def _problem(found: str | None, declared: dict[str, str] | None = None) -> str | None:
    return compatibility.schema_problem(
        found, declared or {}, code_revision=HEAD, code_lineage=LINEAGE, database="db 'x'"
    )


def test_the_window_is_this_revision_and_the_newer_ones_declared_compatible() -> None:
    assert _problem(HEAD) is None
    assert _problem(NEXT, {NEXT: HEAD}) is None  # declared compatible with this code
    assert _problem(NEXT, {NEXT: "0003_parallel_joins"}) is None  # ... and with older code

    assert _problem(None) == (
        f"db 'x' has no Ruvon schema (this Ruvon's code is at revision {HEAD}): "
        "run `ruvon db upgrade`"
    )
    assert _problem("0003_parallel_joins") == (
        f"db 'x' schema is at revision 0003_parallel_joins, older than this Ruvon's code "
        f"(revision {HEAD}): run `ruvon db upgrade`"
    )
    undeclared = _problem(NEXT, {})
    assert undeclared is not None
    assert f"revision {NEXT}" in undeclared and f"code at revision {HEAD}" in undeclared
    assert "declares no compatibility" in undeclared and "upgrade Ruvon" in undeclared
    assert f"`ruvon db downgrade {HEAD}` with the newer Ruvon" in undeclared
    # Compatible only with code newer than this: a revision this code does not know either.
    newer_only = _problem("0007_test", {"0007_test": NEXT})
    assert newer_only == (
        "db 'x' schema is at revision 0007_test, which a newer Ruvon migrated and which runs "
        f"only with code at revision {NEXT} or later; this Ruvon's code is at revision {HEAD}: "
        f"upgrade Ruvon, or downgrade the database (`ruvon db downgrade {HEAD}` with the newer "
        "Ruvon)"
    )


def test_every_migration_declares_a_window_that_only_narrows() -> None:
    """A revision is compatible with code from itself or an ancestor, never with code its
    parent had already locked out (it cannot bring back what the parent dropped)."""
    script = ScriptDirectory.from_config(migrations.alembic_config())
    chain = list(reversed(list(script.walk_revisions())))
    assert [revision.revision for revision in chain] == list(LINEAGE)  # linear history
    seen: list[str] = []
    floor = None
    for revision in chain:
        declared = compatibility.declared_compatibility(revision.module, revision.revision)
        assert declared in [*seen, revision.revision], (revision.revision, declared)
        if floor is not None:
            assert seen.index(floor) <= [*seen, revision.revision].index(declared)
        seen.append(revision.revision)
        floor = declared


def test_a_malformed_declaration_is_a_configuration_error() -> None:
    module = type(sys)("fake_revision")
    module.min_compatible_revision = ["0004"]  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="min_compatible_revision must be a revision id"):
        compatibility.declared_compatibility(module, "0005_x")


def _declarations(url: str) -> dict[str, str]:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute(compatibility.COMPAT_QUERY).fetchall()
        conn.close()
        return dict(rows)

    async def read() -> dict[str, str]:
        conn = await asyncpg.connect(url)
        try:
            return {r[0]: r[1] for r in await conn.fetch(compatibility.COMPAT_QUERY)}
        finally:
            await conn.close()

    return asyncio.run(read())


async def _open(url: str) -> None:
    """Open (and close) this code's provider on ``url``: the check every process makes."""
    if url.startswith("sqlite"):
        provider: PostgresPersistenceProvider | SQLitePersistenceProvider = (
            SQLitePersistenceProvider(url.removeprefix("sqlite:///"))
        )
    else:
        provider = PostgresPersistenceProvider(url, 1, 1)
    try:
        await provider.initialize()
    finally:
        await provider.close()


def test_each_step_records_its_declaration_and_a_downgrade_forgets_it(
    empty_database: str, tmp_path: Path
) -> None:
    url = empty_database
    migrations.upgrade(url)
    assert _declarations(url) == DECLARED
    migrations.downgrade(url, "0002_step_run_kinds")
    assert _declarations(url) == {revision: revision for revision in LINEAGE[:2]}

    upgrade_with(newer_migrations(tmp_path / "newer", compatible_with=HEAD), url)
    assert migrations.current_revision(url) == NEXT
    assert _declarations(url) == {**DECLARED, NEXT: HEAD}


def test_the_migrations_write_their_declarations_with_sql_too(tmp_path: Path) -> None:
    """``alembic upgrade HEAD:head --sql`` (offline) writes the row the online run writes.

    From the head only: 0002-0004 need a live connection (SQLite batch reflection, the lz4 probe).
    """
    newer = newer_migrations(tmp_path / "newer", compatible_with=HEAD)
    buffer = io.StringIO()
    config = Config(output_buffer=buffer)
    config.set_main_option("script_location", str(newer))
    config.set_main_option("sqlalchemy.url", "postgresql://user@localhost/ruvon")
    command.upgrade(config, f"{HEAD}:head", sql=True)
    sql = buffer.getvalue()
    assert "CREATE TABLE IF NOT EXISTS ruvon_schema_compat" in sql
    assert (
        "INSERT INTO ruvon_schema_compat (revision, min_compatible_revision) VALUES "
        f"('{NEXT}', '{HEAD}')"
    ) in sql


async def test_this_code_runs_against_a_newer_revision_declared_compatible(
    empty_database: str, tmp_path: Path
) -> None:
    url = empty_database
    await asyncio.to_thread(
        upgrade_with, newer_migrations(tmp_path / "newer", compatible_with=HEAD), url
    )
    assert await asyncio.to_thread(migrations.current_revision, url) == NEXT

    await _open(url)  # accepted: no SchemaOutOfDate
    assert await asyncio.to_thread(migrations.read_schema, url) == (
        NEXT,
        {**DECLARED, NEXT: HEAD},
    )
    # This code's `ruvon db upgrade` (a rollback's migration Job) has nothing to do, and says so.
    runner = CliRunner()
    upgraded = await asyncio.to_thread(runner.invoke, cli, ["--db", url, "db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"is at {NEXT}, newer than this Ruvon's {HEAD} and compatible with it" in " ".join(
        upgraded.output.split()
    )
    current = await asyncio.to_thread(runner.invoke, cli, ["--db", url, "db", "current"])
    assert current.exit_code == 0, current.output
    assert f"newer than this Ruvon's head {HEAD}, declared compatible with it" in current.output
    assert await asyncio.to_thread(migrations.current_revision, url) == NEXT
    # The health probe of an old pod mid-upgrade says it may keep running.
    _, schema = await check_database(url, 5.0)
    assert schema.ok is True and NEXT in schema.summary and HEAD in schema.summary


@pytest.mark.parametrize("declares", ["itself", "nothing"])
async def test_this_code_refuses_a_newer_revision_that_is_not_compatible(
    empty_database: str, tmp_path: Path, declares: str
) -> None:
    url = empty_database
    compatible_with = NEXT if declares == "itself" else None
    newer = newer_migrations(tmp_path / "newer", compatible_with=compatible_with)
    await asyncio.to_thread(upgrade_with, newer, url)

    with pytest.raises(SchemaOutOfDate) as refused:
        await _open(url)
    message = str(refused.value)
    assert f"schema is at revision {NEXT}" in message and f"revision {HEAD}" in message
    assert "upgrade Ruvon, or downgrade the database" in message
    runner = CliRunner()
    upgraded = await asyncio.to_thread(runner.invoke, cli, ["--db", url, "db", "upgrade"])
    assert upgraded.exit_code == 3, upgraded.output  # PersistenceError
    assert NEXT in upgraded.output and HEAD in upgraded.output
    _, schema = await check_database(url, 5.0)
    assert schema.ok is False and "upgrade Ruvon, or downgrade the database" in schema.summary


# -- ruvon db wait -----------------------------------------------------------------------------


def test_db_wait_returns_at_once_on_a_usable_schema(postgres_url: str) -> None:
    migrations.upgrade(postgres_url)
    started = time.monotonic()
    result = ruvon_cli("--db", postgres_url, "db", "wait", "--timeout", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"is at {HEAD}: this Ruvon can run on it." in " ".join(result.stdout.split())
    assert time.monotonic() - started < 20


def test_db_wait_times_out_naming_both_revisions_and_what_to_do(
    postgres_url: str, tmp_path: Path
) -> None:
    empty = ruvon_cli("--db", postgres_url, "db", "wait", "--timeout", "1", "--interval", "0.2")
    assert empty.returncode == 3, empty.stdout + empty.stderr
    error = " ".join(empty.stderr.split())
    assert "error: gave up after 1 s waiting for PostgreSQL database" in error
    assert f"has no Ruvon schema (this Ruvon's code is at revision {HEAD}): run `ruvon db " in error

    upgrade_with(newer_migrations(tmp_path / "newer", compatible_with=NEXT), postgres_url)
    ahead = ruvon_cli("--db", postgres_url, "db", "wait", "--timeout", "0.5")
    assert ahead.returncode == 3, ahead.stdout + ahead.stderr
    error = " ".join(ahead.stderr.split())
    assert f"schema is at revision {NEXT}" in error and f"code is at revision {HEAD}" in error
    assert "upgrade Ruvon" in error


def test_db_wait_waits_for_the_migrations_to_run(postgres_url: str) -> None:
    """The init container's case: it starts before the migration Job has finished."""
    command = [sys.executable, "-m", "ruvon.cli.main", "--db", postgres_url, "db", "wait"]
    with subprocess.Popen(
        [*command, "--timeout", "90", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin"},
    ) as waiting:
        try:
            assert waiting.stderr is not None
            first = waiting.stderr.readline()  # it looked at the empty database, and waits
            assert "waiting: PostgreSQL database" in first and "has no Ruvon schema" in first
            assert waiting.poll() is None
            migrations.upgrade(postgres_url)
            out, err = waiting.communicate(timeout=30)
        finally:
            if waiting.poll() is None:
                waiting.kill()
    assert waiting.returncode == 0, out + err
    assert f"is at {HEAD}: this Ruvon can run on it." in " ".join(out.split())
