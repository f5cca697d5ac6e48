-- Named queries of the step-run ledger (ruvon.implementations.persistence.postgres.runs).
-- Every time is the server's now(): a worker's clock never decides a lease or a due time.
-- A run is announced by its (id, workflow_id, kind, step_name, branch, queue, delay, priority)
-- tuple;
-- trace_context (JSON text in, NULL without tracing) is only stored and handed to its claim.

-- name: claim_run
-- Claim a due QUEUED run, or a RUNNING one whose lease expired (its worker died or hung):
-- attempt + 1, lease from now(). The workflow row comes back in the same statement (its
-- columns first, in WorkflowRecord field order), saving a round trip per step; and the
-- database's clock, which the worker aligns its own with.
-- The claim commits without waiting for its WAL flush (synchronous_commit off for this
-- transaction only): a claim is a lease, not a result. Every later durable commit flushes the
-- WAL past it, the run's own commit first of all. A server crash that loses it leaves the run
-- as it was (due, or its lease expiring: recovered like a lost message); the attempt number
-- it may then hand out twice is harmless, because every commit of a result closes the run in
-- the same statement and the fence wants it still RUNNING: of two holders of one attempt the
-- first commit wins, the second is refused and writes nothing
-- (tests/integration/test_postgres_runs.py). A hop-forced step's commits are half claims.
WITH claimed AS (
    UPDATE step_runs SET
        status = 'RUNNING', attempt = attempt + 1, lease_owner = $2,
        lease_expires_at = now() + make_interval(secs => $3), started_at = now(),
        updated_at = now()
    WHERE id = $1
      AND ((status = 'QUEUED' AND (run_at IS NULL OR run_at <= now()))
           OR (status = 'RUNNING' AND lease_expires_at < now()))
    RETURNING id, workflow_id, kind, step_name, branch, run_number, attempt, queue, trace_context,
              priority, reserved_step
)
SELECT w.id, w.workflow_type, w.status, w.state, w.definition_snapshot, w.current_step,
       w.workflow_version, w.version, w.parent_execution_id, w.blocked_on_child_id,
       w.idempotency_key, w.saga_mode, w.completed_steps, w.run_at, w.error, w.runtime,
       w.metadata, w.data_region, w.priority, w.owner_id, w.org_id, w.created_at, w.updated_at,
       w.completed_at, w.deadline_at,
       c.id, c.kind, c.step_name, c.branch, c.run_number, c.attempt, c.queue, now(),
       c.trace_context, c.priority, c.reserved_step
FROM claimed c JOIN workflow_executions w ON w.id = c.workflow_id
CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) AS fast_commit;

-- name: describe_run
SELECT id, workflow_id, kind, step_name, branch, queue, status, attempt,
       coalesce(extract(epoch FROM run_at - now()), 0)::float8, priority
FROM step_runs WHERE id = $1;

-- name: extend_lease
UPDATE step_runs SET lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
WHERE id = $1 AND attempt = $2 AND status = 'RUNNING';

-- name: close_run
-- The claim fence: matches only while this attempt still holds the run.
UPDATE step_runs SET
    status = $3, error = $4, finished_at = now(), lease_expires_at = NULL, updated_at = now()
WHERE id = $1 AND attempt = $2 AND status = 'RUNNING';

-- name: retry_run
-- Give a claimed run back, due after its backoff, and audit the failed attempt: one statement.
WITH queued AS (
    UPDATE step_runs SET
        status = 'QUEUED', run_at = now() + make_interval(secs => $3), error = $4,
        reserved_step = NULL, lease_owner = NULL, lease_expires_at = NULL, dispatched_at = now(), updated_at = now()
    WHERE id = $1 AND attempt = $2 AND status = 'RUNNING'
    RETURNING id, workflow_id, kind, step_name, branch, queue, priority
), audited AS (
    INSERT INTO workflow_audit_log (
        workflow_id, event_type, step_name, old_status, new_status, details, recorded_at
    )
    SELECT workflow_id, $5, $6, NULL, NULL, $7::jsonb, now() FROM queued
)
SELECT id, workflow_id, kind, step_name, branch, queue, $3::float8, priority FROM queued;

