"""The step-run ledger on PostgreSQL: claims, leases, retries, branch results and the join.

Mixed into :class:`~ruvon.implementations.persistence.postgres.PostgresPersistenceProvider`,
whose connection handling it uses. Every operation is one statement: a claim also returns the
workflow row, a retry also writes its audit row, and a branch's commit closes its run, stores
its outcome, counts it on the join (``parallel_joins``) and fires the join when it completes the
set. The queries are in ``sql/runs.sql``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from ruvon.errors import ClaimLost
from ruvon.implementations.persistence.postgres.rows import workflow_from_values
from ruvon.implementations.persistence.postgres.writes import rows_written
from ruvon.implementations.persistence.queries import load_queries
from ruvon.providers.ledger import BranchRecorded, RunSnapshot
from ruvon.providers.runs import (
    BranchOutcome,
    Claim,
    QueuedRun,
    RunKind,
    RunRequest,
    RunStatus,
    StepRunRecord,
    TakeRun,
)
from ruvon.records import AuditEntry, WorkflowRecord
from ruvon.serialization import dumps, loads

__all__ = [
    "PostgresRunLedger",
    "close_claimed_run",
    "queued_run",
    "run_arrays",
    "taken_claim",
]

_Q = load_queries(Path(__file__).with_name("sql") / "runs.sql")
_WORKFLOW_COLUMNS = 25


def taken_claim(take: TakeRun, run_id: int, claimed_at: datetime) -> Claim:
    """The claim on a run a save inserted for the committing worker (attempt 1)."""
    run = take.run
    return Claim(
        run_id,
        run.workflow_id,
        run.kind,
        run.step_name,
        run.branch,
        run.run_number,
        1,
        take.owner,
        run.queue,
        claimed_at,
        run.trace_context,
        run.priority,
    )


def queued_run(row: Sequence[Any]) -> QueuedRun:
    """A run to announce from its ``(id, workflow_id, kind, step_name, branch, queue, delay,
    priority)`` columns."""
    run_id, workflow_id, kind, step_name, branch, queue, delay, priority = row[:8]
    return QueuedRun(
        run_id, workflow_id, RunKind(kind), step_name, branch, queue, delay or 0.0, priority or 0
    )


def trace_context_text(carrier: dict[str, str] | None) -> str | None:
    """A run's trace context as the JSON text its ``trace_context`` parameter takes."""
    return dumps(carrier).decode() if carrier else None


def run_arrays(runs: Sequence[RunRequest]) -> tuple[list[Any], ...]:
    """The nine array parameters an ``unnest`` of runs takes (one element per run)."""
    return (
        [r.workflow_id for r in runs],
        [str(r.kind) for r in runs],
        [r.step_name for r in runs],
        [r.branch for r in runs],
        [r.run_number for r in runs],
        [r.queue for r in runs],
        [float(r.delay) for r in runs],
        [trace_context_text(r.trace_context) for r in runs],
        [r.priority for r in runs],
    )


async def close_claimed_run(
    conn: asyncpg.Connection, claim: Claim, status: RunStatus, error: str | None = None
) -> None:
    """The claim fence in a transaction: ``ClaimLost`` (rolling it back) if it no longer holds."""
    written = await conn.execute(_Q["close_run"], claim.run_id, claim.attempt, str(status), error)
    if not rows_written(written):
        raise ClaimLost(claim.workflow_id, claim.run_id, claim.attempt)


