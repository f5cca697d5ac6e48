"""A workflow save with its step-run writes, as ONE statement (the worker's commit); the same
for a create with its first runs (no fence, the ``INSERT`` as the write).

The statement chains data-modifying CTEs, all in the statement's implicit transaction:

* ``held`` — the claim fence: ``SELECT ... FOR UPDATE`` of the claimed run while this attempt
  still holds it (a re-claim that committed first changed ``attempt``: no row);
* ``written`` — the version-fenced workflow ``UPDATE``, only ``WHERE EXISTS (SELECT 1 FROM
  held)``;
* ``audited`` — the audit rows, selected ``FROM written``;
* ``closed`` — the claimed run marked DONE, only if the workflow was written (omitted while the
  worker carries the workflow on through inline steps: the run stays open until it settles);
* ``queued`` — the enqueued runs, inserted ``FROM written`` (an existing run is skipped);
* ``taken`` — the run the committing worker continues with (a :class:`TakeRun`), inserted
  ``FROM written`` already claimed: RUNNING, attempt 1, leased to the worker from ``now()``. So
  finishing one step and claiming the next is this one statement, with no broker message.

So nothing is written unless the claim holds and the version matches, and the run is closed
exactly when its result is. The final ``SELECT`` reports whether the fence held, whether the
workflow was written, and the runs inserted (to announce). Compared with a transaction of
separate statements this saves four round trips (``BEGIN``, the fence, the inserts,
``COMMIT``) on every step a worker commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ruvon.implementations.persistence.postgres.runs import run_arrays, trace_context_text
from ruvon.implementations.persistence.postgres.writes import (
    AUDIT_COLUMNS,
    INLINE_ROWS,
    audit_params,
    audit_select,
)
from ruvon.providers.runs import Claim, RunRequest, TakeRun
from ruvon.records import AuditEntry

__all__ = ["WorkWrite"]

_HELD = """held AS (
    SELECT id FROM step_runs
    WHERE id = ${run} AND attempt = ${attempt} AND status = 'RUNNING'
    FOR UPDATE
)"""
_CLOSED = """closed AS (
    UPDATE step_runs SET
        status = 'DONE', finished_at = now(), lease_expires_at = NULL, updated_at = now()
    WHERE id IN (SELECT id FROM held) AND EXISTS (SELECT 1 FROM written)
)"""
_QUEUED = """queued AS (
    INSERT INTO step_runs (
        workflow_id, kind, step_name, branch, run_number, queue, status, attempt, run_at,
        dispatched_at, created_at, updated_at, trace_context, priority
    )
    SELECT r.workflow_id, r.kind, r.step_name, r.branch, r.run_number, r.queue, 'QUEUED', 0,
           now() + make_interval(secs => r.delay), now(), now(), now(), r.trace_context::jsonb,
           r.priority
    FROM written, unnest(${p}::text[], ${p1}::text[], ${p2}::text[], ${p3}::text[],
                         ${p4}::int[], ${p5}::text[], ${p6}::float8[], ${p7}::text[],
                         ${p8}::smallint[])
         AS r(workflow_id, kind, step_name, branch, run_number, queue, delay, trace_context,
              priority)
    ON CONFLICT (workflow_id, kind, step_name, branch, run_number) DO NOTHING
    RETURNING id, workflow_id, kind, step_name, branch, queue,
              greatest(extract(epoch FROM run_at - now()), 0)::float8 AS delay, priority
)"""
_TAKEN = """taken AS (
    INSERT INTO step_runs (
        workflow_id, kind, step_name, branch, run_number, queue, status, attempt, run_at,
        lease_owner, lease_expires_at, started_at, dispatched_at, created_at, updated_at,
        trace_context, priority
    )
    SELECT ${p}::text, ${p1}::text, ${p2}::text, ${p3}::text, ${p4}::int, ${p5}::text,
           'RUNNING', 1, now(), ${p6}::text, now() + make_interval(secs => ${p7}::float8),
           now(), now(), now(), now(), ${p8}::text::jsonb, ${p9}::smallint
    FROM written
    ON CONFLICT (workflow_id, kind, step_name, branch, run_number) DO NOTHING
    RETURNING id
)"""


class WorkWrite:
    """Statements for one workflow write (taking ``params`` parameters) with step-run writes."""

    __slots__ = ("_cache", "_params", "_write")

    def __init__(self, write: str, params: int) -> None:
        self._write = write
        self._params = params
        self._cache: dict[tuple[bool, bool, int, bool, bool], str] = {}

    def statement(
        self,
        audit: Sequence[AuditEntry],
        fence: Claim | None,
        runs: Sequence[RunRequest],
        *,
        close: bool = True,
        take: TakeRun | None = None,
    ) -> tuple[str, tuple[Any, ...]]:
        """The SQL and the parameters that follow the write's own."""
        rows = len(audit) if len(audit) <= INLINE_ROWS else -1  # -1: one jsonb array
        key = (fence is not None, close and fence is not None, rows, bool(runs), take is not None)
        sql = self._cache.get(key)
        if sql is None:
            sql = self._cache[key] = self._build(*key)
        params: list[Any] = list(audit_params(audit))
        if fence is not None:
            params += (fence.run_id, fence.attempt)
        if runs:
            params += run_arrays(runs)
        if take is not None:
            run = take.run
            params += (
                run.workflow_id,
                str(run.kind),
                run.step_name,
                run.branch,
                run.run_number,
                run.queue,
                take.owner,
                float(take.lease_seconds),
                trace_context_text(run.trace_context),
                run.priority,
            )
        return sql, tuple(params)

    def _build(self, fenced: bool, close: bool, rows: int, enqueue: bool, take: bool) -> str:
        next_param = self._params + 1
        ctes: list[str] = []
        audit_sql = ""
        if rows:
            audit_sql, next_param = audit_select(next_param, rows)
        write = self._write
        if fenced:
            ctes.append(
                _HELD.replace("{run}", str(next_param)).replace("{attempt}", str(next_param + 1))
            )
            next_param += 2
            write += "\n  AND EXISTS (SELECT 1 FROM held)"
        ctes.append(f"written AS (\n{write}\nRETURNING id\n)")
        if rows:
            ctes.append(
                f"audited AS (\nINSERT INTO workflow_audit_log ({AUDIT_COLUMNS})\n{audit_sql}\n)"
            )
        if close:
            ctes.append(_CLOSED)
        if enqueue:
            ctes.append(_numbered(_QUEUED, next_param, 9))
            next_param += 9
        if take:
            ctes.append(_numbered(_TAKEN, next_param, 10))
        held = "(SELECT count(*) FROM held)" if fenced else "1"
        # Columns: fence held, rows written, the taken run's id and the database clock (with a
        # take), then one row per queued run.
        head = f"SELECT {held}, (SELECT count(*) FROM written)"
        if take:
            head += ", (SELECT id FROM taken), now()"
        if enqueue:
            tail = (
                f"{head}, q.id, q.workflow_id, q.kind, q.step_name, q.branch, q.queue, q.delay, "
                "q.priority\n"
                "FROM (SELECT 1) AS one LEFT JOIN queued AS q ON true"
            )
        else:
            tail = head
        return "WITH " + ",\n".join(ctes) + "\n" + tail


def _numbered(template: str, first: int, count: int) -> str:
    """``template`` with its ``${p}``, ``${p1}``... placeholders numbered from ``first``."""
    sql = template.replace("{p}", str(first))
    for offset in range(1, count):
        sql = sql.replace(f"{{p{offset}}}", str(first + offset))
    return sql