-- name: record_branch
-- One statement: close the claimed run (the claim fence), store the branch outcome, count it
-- on its join (an upsert: PostgreSQL serializes the increments on the parallel_joins row and
-- each sees the latest count), and insert the join run if this outcome completes the set of
-- $11 branches. Exactly one branch's commit sees recorded = expected. Returns whether the
-- claim held, and the join run if this commit fired it. A branch of a workflow that stopped
-- waiting (cancelled) still records; its join run then finds nothing to join (SKIPPED).
-- With a batch size ($13 > 0) only the first $13 branches were enqueued by the fan-out: the
-- r-th outcome recorded releases branch $13 + r - 1 (0-based), so $13 run at a time, each
-- released exactly once (each commit sees its own count). Its name is $14[r] for static tasks
-- (the names of the branches after the first batch), else `<step>[<index>]`.
WITH closed AS (
    UPDATE step_runs SET
        status = 'DONE', error = $8::text, finished_at = now(), lease_expires_at = NULL,
        updated_at = now()
    WHERE id = $9 AND attempt = $10 AND status = 'RUNNING'
    RETURNING id, trace_context, priority
), stored AS (
    INSERT INTO parallel_branch_results (
        workflow_id, step_name, run_number, branch, branch_index, succeeded, result, error,
        recorded_at
    )
    SELECT $1::text, $2::text, $3::int, $4::text, $5::int, $6::bool, $7::jsonb, $8::text, now()
    FROM closed
    ON CONFLICT (workflow_id, step_name, run_number, branch) DO NOTHING
    RETURNING 1
), counted AS (
    INSERT INTO parallel_joins (workflow_id, step_name, run_number, expected, recorded, updated_at)
    SELECT $1::text, $2::text, $3::int, $11::int, 1, now() FROM stored
    ON CONFLICT (workflow_id, step_name, run_number)
    DO UPDATE SET recorded = parallel_joins.recorded + 1, updated_at = now()
    RETURNING recorded, expected
), fired AS (
    INSERT INTO step_runs (
        workflow_id, kind, step_name, branch, run_number, queue, status, attempt, run_at,
        dispatched_at, created_at, updated_at, trace_context, priority
    )
    SELECT $1::text, 'join', $2::text, '', $3::int, $12::text, 'QUEUED', 0, now(), now(), now(),
           now(), (SELECT trace_context FROM closed), (SELECT priority FROM closed)
    FROM counted WHERE recorded >= expected
    ON CONFLICT (workflow_id, kind, step_name, branch, run_number) DO NOTHING
    RETURNING id, workflow_id, kind, step_name, branch, queue, 0::float8 AS delay, priority
), released AS (
    INSERT INTO step_runs (
        workflow_id, kind, step_name, branch, run_number, queue, status, attempt, run_at,
        dispatched_at, created_at, updated_at, trace_context, priority
    )
    SELECT $1::text, 'branch', $2::text,
           coalesce(($14::text[])[recorded], $2::text || '[' || ($13::int + recorded - 1) || ']'),
           $3::int, $12::text, 'QUEUED', 0, now(), now(), now(), now(),
           (SELECT trace_context FROM closed), (SELECT priority FROM closed)
    FROM counted WHERE $13::int > 0 AND $13::int + recorded - 1 < expected
    ON CONFLICT (workflow_id, kind, step_name, branch, run_number) DO NOTHING
    RETURNING id, workflow_id, kind, step_name, branch, queue, 0::float8 AS delay, priority
)
SELECT (SELECT count(*) FROM closed), f.id, f.workflow_id, f.kind, f.step_name, f.branch,
       f.queue, f.delay, f.priority, r.id, r.workflow_id, r.kind, r.step_name, r.branch,
       r.queue, r.delay, r.priority
FROM (SELECT 1) AS one LEFT JOIN fired AS f ON true LEFT JOIN released AS r ON true;

-- name: branch_results
SELECT branch, branch_index, succeeded, result, error FROM parallel_branch_results
WHERE workflow_id = $1 AND step_name = $2 AND run_number = $3
ORDER BY branch_index;

