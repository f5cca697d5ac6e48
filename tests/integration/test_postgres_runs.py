"""The step-run ledger on the real PostgreSQL: claims, leases, the claim fence, retries, joins.

These are the database halves of DESIGN.md's correctness model, checked without workers: a
duplicate claim gets nothing; a re-claim after the lease expired is attempt 2; the first
attempt's late commit is refused and writes nothing; a commit closes its run exactly when the
workflow is written; of many branches committing at once, exactly one fires the join.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from ruvon.errors import ClaimLost, ConcurrencyConflict
from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider
from ruvon.implementations.persistence.postgres import runs as runs_module
from ruvon.implementations.persistence.queries import load_queries
from ruvon.models import WorkflowStatus
from ruvon.providers.runs import (
    BranchOutcome,
    Lane,
    RunKind,
    RunRequest,
    RunStatus,
    WorkWrites,
)
from ruvon.records import AuditEntry, WorkflowRecord
from ruvon.testing.postgres import create_database, drop_database

LEASE = 30.0
_RUNS = load_queries(Path(runs_module.__file__).with_name("sql") / "runs.sql")
_COMMIT_MODE = "SELECT current_setting('synchronous_commit')"


@pytest.fixture
async def database() -> AsyncIterator[str]:
    url = await create_database()
    yield url
    await drop_database(url)


@pytest.fixture
async def ledger(database: str) -> AsyncIterator[PostgresPersistenceProvider]:
    provider = PostgresPersistenceProvider(database, 1, 4)
    await provider.initialize()
    yield provider
    await provider.close()


async def _workflow(
    ledger: PostgresPersistenceProvider,
    status: WorkflowStatus = WorkflowStatus.PENDING_ASYNC,
    runs: list[RunRequest] | None = None,
    workflow_id: str = "wf-1",
) -> tuple[WorkflowRecord, list[int]]:
    record = WorkflowRecord(
        id=workflow_id,
        workflow_type="T",
        status=status,
        state={"n": 0},
        definition_snapshot={"steps": [{"name": "S"}, {"name": "T"}]},
    )
    work = WorkWrites(enqueue=runs or [RunRequest(workflow_id, RunKind.STEP, "S")])
    stored, created = await ledger.create_workflow(record, work=work)
    assert created
    return stored, [run.run_id for run in work.queued]


async def _sql(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        rows: list[asyncpg.Record] = await connection.fetch(query, *args)
        return rows
    finally:
        await connection.close()


async def test_a_claim_is_taken_once_and_returns_the_workflow(
    ledger: PostgresPersistenceProvider,
) -> None:
    record, (run_id,) = await _workflow(ledger)
    first, second = await asyncio.gather(
        ledger.claim_run(run_id, "w:1", LEASE), ledger.claim_run(run_id, "w:2", LEASE)
    )
    claims = [c for c in (first, second) if c is not None]
    assert len(claims) == 1  # the duplicate message gets nothing
    claim, stored = claims[0]
    assert (claim.attempt, claim.kind, claim.step_name, claim.workflow_id) == (
        1, RunKind.STEP, "S", record.id,
    )  # fmt: skip
    assert stored.id == record.id and stored.version == 1 and stored.state == {"n": 0}
    snapshot = await ledger.describe_run(run_id)
    assert snapshot is not None and snapshot.status is RunStatus.RUNNING


async def test_a_zombie_commit_after_a_reclaim_is_refused_and_writes_nothing(
    ledger: PostgresPersistenceProvider, database: str
) -> None:
    record, (run_id,) = await _workflow(ledger)
    claimed = await ledger.claim_run(run_id, "zombie:1", LEASE)
    assert claimed is not None
    zombie, zombie_copy = claimed
    assert await ledger.claim_run(run_id, "other:1", LEASE) is None  # the lease is live
    await _sql(database, "UPDATE step_runs SET lease_expires_at = now() - interval '1 second'")
    reclaimed = await ledger.claim_run(run_id, "other:1", LEASE)
    assert reclaimed is not None and reclaimed[0].attempt == 2

    zombie_copy.state = {"n": 666}
    zombie_copy.status = WorkflowStatus.ACTIVE
    late = WorkWrites(fence=zombie, enqueue=[RunRequest(record.id, RunKind.STEP, "T")])
    with pytest.raises(ClaimLost, match="no longer held by attempt 1"):
        await ledger.save_workflow(
            zombie_copy, expected_version=1, audit=[AuditEntry(record.id, "LATE")], work=late
        )
    assert (await ledger.load_workflow(record.id)).state == {"n": 0}
    assert await ledger.get_audit_log(record.id) == []
    rows = await _sql(database, "SELECT kind, step_name, status, attempt FROM step_runs")
    assert [tuple(r) for r in rows] == [("step", "S", "RUNNING", 2)]  # nothing enqueued

    claim, copy = reclaimed
    copy.state, copy.status = {"n": 1}, WorkflowStatus.PENDING_ASYNC
    work = WorkWrites(fence=claim, enqueue=[RunRequest(record.id, RunKind.STEP, "T")])
    assert await ledger.save_workflow(copy, expected_version=1, work=work) == 2
    assert [(q.kind, q.step_name) for q in work.queued] == [(RunKind.STEP, "T")]
    rows = await _sql(database, "SELECT step_name, status, attempt FROM step_runs ORDER BY id")
    assert [tuple(r) for r in rows] == [("S", "DONE", 2), ("T", "QUEUED", 0)]
    assert not await ledger.extend_lease(claim, LEASE)  # closed with the commit


async def test_a_create_whose_key_is_taken_enqueues_and_announces_nothing(
    ledger: PostgresPersistenceProvider, database: str
) -> None:
    def keyed(workflow_id: str) -> WorkflowRecord:
        return WorkflowRecord(
            id=workflow_id, workflow_type="T", status=WorkflowStatus.PENDING_ASYNC,
            state={"n": 0}, definition_snapshot={"steps": [{"name": "S"}]},
            idempotency_key="order-7",
        )  # fmt: skip

    first = WorkWrites(enqueue=[RunRequest("wf-1", RunKind.STEP, "S")])
    stored, created = await ledger.create_workflow(
        keyed("wf-1"), [AuditEntry("wf-1", "A")], work=first
    )
    assert created and stored.version == 1 and len(first.queued) == 1
    again = WorkWrites(enqueue=[RunRequest("wf-2", RunKind.STEP, "S")])
    existing, created = await ledger.create_workflow(
        keyed("wf-2"), [AuditEntry("wf-2", "A")], work=again
    )
    assert not created and existing.id == "wf-1" and again.queued == []
    rows = await _sql(database, "SELECT workflow_id, status FROM step_runs")
    assert [tuple(r) for r in rows] == [("wf-1", "QUEUED")]
    assert [e.event_type for e in await ledger.get_audit_log("wf-1")] == ["A"]
    assert await _sql(database, "SELECT 1 FROM workflow_audit_log WHERE workflow_id = 'wf-2'") == []


async def test_a_create_carrying_a_claim_is_refused_and_writes_nothing(
    ledger: PostgresPersistenceProvider, database: str
) -> None:
    _, (run_id,) = await _workflow(ledger)
    claimed = await ledger.claim_run(run_id, "w:1", LEASE)
    assert claimed is not None
    record = WorkflowRecord(id="wf-new", workflow_type="T", status=WorkflowStatus.ACTIVE,
                            state={}, definition_snapshot={"steps": []})  # fmt: skip
    with pytest.raises(ValueError, match="wf-new"):
        await ledger.create_workflow(record, work=WorkWrites(fence=claimed[0]))
    assert await _sql(database, "SELECT 1 FROM workflow_executions WHERE id = 'wf-new'") == []


async def test_a_claim_commits_without_waiting_for_the_wal_flush_and_only_itself(
    ledger: PostgresPersistenceProvider, database: str
) -> None:
    _, (run_id,) = await _workflow(ledger)
    connection = await asyncpg.connect(database)
    try:
        async with connection.transaction():
            assert await connection.fetchrow(_RUNS["claim_run"], run_id, "w:1", LEASE)
            assert await connection.fetchval(_COMMIT_MODE) == "off"  # this transaction
        assert await connection.fetchval(_COMMIT_MODE) == "on"  # the session keeps its own
        async with connection.transaction():  # a claim that takes nothing leaves it alone
            assert await connection.fetchrow(_RUNS["claim_run"], run_id, "w:2", LEASE) is None
            assert await connection.fetchval(_COMMIT_MODE) == "on"
    finally:
        await connection.close()


async def test_a_claim_lost_in_a_server_crash_lets_only_one_holder_commit(
    ledger: PostgresPersistenceProvider, database: str
) -> None:
    """A crash may lose a claim's unflushed commit: the run is due again at its old attempt,
    the next claim hands the same attempt number out a second time. Of the two holders the
    first to commit wins; the other is refused and writes nothing."""
    record, (run_id,) = await _workflow(ledger)
    claimed = await ledger.claim_run(run_id, "before-crash:1", LEASE)
    assert claimed is not None
    await _sql(  # what the server holds after losing that commit
        database,
        "UPDATE step_runs SET status = 'QUEUED', attempt = 0, lease_owner = NULL, "
        "lease_expires_at = NULL",
    )
    again = await ledger.claim_run(run_id, "after-crash:1", LEASE)
    assert again is not None and again[0].attempt == claimed[0].attempt == 1

    for (claim, copy), n in ((claimed, 1), (again, 2)):
        copy.state, copy.status = {"n": n}, WorkflowStatus.PENDING_ASYNC
        work = WorkWrites(fence=claim, enqueue=[RunRequest(record.id, RunKind.STEP, "T")])
        if n == 1:
            assert await ledger.save_workflow(copy, expected_version=1, work=work) == 2
        else:
            with pytest.raises(ConcurrencyConflict):
                await ledger.save_workflow(copy, expected_version=1, work=work)
    assert (await ledger.load_workflow(record.id)).state == {"n": 1}
    rows = await _sql(database, "SELECT step_name, status, attempt FROM step_runs ORDER BY id")
    assert [tuple(r) for r in rows] == [("S", "DONE", 1), ("T", "QUEUED", 0)]


async def test_a_version_conflict_leaves_the_claimed_run_open(
    ledger: PostgresPersistenceProvider, database: str
) -> None:
    record, (run_id,) = await _workflow(ledger)
    claimed = await ledger.claim_run(run_id, "w:1", LEASE)
    assert claimed is not None
    claim, copy = claimed
    other = await ledger.load_workflow(record.id)
    other.status = WorkflowStatus.CANCELLED
    await ledger.save_workflow(other, expected_version=1)  # e.g. a client's cancel
    copy.state = {"n": 1}
    with pytest.raises(ConcurrencyConflict) as conflict:
        await ledger.save_workflow(copy, expected_version=1, work=WorkWrites(fence=claim))
    assert not isinstance(conflict.value, ClaimLost)
    rows = await _sql(database, "SELECT status FROM step_runs")
    assert [r[0] for r in rows] == ["RUNNING"]  # the runner closes it SKIPPED
    assert await ledger.finish_run(claim, RunStatus.SKIPPED)


async def test_enqueueing_the_same_run_twice_stores_and_announces_it_once(
    ledger: PostgresPersistenceProvider,
) -> None:
    record, _ = await _workflow(ledger, WorkflowStatus.ACTIVE)  # enqueues S
    again = [RunRequest(record.id, RunKind.STEP, "T"), RunRequest(record.id, RunKind.STEP, "T")]
    work = WorkWrites(enqueue=again)
    await ledger.save_workflow(record, expected_version=1, work=work)
    assert len(work.queued) == 1
    work = WorkWrites(enqueue=again[:1])
    await ledger.save_workflow(record, expected_version=2, work=work)
    assert work.queued == []


async def test_a_retry_waits_in_the_database(ledger: PostgresPersistenceProvider) -> None:
    record, (run_id,) = await _workflow(ledger)
    claimed = await ledger.claim_run(run_id, "w:1", LEASE)
    assert claimed is not None
    audit = AuditEntry(record.id, "STEP_RETRY", step_name="S", details={"attempt": 1})
    queued = await ledger.retry_run(claimed[0], 30.0, "ConnectionError: down", audit)
    assert queued is not None and queued.delay == 30.0
    assert await ledger.claim_run(run_id, "w:2", LEASE) is None  # not due yet
    snapshot = await ledger.describe_run(run_id)
    assert snapshot is not None and snapshot.status is RunStatus.QUEUED
    assert 29.0 < snapshot.due_in <= 30.0
    assert [e.event_type for e in await ledger.get_audit_log(record.id)] == ["STEP_RETRY"]
    assert await ledger.retry_run(claimed[0], 1.0, "again", audit) is None  # claim is spent


async def test_of_many_branches_committing_at_once_exactly_one_fires_the_join(
    database: str,
) -> None:
    branches = 24
    providers = [PostgresPersistenceProvider(database, 1, 1) for _ in range(branches)]
    await asyncio.gather(*(p.initialize() for p in providers))
    try:
        runs = [RunRequest("wf-1", RunKind.BRANCH, "S", branch=f"S[{i}]") for i in range(branches)]
        record, run_ids = await _workflow(providers[0], WorkflowStatus.PENDING_PARALLEL, runs)
        claims = await asyncio.gather(
            *(
                p.claim_run(r, f"w:{i}", LEASE)
                for i, (p, r) in enumerate(zip(providers, run_ids, strict=True))
            )
        )
        recorded = await asyncio.gather(
            *(
                p.record_branch(
                    claim[0],
                    BranchOutcome(claim[0].branch, i, True, {"i": i}),
                    expected=branches,
                    join_queue="default",
                )
                for i, (p, claim) in enumerate(zip(providers, claims, strict=True))
                if claim is not None
            )
        )
        assert all(r.recorded for r in recorded)
        joins = [r.join for r in recorded if r.join is not None]
        assert len(joins) == 1 and joins[0].kind is RunKind.JOIN
        outcomes = await providers[0].branch_results(record.id, "S", 1)
        assert [o.index for o in outcomes] == list(range(branches))
        late = await providers[0].record_branch(
            claims[0][0],  # type: ignore[index]
            BranchOutcome("S[0]", 0, True, {}),
            expected=branches,
            join_queue="default",
        )
        assert late.recorded is False  # its run is closed: a duplicate changes nothing
    finally:
        await asyncio.gather(*(p.close() for p in providers))


async def test_scan_zombies_lists_expired_leases_and_fix_requeues_them(
    ledger: PostgresPersistenceProvider, database: str
) -> None:
    import subprocess
    import sys
    import uuid

    from ruvon.testing.cluster import delete_broker_keys
    from ruvon.testing.redis import redis_url_for_tests

    record, (run_id,) = await _workflow(ledger)
    assert await ledger.claim_run(run_id, "dead-worker:1", LEASE) is not None
    await _sql(database, "UPDATE step_runs SET lease_expires_at = now() - interval '5 seconds'")
    prefix = f"ruvon-test-zombies-{uuid.uuid4().hex[:8]}:"
    env = {
        "PATH": "/usr/bin:/bin",
        "RUVON_DATABASE_URL": database,
        "RUVON_BROKER_URL": redis_url_for_tests(),
        "RUVON_BROKER_KEY_PREFIX": prefix,
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }

    def scan(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "ruvon.cli.main", "scan-zombies", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    try:
        listed = await asyncio.to_thread(scan, "--threshold", "1")
        assert listed.returncode == 0, listed.stderr
        assert (
            "dead-worker:1" in listed.stdout
            and "1 step run(s) with an expired lease" in listed.stdout
        )
        assert "0 step run(s)" in (await asyncio.to_thread(scan, "--threshold", "600")).stdout
        fixed = await asyncio.to_thread(scan, "--fix")
        assert fixed.returncode == 0, fixed.stderr
        assert "re-queued 1, failed 0" in fixed.stdout
    finally:
        delete_broker_keys(prefix)
    rows = await _sql(database, "SELECT status, attempt FROM step_runs")
    assert [tuple(r) for r in rows] == [("QUEUED", 1)]  # the next claim is attempt 2
    audit = [e.event_type for e in await ledger.get_audit_log(record.id)]
    assert audit == ["WORKER_CRASH_DETECTED"]


async def test_only_runs_missing_from_the_broker_twice_in_a_row_are_sent_again(
    ledger: PostgresPersistenceProvider, database: str
) -> None:
    """The lost-message statements: five runs sent in order on queue q (plus one on r), all
    overdue. The broker holds the newest three of q's messages and none of r's: q's two oldest
    and r's one are missing; a first sweep suspects them, the second (two at once) re-sends
    each once."""
    ids: list[int] = []
    for n in range(5):
        run = RunRequest(f"wf-{n}", RunKind.STEP, "S", queue="q")
        _, queued = await _workflow(ledger, runs=[run], workflow_id=f"wf-{n}")
        ids += queued
        await _sql(
            database,
            "UPDATE step_runs SET dispatched_at = now() - make_interval(secs => 60 - $2),"
            " run_at = now() - interval '60 seconds' WHERE id = $1",
            queued[0],
            float(n),
        )
    _, (other,) = await _workflow(
        ledger, runs=[RunRequest("wf-r", RunKind.STEP, "S", queue="r")], workflow_id="wf-r"
    )
    await _sql(
        database,
        "UPDATE step_runs SET dispatched_at = now() - interval '30 seconds', run_at = "
        "now() - interval '30 seconds' WHERE id = $1",
        other,
    )

    unclaimed = await ledger.unclaimed_queues(10.0)
    assert unclaimed.lanes == (Lane("q", 0), Lane("r", 0)) and unclaimed.as_of is not None
    assert unclaimed.queues == ("q", "r")
    waiting = {Lane("q", 0): 3, Lane("r", 0): 0}
    first = await ledger.redispatch_lost(10.0, 100, waiting, unclaimed.as_of)
    assert first.resent == []
    assert sorted(first.suspected) == sorted([ids[0], ids[1], other])
    # A queue whose every message waits: nothing missing, however old the runs.
    every = {Lane("q", 0): 5}
    assert (await ledger.redispatch_lost(10.0, 100, every, unclaimed.as_of, ids)).resent == []

    second = await asyncio.gather(
        *(
            ledger.redispatch_lost(10.0, 100, waiting, unclaimed.as_of, first.suspected)
            for _ in range(2)
        )
    )
    resent = [run.run_id for lost in second for run in lost.resent]
    assert sorted(resent) == sorted([ids[0], ids[1], other])  # each once, by one of the two
    assert {run.queue for lost in second for run in lost.resent} == {"q", "r"}
    # Sent again just now: no longer overdue.
    assert (await ledger.unclaimed_queues(10.0)).queues == ("q",)


async def test_runs_carry_their_priority_and_each_lane_is_counted_on_its_own(
    ledger: PostgresPersistenceProvider, database: str
) -> None:
    """A queue is first in, first out per priority lane only: the broker's count of one lane
    says nothing about another, so the lost-message sweep ranks each lane's runs by itself,
    and re-sends the most urgent first."""
    ids: dict[str, int] = {}
    for name, priority in (("old-9", 9), ("old-0", 0), ("new-9", 9)):
        run = RunRequest(name, RunKind.STEP, "S", queue="q", priority=priority)
        _, (ids[name],) = await _workflow(ledger, runs=[run], workflow_id=name)
        await _sql(
            database,
            "UPDATE step_runs SET dispatched_at = now() - interval '60 seconds' + "
            "make_interval(secs => $2), run_at = now() - interval '60 seconds' WHERE id = $1",
            ids[name],
            float(len(ids)),
        )
    claim, _ = await ledger.claim_run(ids["old-9"], "w@h", LEASE) or (None, None)
    assert claim is not None and claim.priority == 9 and claim.queued().priority == 9
    assert await ledger.retry_run(claim, 0.0, "boom", AuditEntry("old-9", "STEP_RETRY")) == (
        claim.queued()
    )
    await _sql(
        database,
        "UPDATE step_runs SET dispatched_at = now() - interval '59 seconds',"
        " run_at = now() - interval '59 seconds' WHERE id = $1",
        ids["old-9"],
    )

    unclaimed = await ledger.unclaimed_queues(10.0)
    assert unclaimed.lanes == (Lane("q", 0), Lane("q", 9)) and unclaimed.as_of is not None
    # One message waits in the urgent lane (new-9's, the newest send there), none in the other.
    waiting = {Lane("q", 0): 0, Lane("q", 9): 1}
    first = await ledger.redispatch_lost(10.0, 100, waiting, unclaimed.as_of)
    assert sorted(first.suspected) == sorted([ids["old-9"], ids["old-0"]])
    second = await ledger.redispatch_lost(10.0, 1, waiting, unclaimed.as_of, first.suspected)
    assert [(run.run_id, run.priority) for run in second.resent] == [(ids["old-9"], 9)]
