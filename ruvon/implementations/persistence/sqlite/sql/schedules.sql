-- name: due_schedules
-- Enabled schedules due at :now, oldest tick first (timestamps are UTC ISO text: text order is
-- time order). The (enabled, next_run_at) index serves it.
SELECT name, workflow_type, cron, initial_data, enabled, source_workflow_id, next_run_at,
       last_run_at, created_at
FROM scheduled_workflows
WHERE enabled AND next_run_at <= :now
ORDER BY next_run_at, name
LIMIT :limit;

-- name: claim_schedule_ticks
-- Take a schedule's due ticks: only the poller that read next_run_at = :expected matches. One
-- statement is one transaction, so of two processes on the file exactly one changes the row.
UPDATE scheduled_workflows SET next_run_at = :next_run_at, last_run_at = :last_run_at
WHERE name = :name AND next_run_at = :expected AND enabled;

-- name: release_schedule_ticks
-- Give back the ticks from :next_run_at on after a start failed, unless the row moved meanwhile.
UPDATE scheduled_workflows SET next_run_at = :next_run_at, last_run_at = :last_run_at
WHERE name = :name AND next_run_at = :expected;

-- name: set_schedule_enabled
-- Pause or resume; only a resume of a paused schedule moves its next run (to :next_run_at).
UPDATE scheduled_workflows
SET enabled = :enabled,
    next_run_at = CASE WHEN :enabled AND NOT enabled THEN :next_run_at ELSE next_run_at END
WHERE name = :name
RETURNING name, workflow_type, cron, initial_data, enabled, source_workflow_id, next_run_at,
          last_run_at, created_at;
