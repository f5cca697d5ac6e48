-- Named queries of the beat's sweeps (ruvon.implementations.persistence.postgres.maintenance).
-- Each sweep is one statement that takes its rows with FOR UPDATE SKIP LOCKED or inserts
-- with ON CONFLICT DO NOTHING: two sweeps at once (two beats, a slow sweep and the next one)
-- take disjoint rows or the same row once. Rows come back as runs to announce:
-- (id, workflow_id, kind, step_name, branch, queue, delay, priority). Where a sweep takes at most
-- a batch, the most urgent runs (highest priority) go first.

-- name: requeue_crashed
-- RUNNING runs whose lease expired (their worker died or hung) with attempts left ($2) go back
-- to the queue; the next claim is attempt + 1. Audited as WORKER_CRASH_DETECTED.
WITH expired AS (
    SELECT id, lease_owner FROM step_runs
    WHERE status = 'RUNNING' AND lease_expires_at < now() AND attempt < $2
    ORDER BY priority DESC, lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), requeued AS (
    UPDATE step_runs AS s SET
        status = 'QUEUED', lease_owner = NULL, lease_expires_at = NULL, run_at = now(),
        dispatched_at = now(), updated_at = now(),
        error = 'worker ' || coalesce(e.lease_owner, '?') || ' stopped renewing its lease'
    FROM expired AS e
    WHERE s.id = e.id
    RETURNING s.id, s.workflow_id, s.kind, s.step_name, s.branch, s.queue, s.attempt,
              e.lease_owner, s.priority
), audited AS (
    INSERT INTO workflow_audit_log (
        workflow_id, event_type, step_name, old_status, new_status, details, recorded_at
    )
    SELECT workflow_id, 'WORKER_CRASH_DETECTED', step_name, NULL, NULL,
           jsonb_build_object('run', id, 'kind', kind, 'branch', branch, 'attempt', attempt,
                              'worker', lease_owner, 'action', 'requeued'),
           now()
    FROM requeued
)
SELECT id, workflow_id, kind, step_name, branch, queue, 0::float8, priority FROM requeued;

-- name: exhausted_crashes
-- RUNNING runs whose lease expired with no attempts left: their workflows fail
-- (FAILED_WORKER_CRASH, or a saga rollback) under a claim the sweep takes on each.
SELECT id FROM step_runs
WHERE status = 'RUNNING' AND lease_expires_at < now() AND attempt >= $2
ORDER BY priority DESC, lease_expires_at
LIMIT $1;

-- name: expired_leases
-- For `ruvon scan-zombies`: RUNNING runs whose lease expired more than $1 seconds ago.
SELECT r.id, r.workflow_id, w.workflow_type, r.kind, r.step_name, r.branch, r.attempt,
       r.lease_owner, extract(epoch FROM now() - r.lease_expires_at)::float8
FROM step_runs AS r JOIN workflow_executions AS w ON w.id = r.workflow_id
WHERE r.status = 'RUNNING' AND r.lease_expires_at < now() - make_interval(secs => $1)
ORDER BY r.lease_expires_at
LIMIT $2;

-- name: unclaimed_queues
-- The lanes (queue, priority) holding due QUEUED runs that nobody claimed within the dispatch
-- timeout ($1 s since they were due and since they were last sent), and the database's clock
-- now: the moment the broker's lane lengths are read after (see redispatch_lost).
SELECT DISTINCT queue, priority, now() FROM step_runs
WHERE status = 'QUEUED'
  AND run_at <= now() - make_interval(secs => $1)
  AND dispatched_at <= now() - make_interval(secs => $1);

