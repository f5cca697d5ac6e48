-- name: due_schedules
-- Enabled schedules due at $1 (the database clock when NULL), oldest tick first, each row with
-- the moment it was judged against. The (enabled, next_run_at) index serves it.
SELECT name, workflow_type, cron, initial_data, enabled, source_workflow_id, next_run_at,
       last_run_at, created_at, COALESCE($1::timestamptz, now())
FROM scheduled_workflows
WHERE enabled AND next_run_at <= COALESCE($1::timestamptz, now())
ORDER BY next_run_at
LIMIT $2;

-- name: claim_schedule_ticks
-- Take a schedule's due ticks: only the poller that read next_run_at = $2 matches; the row lock
-- makes a concurrent one wait, then re-check the condition and match nothing.
UPDATE scheduled_workflows SET next_run_at = $3, last_run_at = $4
WHERE name = $1 AND next_run_at = $2 AND enabled
RETURNING name;

-- name: release_schedule_ticks
-- Give back the ticks from $3 on after a start failed, unless the row moved meanwhile.
UPDATE scheduled_workflows SET next_run_at = $3, last_run_at = $4
WHERE name = $1 AND next_run_at = $2
RETURNING name;

-- name: set_schedule_enabled
-- Pause or resume; only a resume of a paused schedule moves its next run (to $3).
UPDATE scheduled_workflows
SET enabled = $2,
    next_run_at = CASE WHEN $2 AND NOT enabled THEN $3::timestamptz ELSE next_run_at END
WHERE name = $1
RETURNING name, workflow_type, cron, initial_data, enabled, source_workflow_id, next_run_at,
          last_run_at, created_at;