-- name: list_step_runs
-- Every run of one workflow, oldest first (`ruvon steps`); the unique key's index leads with
-- workflow_id.
SELECT id, workflow_id, kind, step_name, branch, run_number, status, attempt, queue,
       lease_owner, created_at, run_at, started_at, finished_at, error
FROM step_runs WHERE workflow_id = $1
ORDER BY id;

-- name: defer_run
-- Give a claimed run back unspent (attempt as before its claim): due in $3 seconds, or with $3
-- NULL parked (run_at far in the future, which no sweep or claim takes) until a freed slot
-- wakes it. $4 marks the step whose rate-limit reservation it made.
UPDATE step_runs SET
    status = 'QUEUED', attempt = attempt - 1,
    run_at = CASE WHEN $3::float8 IS NULL THEN timestamptz '9999-01-01 00:00:00+00'
                  ELSE now() + make_interval(secs => $3::float8) END,
    reserved_step = coalesce($4, reserved_step),
    lease_owner = NULL, lease_expires_at = NULL, dispatched_at = now(), updated_at = now()
WHERE id = $1 AND attempt = $2 AND status = 'RUNNING'
RETURNING id, workflow_id, kind, step_name, branch, queue,
          coalesce($3::float8, 0)::float8, priority;

-- name: insert_deferred_advance
-- The advance run that carries a workflow on from a deferred inline step ($3), at the version
-- it is stored at ($4 = 'v<version>'); due or parked as in defer_run.
INSERT INTO step_runs (
    workflow_id, kind, step_name, branch, run_number, queue, status, attempt, run_at,
    dispatched_at, created_at, updated_at, priority, reserved_step
) VALUES (
    $1, 'advance', $3, $4, 1, $2, 'QUEUED', 0,
    CASE WHEN $5::float8 IS NULL THEN timestamptz '9999-01-01 00:00:00+00'
         ELSE now() + make_interval(secs => $5::float8) END,
    now(), now(), now(), $6, $7
)
ON CONFLICT (workflow_id, kind, step_name, branch, run_number) DO NOTHING
RETURNING id, workflow_id, kind, step_name, branch, queue,
          coalesce($5::float8, 0)::float8, priority;

-- name: wake_parked
-- Make the parked runs of waiters due now: a waiter (workflow, step or NULL for the
-- workflow's own slot, branch) wakes its workflow's parked runs of that step (and branch).
UPDATE step_runs r SET run_at = now(), dispatched_at = now(), updated_at = now()
FROM unnest($1::text[], $2::text[], $3::text[]) AS w(workflow_id, step_name, branch)
WHERE r.status = 'QUEUED' AND r.run_at = timestamptz '9999-01-01 00:00:00+00'
  AND r.workflow_id = w.workflow_id
  AND (w.step_name IS NULL OR r.step_name = w.step_name)
  AND (r.kind <> 'branch' OR w.branch IS NULL OR r.branch = w.branch)
RETURNING r.id, r.workflow_id, r.kind, r.step_name, r.branch, r.queue, 0::float8, r.priority;

-- name: wake_parked_of_ended
-- Parked runs whose workflow ended meanwhile (cancelled, failed past its deadline): due now,
-- so a worker claims each and closes it SKIPPED, rather than leaving it parked for ever.
UPDATE step_runs r SET run_at = now(), dispatched_at = now(), updated_at = now()
FROM workflow_executions w
WHERE r.status = 'QUEUED' AND r.run_at = timestamptz '9999-01-01 00:00:00+00'
  AND w.id = r.workflow_id
  AND w.status IN ('COMPLETED', 'FAILED', 'FAILED_ROLLED_BACK', 'FAILED_CHILD_WORKFLOW',
                   'FAILED_WORKER_CRASH', 'CANCELLED')
  AND r.id IN (SELECT id FROM step_runs
               WHERE status = 'QUEUED' AND run_at = timestamptz '9999-01-01 00:00:00+00'
               LIMIT $1)
RETURNING r.id, r.workflow_id, r.kind, r.step_name, r.branch, r.queue, 0::float8, r.priority;