-- name: redispatch_lost
-- Send again the due QUEUED runs whose message is missing from the broker. A run that waits
-- behind a backlog is not lost, so its age alone proves nothing; the evidence is the broker's
-- count of messages waiting in the run's lane ($4, per lane: queue $3 at priority $7), read
-- after $5. A queue has one broker list per priority, each first in, first out (a worker pops
-- the most urgent non-empty one), so each lane is counted on its own:
--   * missing: the messages waiting in a lane are those of its newest sends; of the due runs
--     of that lane sent up to $5, ranked newest send first, the first $4 have their message
--     waiting and the rest have none (lost in a Redis restart,
--     reserved by a worker that died, a long backoff never sent, or just taken by a worker
--     about to claim its run);
--   * overdue: of those, the runs due and last sent more than $2 s ago (the dispatch timeout);
--   * resent: the overdue runs the previous sweep found missing too ($6) are marked sent again
--     and returned, oldest first; a run a worker had only just taken is claimed by then;
--   * suspected: the other overdue ones, returned by id for the next sweep to confirm.
-- A backlog therefore re-sends nothing (its messages are counted), a queue nobody consumes
-- neither (its messages wait), and a Redis restart (nothing waits) re-sends what is older than
-- the timeout at the second sweep after. Stale messages (duplicates, runs already done) can
-- only hide a loss until they are consumed. Two sweeps at once: SKIP LOCKED and the re-check of
-- dispatched_at let only one of them re-send a run. Each re-send is audited as MESSAGE_RESENT.
WITH missing AS (
    SELECT ranked.id
    FROM (
        SELECT r.id, r.queue, r.priority,
               row_number() OVER (PARTITION BY r.queue, r.priority
                                  ORDER BY r.dispatched_at DESC, r.id DESC) AS newer
        FROM step_runs AS r
        WHERE r.status = 'QUEUED' AND r.run_at <= now() AND r.dispatched_at <= $5
          AND r.queue = ANY($3::text[])
    ) AS ranked
    JOIN unnest($3::text[], $7::smallint[], $4::int[]) AS w(queue, priority, waiting)
      ON w.queue = ranked.queue AND w.priority = ranked.priority
    WHERE ranked.newer > w.waiting
), overdue AS (
    SELECT s.id, s.dispatched_at FROM step_runs AS s
    WHERE s.id IN (SELECT id FROM missing)
      AND s.status = 'QUEUED'
      AND s.run_at <= now() - make_interval(secs => $2)
      AND s.dispatched_at <= now() - make_interval(secs => $2)
), resent AS (
    UPDATE step_runs SET dispatched_at = now(), updated_at = now()
    WHERE id IN (
        SELECT s.id FROM step_runs AS s
        WHERE s.id = ANY($6::bigint[]) AND s.id IN (SELECT id FROM overdue)
          AND s.status = 'QUEUED'
          AND s.run_at <= now() - make_interval(secs => $2)
          AND s.dispatched_at <= now() - make_interval(secs => $2)
        ORDER BY s.priority DESC, s.dispatched_at, s.id
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, workflow_id, kind, step_name, branch, queue, attempt, priority
), audited AS (
    INSERT INTO workflow_audit_log (
        workflow_id, event_type, step_name, old_status, new_status, details, recorded_at
    )
    SELECT workflow_id, 'MESSAGE_RESENT', step_name, NULL, NULL,
           jsonb_build_object('run', id, 'kind', kind, 'branch', branch, 'attempt', attempt,
                              'queue', queue, 'action', 'resent'),
           now()
    FROM resent
), suspected AS (
    SELECT o.id FROM overdue AS o
    WHERE o.id NOT IN (SELECT id FROM resent)
    ORDER BY o.dispatched_at, o.id
    LIMIT $1
)
SELECT true, id, workflow_id, kind, step_name, branch, queue, 0::float8, priority FROM resent
UNION ALL
SELECT false, id, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM suspected;

-- name: fire_due_timers
-- Cluster workflows waiting on a due timer (WAIT, an approval deadline): one advance run per
-- workflow version (the run applies only at that version, so a late one changes nothing).
INSERT INTO step_runs (
    workflow_id, kind, step_name, branch, run_number, queue, status, attempt, run_at,
    dispatched_at, created_at, updated_at, priority
)
SELECT w.id, 'advance', '', 'timer', w.version, coalesce(w.data_region, $2), 'QUEUED', 0,
       now(), now(), now(), now(), w.priority
FROM workflow_executions AS w
WHERE w.status IN ('WAITING_TIMER', 'WAITING_HUMAN') AND w.run_at <= now()
  AND coalesce((w.runtime ->> 'cluster')::boolean, false)
ORDER BY w.priority DESC, w.run_at
LIMIT $1
ON CONFLICT (workflow_id, kind, step_name, branch, run_number) DO NOTHING
RETURNING id, workflow_id, kind, step_name, branch, queue, 0::float8, priority;

-- name: fail_past_deadline
-- Unfinished cluster workflows past their deadline (workflow-level timeout): one advance run per
-- workflow version, which the claiming worker runs into the engine's deadline check (it fails
-- the workflow, compensating under saga mode). Fenced by the version like the timer's run: a
-- workflow another writer moved on meanwhile gets a run of its new version at the next sweep.
INSERT INTO step_runs (
    workflow_id, kind, step_name, branch, run_number, queue, status, attempt, run_at,
    dispatched_at, created_at, updated_at, priority
)
SELECT w.id, 'advance', '', 'deadline', w.version, coalesce(w.data_region, $2), 'QUEUED', 0,
       now(), now(), now(), now(), w.priority