class PostgresRunLedger:
    """:class:`~ruvon.providers.ledger.RunLedger` methods of the PostgreSQL provider."""

    # Provided by PostgresPool (pool.py), the provider's other base.
    _query: Callable[[str, str, str, tuple[Any, ...]], Awaitable[Any]]

    async def claim_run(
        self, run_id: int, owner: str, lease_seconds: float
    ) -> tuple[Claim, WorkflowRecord] | None:
        row = await self._query(
            "claim step run", "fetchrow", _Q["claim_run"], (run_id, owner, float(lease_seconds))
        )
        if row is None:
            return None
        values = list(row)
        record = workflow_from_values(values[:_WORKFLOW_COLUMNS])
        rid, kind, step_name, branch, run_number, attempt, queue, now, trace, priority, reserved = (
            values[_WORKFLOW_COLUMNS:]
        )
        claim = Claim(
            rid,
            record.id,
            RunKind(kind),
            step_name,
            branch,
            run_number,
            attempt,
            owner,
            queue,
            now,
            _carrier(trace),
            priority,
            reserved,
        )
        return claim, record

    async def describe_run(self, run_id: int) -> RunSnapshot | None:
        row = await self._query("describe step run", "fetchrow", _Q["describe_run"], (run_id,))
        if row is None:
            return None
        return RunSnapshot(queued_run((*row[:6], 0.0, row[9])), RunStatus(row[6]), row[7], row[8])

    async def extend_lease(self, claim: Claim, lease_seconds: float) -> bool:
        args = (claim.run_id, claim.attempt, float(lease_seconds))
        status = await self._query("extend lease", "execute", _Q["extend_lease"], args)
        return rows_written(status) == 1

    async def finish_run(self, claim: Claim, status: RunStatus, error: str | None = None) -> bool:
        args = (claim.run_id, claim.attempt, str(status), error)
        written = await self._query("close step run", "execute", _Q["close_run"], args)
        return rows_written(written) == 1

    async def retry_run(
        self, claim: Claim, delay: float, error: str, audit: AuditEntry
    ) -> QueuedRun | None:
        args = (
            claim.run_id,
            claim.attempt,
            float(delay),
            error,
            audit.event_type,
            audit.step_name,
            dumps(audit.details),
        )
        row = await self._query("retry step run", "fetchrow", _Q["retry_run"], args)
        return queued_run(row) if row is not None else None

    async def record_branch(
        self,
        claim: Claim,
        outcome: BranchOutcome,
        *,
        expected: int,
        join_queue: str,
        batch: int = 0,
        waiting: Sequence[str] | None = None,
    ) -> BranchRecorded:
        args = (
            claim.workflow_id,
            claim.step_name,
            claim.run_number,
            outcome.branch,
            outcome.index,
            outcome.succeeded,
            outcome.result,
            outcome.error,
            claim.run_id,
            claim.attempt,
            expected,
            join_queue,
            batch,
            list(waiting) if waiting is not None else None,
        )
        row = await self._query("record branch result", "fetchrow", _Q["record_branch"], args)
        if not row[0]:
            return BranchRecorded(False)  # the claim no longer holds: a late or duplicate run
        values = tuple(row)
        join = queued_run(values[1:9]) if values[1] is not None else None
        released = queued_run(values[9:17]) if values[9] is not None else None
        return BranchRecorded(True, join, released)

    async def branch_results(
        self, workflow_id: str, step_name: str, run_number: int
    ) -> list[BranchOutcome]:
        rows = await self._query(
            "read branch results",
            "fetch",
            _Q["branch_results"],
            (workflow_id, step_name, run_number),
        )
        return [BranchOutcome(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def list_step_runs(self, workflow_id: str) -> list[StepRunRecord]:
        """Step runs of one workflow, oldest first (a PersistenceProvider read)."""
        rows = await self._query("read step runs", "fetch", _Q["list_step_runs"], (workflow_id,))
        return [step_run_record(row) for row in rows]


def _carrier(stored: Any) -> dict[str, str] | None:
    """A stored trace context (a JSON object, or its text) as the carrier a claim holds."""
    if isinstance(stored, str):
        stored = loads(stored)
    if not isinstance(stored, dict):
        return None
    return {str(key): str(value) for key, value in stored.items()}


def step_run_record(row: Sequence[Any]) -> StepRunRecord:
    """A ``list_step_runs`` row (its columns in :class:`StepRunRecord` field order)."""
    values = list(row)
    values[2], values[6] = RunKind(values[2]), RunStatus(values[6])
    return StepRunRecord(*values)
