-- Named queries of the chaos tests: the step functions' own tables (made by the test fixture,
-- never by a step), what the steps write, and the reads of the invariant checker.

-- name: create_tables
-- chaos_calls: every execution of a recording step function (no unique key: re-executions
-- show). chaos_effects: the side effect, at most once per idempotency key.
CREATE TABLE IF NOT EXISTS chaos_calls (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL,
    workflow_id text NOT NULL,
    step_name text NOT NULL,
    idempotency_key text,
    attempt int NOT NULL,
    pid int NOT NULL,
    applied boolean,
    called_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS chaos_effects (
    idempotency_key text PRIMARY KEY,
    workflow_id text NOT NULL,
    step_name text NOT NULL,
    attempt int NOT NULL,
    pid int NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- name: busy_owners
-- Who holds a step run right now (``host:pid`` of a pool process).
SELECT DISTINCT lease_owner FROM step_runs WHERE status = 'RUNNING' AND lease_expires_at > now();

-- name: continued_owners
-- Who holds a run its own last commit claimed for it (a continuation: the run was inserted
-- already claimed, so it started when it was created), i.e. who is inside a continued chain.
SELECT DISTINCT lease_owner FROM step_runs
WHERE status = 'RUNNING' AND lease_expires_at > now() AND attempt = 1 AND started_at = created_at;

-- name: detected_owners
-- Whose runs were taken for zombies after audit row $1 (``host:pid`` of the lost claim).
SELECT details ->> 'worker' FROM workflow_audit_log
WHERE event_type = 'WORKER_CRASH_DETECTED' AND id > $1;

-- name: last_audit_id
SELECT coalesce(max(id), 0) FROM workflow_audit_log;

-- name: done_owners
-- Who committed each closed step run (``host:pid`` of its last claim).
SELECT lease_owner FROM step_runs WHERE status = 'DONE';

-- name: record_call
INSERT INTO chaos_calls (kind, workflow_id, step_name, idempotency_key, attempt, pid, applied)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: apply_effect
-- Returns the key when this call applied the effect, NULL when it was applied already.
INSERT INTO chaos_effects (idempotency_key, workflow_id, step_name, attempt, pid)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING idempotency_key;

-- name: workflows
SELECT w.id, w.workflow_type, w.status, w.parent_execution_id, w.blocked_on_child_id,
       (w.state ->> 'fail_at_end')::boolean, w.state ->> 'effect_key', w.created_at,
       w.updated_at,
       (SELECT count(*) FROM step_runs AS r
        WHERE r.workflow_id = w.id AND r.status IN ('QUEUED', 'RUNNING')),
       w.error
FROM workflow_executions AS w;

-- name: unsettled_count
-- Workflows not terminal, and how many of them are stranded: ACTIVE without an open step run
-- (nothing will ever move them on), or waiting for a child that is.
WITH unsettled AS (
    SELECT w.id, w.status, w.blocked_on_child_id,
           NOT EXISTS (SELECT 1 FROM step_runs AS r WHERE r.workflow_id = w.id
                       AND r.status IN ('QUEUED', 'RUNNING')) AS idle
    FROM workflow_executions AS w
    WHERE w.status NOT IN ('COMPLETED', 'FAILED', 'FAILED_ROLLED_BACK', 'FAILED_CHILD_WORKFLOW',
                           'FAILED_WORKER_CRASH', 'CANCELLED')
)
SELECT count(*),
       count(*) FILTER (WHERE (u.status = 'ACTIVE' AND u.idle) OR EXISTS (
           SELECT 1 FROM unsettled AS c
           WHERE c.id = u.blocked_on_child_id AND c.status = 'ACTIVE' AND c.idle))
FROM unsettled AS u;

-- name: applied_effects
-- Applied effects per (workflow, step): more than one means the step's effect was applied
-- under two different keys (the step was run again as a new run, not as a retry).
SELECT workflow_id, step_name, count(*), array_agg(idempotency_key ORDER BY applied_at)
FROM chaos_effects GROUP BY workflow_id, step_name;

-- name: call_counts
-- Executions per kind: all of them, and distinct idempotency keys.
SELECT kind, count(*), count(DISTINCT idempotency_key) FROM chaos_calls GROUP BY kind;

-- name: step_commits
-- Committed step results per (workflow, step): each must be committed once.
SELECT workflow_id, step_name, count(*) FROM workflow_audit_log
WHERE event_type = 'STEP_COMPLETED' GROUP BY workflow_id, step_name;

-- name: join_runs
-- Join runs and merges per PARALLEL step run that fanned out (has branch runs).
SELECT b.workflow_id, b.step_name, b.run_number,
       (SELECT count(*) FROM step_runs AS j
        WHERE j.workflow_id = b.workflow_id AND j.kind = 'join' AND j.step_name = b.step_name
          AND j.run_number = b.run_number AND j.status = 'DONE'),
       (SELECT count(*) FROM workflow_audit_log AS a
        WHERE a.workflow_id = b.workflow_id AND a.event_type = 'PARALLEL_TASKS_MERGED'
          AND a.step_name = b.step_name),
       (SELECT count(*) FROM workflow_audit_log AS a
        WHERE a.workflow_id = b.workflow_id AND a.event_type = 'STEP_COMPLETED'
          AND a.step_name = b.step_name)
FROM (SELECT DISTINCT workflow_id, step_name, run_number FROM step_runs WHERE kind = 'branch')
     AS b;

-- name: expired_running
-- Runs still RUNNING although their lease expired (nobody recovered them).
SELECT id, workflow_id, kind, step_name, branch, attempt, lease_owner,
       extract(epoch FROM now() - lease_expires_at)::float8
FROM step_runs WHERE status = 'RUNNING' AND lease_expires_at < now();

-- name: open_runs
-- Runs not closed (QUEUED or RUNNING) of workflows that are terminal or waiting on nothing.
SELECT r.id, r.workflow_id, r.kind, r.step_name, r.branch, r.status, w.status
FROM step_runs AS r JOIN workflow_executions AS w ON w.id = r.workflow_id
WHERE r.status IN ('QUEUED', 'RUNNING');

-- name: compensation_log
SELECT workflow_id, step_name, succeeded FROM compensation_log ORDER BY id;

-- name: compensation_audit
SELECT workflow_id, step_name FROM workflow_audit_log
WHERE event_type IN ('COMPENSATION_EXECUTED', 'COMPENSATION_FAILED') ORDER BY id;

-- name: crash_audit
-- Zombie detections: when, which run, which worker (host:pid) had it.
SELECT workflow_id, recorded_at, details ->> 'worker', (details ->> 'run')::bigint,
       details ->> 'action', (details ->> 'attempt')::int
FROM workflow_audit_log WHERE event_type = 'WORKER_CRASH_DETECTED' ORDER BY id;

-- name: run_claims
-- When each run was last claimed (its final attempt's start).
SELECT id, started_at, attempt FROM step_runs;

-- name: retries
SELECT count(*) FROM workflow_audit_log WHERE event_type = 'STEP_RETRY';

-- name: story_runs
-- The step runs of some workflows (for the report of a broken invariant).
SELECT workflow_id, id, kind, step_name, branch, run_number, status, attempt, lease_owner,
       run_at, dispatched_at, started_at, finished_at, error
FROM step_runs WHERE workflow_id = ANY($1::text[]) ORDER BY workflow_id, id;

-- name: story_audit
SELECT workflow_id, id, event_type, step_name, old_status, new_status, details, recorded_at
FROM workflow_audit_log WHERE workflow_id = ANY($1::text[]) ORDER BY workflow_id, id;