FROM workflow_executions AS w
WHERE w.status IN ('ACTIVE', 'PENDING_ASYNC', 'PENDING_PARALLEL', 'PENDING_SUB_WORKFLOW',
                   'WAITING_HUMAN', 'WAITING_TIMER')
  AND w.deadline_at <= now()
  AND coalesce((w.runtime ->> 'cluster')::boolean, false)
ORDER BY w.priority DESC, w.deadline_at
LIMIT $1
ON CONFLICT (workflow_id, kind, step_name, branch, run_number) DO NOTHING
RETURNING id, workflow_id, kind, step_name, branch, queue, 0::float8, priority;

-- name: reconcile_parents
-- Parents still PENDING_SUB_WORKFLOW although their child ended more than $3 s ago (its
-- resumption run was lost or skipped): one more resumption run per parent version.
INSERT INTO step_runs (
    workflow_id, kind, step_name, branch, run_number, queue, status, attempt, run_at,
    dispatched_at, created_at, updated_at, priority
)
SELECT p.id, 'advance', '', 'child:' || c.id, p.version, coalesce(p.data_region, $2),
       'QUEUED', 0, now(), now(), now(), now(), p.priority
FROM workflow_executions AS p
JOIN workflow_executions AS c ON c.id = p.blocked_on_child_id
WHERE p.status = 'PENDING_SUB_WORKFLOW'
  AND c.status IN ('COMPLETED', 'FAILED', 'FAILED_ROLLED_BACK', 'FAILED_CHILD_WORKFLOW',
                   'FAILED_WORKER_CRASH', 'CANCELLED')
  AND c.updated_at <= now() - make_interval(secs => $3)
ORDER BY p.priority DESC, c.updated_at
LIMIT $1
ON CONFLICT (workflow_id, kind, step_name, branch, run_number) DO NOTHING
RETURNING id, workflow_id, kind, step_name, branch, queue, 0::float8, priority;

-- name: reconcile_joins
-- Complete joins without a join run (cannot happen: the last branch's commit inserts it in
-- the same statement; this is the safety net the design promises).
INSERT INTO step_runs (
    workflow_id, kind, step_name, branch, run_number, queue, status, attempt, run_at,
    dispatched_at, created_at, updated_at, priority
)
SELECT j.workflow_id, 'join', j.step_name, '', j.run_number, coalesce(w.data_region, $2),
       'QUEUED', 0, now(), now(), now(), now(), w.priority
FROM parallel_joins AS j JOIN workflow_executions AS w ON w.id = j.workflow_id
WHERE j.recorded >= j.expected AND w.status = 'PENDING_PARALLEL'
  AND j.updated_at <= now() - make_interval(secs => $3)
ORDER BY w.priority DESC
LIMIT $1
ON CONFLICT (workflow_id, kind, step_name, branch, run_number) DO NOTHING
RETURNING id, workflow_id, kind, step_name, branch, queue, 0::float8, priority;

-- name: queue_backlog
-- Unfinished runs per queue (the control plane's cluster view): how many wait, how many are due
-- and the run_at of the oldest due one (the queue's lag), how many run; and the database's now.
SELECT queue,
       count(*) FILTER (WHERE status = 'QUEUED'),
       count(*) FILTER (WHERE status = 'QUEUED' AND run_at <= now()),
       count(*) FILTER (WHERE status = 'RUNNING'),
       min(run_at) FILTER (WHERE status = 'QUEUED' AND run_at <= now()),
       now()
FROM step_runs
WHERE status IN ('QUEUED', 'RUNNING')
GROUP BY queue
ORDER BY queue;

-- name: recent_recoveries
-- The beat's recoveries, newest first: runs re-queued after their worker died, runs re-sent
-- after their message was lost ($2: the event types), workflows failed for worker crashes.
SELECT workflow_id, event_type, step_name, old_status, new_status, details, recorded_at
FROM workflow_audit_log
WHERE event_type = ANY($2::text[]) OR new_status = 'FAILED_WORKER_CRASH'
ORDER BY id DESC
LIMIT $1;
