"""The SQLite provider under concurrency: tasks of one provider, providers, processes, cancels.

Each operation is one job on the provider's connection thread; these tests pin what that must
keep: a save and its audit rows land together or not at all, whoever interrupts whom, and the
version fence holds across connections and processes (the busy timeout makes writers wait).
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon.models import WorkflowStatus
from ruvon.records import AuditEntry, WorkflowRecord

INCREMENTS = textwrap.dedent(
    """
    import asyncio, sys
    from ruvon.errors import ConcurrencyConflict
    from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
    from ruvon.records import AuditEntry

    async def main(path: str, rounds: int, tag: str) -> None:
        provider = SQLitePersistenceProvider(path)
        try:
            for _ in range(rounds):
                while True:
                    record = await provider.load_workflow("wf-1")
                    record.state = {"n": record.state["n"] + 1}
                    audit = [AuditEntry("wf-1", tag)]
                    try:
                        await provider.save_workflow(
                            record, expected_version=record.version, audit=audit
                        )
                        break
                    except ConcurrencyConflict:
                        pass
        finally:
            await provider.close()

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
    """
)


def counter(workflow_id: str = "wf-1") -> WorkflowRecord:
    return WorkflowRecord(workflow_id, "Counter", WorkflowStatus.ACTIVE, {"n": 0}, {"steps": []})


async def test_a_cancelled_save_is_all_or_nothing_and_the_provider_goes_on(
    tmp_path: Path,
) -> None:
    provider = SQLitePersistenceProvider(tmp_path / "cancel.db")
    try:
        record, _ = await provider.create_workflow(counter())
        for n in range(1, 6):
            record.state = {"n": n}
            audit = [AuditEntry("wf-1", f"S{n}"), AuditEntry("wf-1", f"S{n}b")]
            save = asyncio.create_task(
                provider.save_workflow(record, expected_version=record.version, audit=audit)
            )
            for _ in range(n - 1):  # cancel at a different point each round
                await asyncio.sleep(0)
            save.cancel()
            try:
                record.version = await save
            except asyncio.CancelledError:
                record = await provider.load_workflow("wf-1")
            stored = await provider.load_workflow("wf-1")
            log = await provider.get_audit_log("wf-1")
            # Each committed save brought both its audit rows; a dropped one brought neither.
            assert len(log) == 2 * (stored.version - 1)
            assert stored.version == record.version
        record.state = {"n": "last"}
        before = record.version
        assert await provider.save_workflow(record, expected_version=before) == before + 1
        assert (await provider.load_workflow("wf-1")).state == {"n": "last"}
    finally:
        await provider.close()


async def test_two_providers_on_one_file_share_the_fence(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    first, second = SQLitePersistenceProvider(path), SQLitePersistenceProvider(path)
    try:
        await first.create_workflow(counter())
        copies = [await first.load_workflow("wf-1"), await second.load_workflow("wf-1")]
        outcomes = await asyncio.gather(
            first.save_workflow(copies[0], expected_version=1),
            second.save_workflow(copies[1], expected_version=1),
            return_exceptions=True,
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["ConcurrencyConflict", "int"]
        assert (await second.load_workflow("wf-1")).version == 2
    finally:
        await first.close()
        await second.close()


@pytest.mark.slow
async def test_processes_incrementing_one_workflow_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "processes.db"
    provider = SQLitePersistenceProvider(path)
    await provider.create_workflow(counter())
    await provider.close()
    processes, rounds = 3, 40
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", INCREMENTS, str(path), str(rounds), f"P{p}",
            stderr=asyncio.subprocess.PIPE,
        )
        for p in range(processes)
    ]  # fmt: skip
    for child in children:
        _, stderr = await asyncio.wait_for(child.communicate(), 45)
        assert child.returncode == 0, stderr.decode()
    reopened = SQLitePersistenceProvider(path)
    try:
        stored = await reopened.load_workflow("wf-1")
        assert stored.state == {"n": processes * rounds}
        assert stored.version == 1 + processes * rounds
        log = await reopened.get_audit_log("wf-1")
        assert sorted({e.event_type for e in log}) == [f"P{p}" for p in range(processes)]
        assert len(log) == processes * rounds
    finally:
        await reopened.close()
