"""The SQLite save skips rewriting the indexed columns only when the row is known to hold them.

See ruvon/implementations/persistence/sqlite/indexed_columns.py: a save whose expected version
and indexed values are the ones this provider last wrote or read runs one ``UPDATE``, every
other save two. What must hold either way: the indexed columns always end as the save says,
whoever else wrote the row meanwhile, and the status / parent listings (which read them through
their indexes) find the workflow where it now is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ruvon.errors import ConcurrencyConflict
from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon.implementations.persistence.sqlite.indexed_columns import KnownIndexed
from ruvon.models import WorkflowStatus
from ruvon.records import WorkflowRecord

# A fragment only the conditional statement (update_workflow_indexed) contains.
_INDEXED_UPDATE = "status IS NOT"
WAITING = WorkflowStatus.WAITING_HUMAN


def counter(workflow_id: str = "wf-1") -> WorkflowRecord:
    return WorkflowRecord(workflow_id, "Counter", WorkflowStatus.ACTIVE, {"n": 0}, {"steps": []})


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[SQLitePersistenceProvider]:
    provider = SQLitePersistenceProvider(tmp_path / "indexed.db")
    await provider.initialize()
    try:
        yield provider
    finally:
        await provider.close()


def trace(provider: SQLitePersistenceProvider) -> list[str]:
    """The statements the provider's connection runs from now on."""
    statements: list[str] = []
    db = provider._db
    assert db is not None and db._conn is not None
    db._conn.set_trace_callback(statements.append)
    return statements


def indexed_updates(statements: list[str]) -> int:
    return sum(_INDEXED_UPDATE in statement for statement in statements)


async def ids_with(provider: SQLitePersistenceProvider, status: WorkflowStatus) -> list[str]:
    return [record.id for record in await provider.list_workflows(status=status)]


async def test_a_save_that_keeps_them_runs_one_update_and_one_that_changes_them_writes_them(
    provider: SQLitePersistenceProvider,
) -> None:
    record, _ = await provider.create_workflow(counter())
    statements = trace(provider)

    record.state = {"n": 1}
    await provider.save_workflow(record, expected_version=record.version)
    assert indexed_updates(statements) == 0

    record.status, record.parent_execution_id = WAITING, "parent-1"
    await provider.save_workflow(record, expected_version=record.version)
    assert indexed_updates(statements) == 1
    assert await ids_with(provider, WAITING) == ["wf-1"]
    assert await ids_with(provider, WorkflowStatus.ACTIVE) == []
    children = await provider.list_workflows(parent_execution_id="parent-1")
    assert [child.id for child in children] == ["wf-1"]

    record.state = {"n": 2}  # the statuses the save just wrote are remembered too
    await provider.save_workflow(record, expected_version=record.version)
    assert indexed_updates(statements) == 1
    stored = await provider.load_workflow("wf-1")
    assert (stored.status, stored.state, stored.version) == (WAITING, {"n": 2}, 4)


async def test_a_change_by_another_provider_is_never_overwritten_by_what_was_remembered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    first, second = SQLitePersistenceProvider(path), SQLitePersistenceProvider(path)
    try:
        stale, _ = await first.create_workflow(counter())  # first remembers ACTIVE at v1
        theirs = await second.load_workflow("wf-1")
        theirs.status = WorkflowStatus.CANCELLED
        await second.save_workflow(theirs, expected_version=theirs.version)

        # first saves its stale record at the version second left (a caller that reloaded only
        # the version): first remembers ACTIVE at v1, not at v2, so the indexed columns are
        # written as the save says (ACTIVE), not skipped.
        stale.state, stale.version = {"n": 1}, 2
        statements = trace(first)
        await first.save_workflow(stale, expected_version=2)
        assert indexed_updates(statements) == 1
        assert await ids_with(second, WorkflowStatus.ACTIVE) == ["wf-1"]
        assert await ids_with(second, WorkflowStatus.CANCELLED) == []

        # A save the fence refuses writes nothing and leaves nothing remembered for wf-1.
        theirs = await second.load_workflow("wf-1")
        theirs.status = WorkflowStatus.CANCELLED
        await second.save_workflow(theirs, expected_version=3)
        with pytest.raises(ConcurrencyConflict):
            await first.save_workflow(stale, expected_version=3)
        assert (await second.load_workflow("wf-1")).status is WorkflowStatus.CANCELLED
        assert not first._known_indexed.unchanged("wf-1", 3, ("ACTIVE", None, None, None))
    finally:
        await first.close()
        await second.close()


def test_known_values_are_per_version_and_bounded() -> None:
    known = KnownIndexed(limit=2)
    values = ("ACTIVE", None, None, None)
    known.remember("a", 1, values)
    assert known.unchanged("a", 1, values)
    assert not known.unchanged("a", 2, values)  # another version: not known
    assert not known.unchanged("a", 1, ("WAITING_HUMAN", None, None, None))
    known.remember("b", 1, values)
    known.remember("a", 2, values)  # refreshing "a" makes "b" the oldest
    known.remember("c", 1, values)
    assert len(known) == 2
    assert not known.unchanged("b", 1, values)
    assert known.unchanged("a", 2, values) and known.unchanged("c", 1, values)
    known.forget("a")
    assert not known.unchanged("a", 2, values)
